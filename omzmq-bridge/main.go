// Command omzmq-bridge is rsyslog's omprog companion: it reads messages
// from rsyslog on stdin and publishes them to ZeroMQ, confirming each one
// (or each transaction) only once it is handed off to a peer. See usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/rsyslog-zmq/relay/internal/omprog"
)

var version = "dev"

// Exit statuses.
const (
	exitOK    = 0 // end of input or SIGTERM/SIGINT, after flushing
	exitIO    = 1 // stdin/stdout failed
	exitUsage = 2 // bad command line or settings file
	exitSetup = 3 // ZeroMQ endpoints could not be set up (e.g. bind failed)
)

const usage = `omzmq-bridge: publish rsyslog messages to ZeroMQ (rsyslog omprog companion)

Usage:
  omzmq-bridge --socket push|pub (--bind ENDPOINT | --connect ENDPOINT)...
               [--topic NAME | --topic-from-field] [--hwm N] [options]
  omzmq-bridge --relay ENDPOINT [--topic-from-field]

Each stdin line is one message. Frames: [line]; with --topic NAME
[NAME, line]; with --topic-from-field [first field, rest of line].
--relay ENDPOINT is --socket push --connect ENDPOINT: the relay's ZeroMQ
PULL input takes [stream, payload] and derives the stream from one frame.

rsyslog action (omprog), e.g. in /etc/rsyslog.d/zmq.conf:

  module(load="omprog")
  template(name="bridge-line" type="string"
           string="%programname% <%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% %MSGID% %STRUCTURED-DATA% %msg%\n")
  action(type="omprog" name="zmq-bridge"
         binary="/usr/local/bin/omzmq-bridge --relay tcp://127.0.0.1:5555 --topic-from-field"
         template="bridge-line"
         confirmMessages="on" useTransactions="on" confirmTimeout="10000"
         reportFailures="on" hup.signal="HUP"
         output="/var/log/omzmq-bridge.log"
         queue.type="LinkedList" queue.filename="zmq-bridge" queue.size="100000"
         queue.maxDiskSpace="2g" queue.saveOnShutdown="on" queue.dequeueBatchSize="1024"
         action.resumeRetryCount="-1" action.resumeInterval="1")

Protocol (detected, override with --confirm/--transactions):
  confirmMessages="on": OK once the endpoints are set up, then OK per
    message once it is written to a peer's connection (--confirm-when
    written: a kill -9 of the bridge loses nothing confirmed; over TCP
    the kernel holds such writes up to 1 ms to send them together), or
    once queued within the HWM (--confirm-when queued: loses what was
    queued but unwritten if the bridge is killed).
  useTransactions="on": BEGIN -> OK, each message -> DEFER_COMMIT as
    above, COMMIT -> OK once everything is written.
  While no peer can take a message: a keep-alive "." every --keepalive;
    if it cannot even be queued within --max-wait, an "ERROR ..." line, so
    rsyslog suspends the action and retries it from its queue
    (action.resumeRetryCount="-1"). Once queued, the bridge waits for the
    write as long as it takes (failing then would duplicate).
  confirmMessages="off": fire-and-forget; blocks (backpressure through the
    pipe) but rsyslog never learns of a loss.
Signals: SIGHUP re-reads --config and reconnects; SIGTERM/SIGINT and end of
input flush (up to --close-timeout) and exit. Logs go to stderr (omprog's
output= file).

Exit status: 0 done, 1 stdin/stdout error, 2 bad usage or settings file,
3 ZeroMQ setup failed (e.g. endpoint in use).

Options:
  --socket push|pub       socket type (push)
  --bind ENDPOINT         bind tcp://host:port or ipc:///path (repeatable)
  --connect ENDPOINT      connect, reconnecting forever (repeatable)
  --relay ENDPOINT        --socket push --connect ENDPOINT
  --topic NAME            first frame of every message
  --topic-from-field      first frame = first space-separated field of the line
  --hwm N                 messages queued per peer (1000)
  --confirm auto|on|off   answer rsyslog; auto: stdout is not stderr (auto)
  --confirm-when written|queued  confirm once written to a peer's connection
                          or once queued within the HWM (written)
  --cork D                with written: a confirmed message may wait up to D in
                          the kernel so messages leave in batches (1ms; 0: off,
                          each message is sent at once, slower)
  --transactions auto|on|off  honour BEGIN/COMMIT marks; auto: first line (auto)
  --begin-mark TEXT       omprog beginTransactionMark (BEGIN TRANSACTION)
  --commit-mark TEXT      omprog commitTransactionMark (COMMIT TRANSACTION)
  --keepalive D           longest gap between keep-alive dots (1s)
  --max-wait D            wait for a peer this long, then ERROR; -1s: forever (30s)
  --max-line N            largest message in bytes, as a ZeroMQ receiver counts it:
                          the line, plus the topic frame and 32 bytes with --topic
                          or --topic-from-field. A longer one is logged, dropped
                          and answered with an ERROR line, never OK (rsyslog
                          retries it). Keep it equal to the relay's
                          max_message_size (1048576; the relay's default)
  --curve-key FILE        CURVE: our secret certificate (relay keygen NAME writes
                          NAME.key_secret); a client without it draws a key pair
  --curve-server-key K    CURVE client: the server's certificate file, or its
                          Z85 public key (e.g. the relay input's relay.key)
  --curve-allow-dir DIR   CURVE server: admit the clients whose certificates
                          are in DIR (re-read when it changes)
  --curve-allow-any       CURVE server: admit any client (encryption only)
  --close-timeout D       flush time on exit (4s; keep below omprog closeTimeout)
  --config FILE           settings file: flags, one or more per line, # comments;
                          re-read on SIGHUP (its endpoints replace the command line's)
  --log-level L           debug, info, warn, error (info)
  --stats-interval D      log every counter (lines, messages, failed, drops,
                          queue, reconnects) this often; 0: only at exit and on
                          SIGUSR1 (5m)
  --version               print the version
`

func main() {
	if os.Getenv("GOMAXPROCS") == "" {
		// One lock-step stream: with a single P the socket writer runs as
		// soon as the protocol loop yields, instead of waking another core.
		// With --confirm-when written the loop mostly writes itself, and
		// two Ps measured no better through rsyslog (72-74% of okprog with
		// one, 58-71% with two, bench/bridge.sh).
		runtime.GOMAXPROCS(1)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	s, err := parseSettings(args, os.Stderr)
	switch {
	case err != nil:
		fmt.Fprintf(os.Stderr, "omzmq-bridge: %v\nRun omzmq-bridge --help for the options.\n", err)
		return exitUsage
	case s.help:
		_, _ = io.WriteString(os.Stdout, usage)
		return exitOK
	case s.version:
		fmt.Println("omzmq-bridge", version)
		return exitOK
	}
	level, _ := parseLevel(s.logLevel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	confirm := s.confirm == "on"
	if s.confirm == "auto" {
		if confirm, err = omprog.DetectConfirm(os.Stdout, os.Stderr); err != nil {
			log.Error("cannot tell whether rsyslog confirms messages; pass --confirm on|off", "err", err)
			return exitUsage
		}
	}
	b, err := newBridge(s, log)
	if err != nil {
		log.Error("ZeroMQ setup failed", "err", err)
		return exitSetup
	}
	written := confirm && s.confirmWhen == "written" && s.socket == "push"
	b.written = written

	// stdin stays a blocking pipe: the thread sleeps in read(2) and wakes
	// as soon as rsyslog writes, which the lock-step protocol pays per line.
	srv := omprog.NewServer(os.Stdin, os.Stdout, b, omprog.Options{
		Confirm: confirm, Transactions: s.txMode(),
		BeginMark: s.beginMark, CommitMark: s.commitMark,
		KeepAlive: s.keepAlive, MaxWait: s.maxWait, MaxLine: s.maxLine,
		CloseTimeout: s.closeTimeout, Logger: log,
		FlushEach: written,
	})
	log.Info("started", "version", version, "socket", s.socket, "bind", s.binds, "connect", s.connects,
		"confirm", confirm, "transactions", s.transactions)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for sig := range sigs {
			if sig != syscall.SIGHUP {
				log.Info("stopping", "signal", sig.String())
				cancel()
				close(stop)
				return
			}
			cur := s
			next, err := parseSettings(args, os.Stderr)
			if err != nil {
				log.Error("SIGHUP: settings rejected, keeping the current ones", "err", err)
				next = cur
			}
			if err := b.reload(next, cur, s.closeTimeout); err == nil {
				s = next
				log.Info("SIGHUP: reconnected", "socket", next.socket, "bind", next.binds, "connect", next.connects)
			}
		}
	}()

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	statsDone := make(chan struct{})
	defer close(statsDone)
	go statsLoop(log, s.statsInterval, srv, b, usr1, statsDone)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	closeWithin := 100 * time.Millisecond // end of input: Serve has flushed
	select {
	case err = <-served:
	case <-stop:
		closeWithin = s.closeTimeout
		// Serve may sit in a read of stdin that nothing interrupts; it has
		// nothing in flight once cancelled, so do not wait for it long.
		select {
		case err = <-served:
		case <-time.After(100 * time.Millisecond):
		}
	}
	code := exitOK
	switch {
	case errors.Is(err, omprog.ErrUnflushed):
		log.Warn("end of input with messages not yet written to a peer; they are lost", "err", err)
	case err != nil && ctx.Err() == nil:
		log.Error("stopped", "err", err)
		code = exitIO
	}
	fctx, fcancel := context.WithTimeout(context.Background(), closeWithin)
	defer fcancel()
	if ferr := b.close(fctx); ferr != nil && !errors.Is(ferr, context.Canceled) && !errors.Is(err, omprog.ErrUnflushed) {
		log.Warn("exit before every message was written", "err", ferr)
	}
	logStats(log, "exit", srv, b)
	return code
}

// logStats logs every counter of the protocol and the socket on one line:
// the bridge has no metrics endpoint (rsyslog may run several), so its log,
// omprog's output file, is where drops and waits show.
func logStats(log *slog.Logger, msg string, srv *omprog.Server, b *bridge) {
	st, zs := srv.Stats(), b.stats()
	log.Info(msg, "lines", st.Lines, "messages", st.Messages, "failed", st.Failed,
		"oversize", st.Oversize+b.tooLarge.Load(), "transactions", st.Transactions, "keepalives", st.KeepAlives,
		"zmq_peers", zs.Peers, "zmq_out", zs.MsgsOut, "zmq_queued", zs.QueueDepth, "zmq_drops", zs.Drops,
		"zmq_reconnects", zs.Reconnects, "zmq_disconnects", zs.Disconnects)
}

// statsLoop logs the counters every interval (0: never) and on SIGUSR1,
// until done is closed.
func statsLoop(log *slog.Logger, interval time.Duration, srv *omprog.Server, b *bridge, usr1 <-chan os.Signal, done <-chan struct{}) {
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-tick:
		case <-usr1:
		case <-done:
			return
		}
		logStats(log, "stats", srv, b)
	}
}
