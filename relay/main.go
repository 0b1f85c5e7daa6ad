// Command relay receives syslog from rsyslog, derives each event's stream
// type and routes it to ZeroMQ PUSH (worker pools) and PUB (taps) outputs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/relay"
	"github.com/rsyslog-zmq/relay/internal/sdnotify"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

const usage = `relay: receive events from rsyslog (syslog over TCP, TLS, UDP or a unix socket, RELP,
ZeroMQ), from other relays (link) or from a NATS JetStream stream, and route
each event, by its stream type, to ZeroMQ PUSH (worker pools, optionally
acknowledged) and PUB (taps) outputs, to other relays (link), and to NATS
JetStream or Kafka. Any output but PUB can keep a disk spool: what it holds
survives a crash and a restart.

Usage:
  relay [-c FILE] [--log-format text|json] [--log-level LEVEL]
  relay check -c FILE
  relay default-config
  relay spool verify DIR
  relay keygen NAME
  relay --version

relay with no command runs; without -c, on the embedded default config.
relay check validates FILE, reports every problem as FILE:LINE:COL, and
exits 0 if it is valid. relay default-config prints the embedded default
config, a commented sample of every key (see relay.yaml(5)). relay spool
verify DIR checks a spool directory offline (see relay spool --help).
relay keygen NAME writes a CURVE key pair as czmq certificates, NAME.key
(public) and NAME.key_secret (mode 0600; see relay keygen --help).

With no -c the relay listens for syslog on tcp:// and udp://127.0.0.1:10514,
publishes every event on tcp://127.0.0.1:5556 (PUB, topic = stream) and serves
/healthz, /metrics, /v1/tap and a live web view on http://127.0.0.1:8080.

Signals: SIGHUP reloads the config (an invalid one is refused and the old one
keeps running); SIGTERM or SIGINT stops accepting, drains in-flight events to
the outputs within drain_timeout (what a spooled output has not delivered by
then stays in its spool for the next start), and exits 0.

systemd: with NOTIFY_SOCKET set (Type=notify) the relay sends READY=1 once
every input and output is up, RELOADING=1 then READY=1 around a SIGHUP
reload, STOPPING=1 when it begins to drain, and, with WatchdogSec=, WATCHDOG=1
pings while its control path answers. Without NOTIFY_SOCKET it sends nothing.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid config.

Environment:
  NOTIFY_SOCKET   where systemd listens for the states above (set by systemd)
  WATCHDOG_USEC   the watchdog timeout; pings go at half of it (set by systemd)
  GOGC            garbage collection target percentage (default here: 400)

Garbage collection runs with GOGC=400 unless the GOGC environment variable
is set: the relay's live heap is small (queues of events), so the default
of 100 spends much of the CPU on collections.

Files (as installed by the Debian package):
  /etc/relay/relay.yaml   the configuration, see relay.yaml(5)
  /etc/default/relay      RELAY_OPTS, extra flags for relay.service
  /var/lib/relay          state (spools): StateDirectory= of relay.service

Flags:
`

// defaultGOGC trades a few MB of heap for far less GC work: at 1M msg/s
// the relay allocates ~500 MB/s (events and their bytes) over a live heap
// of a few MB, so GOGC=100 collects hundreds of times a second.
// bench/relay.sh: roughly 1.5–2x the throughput of GOGC=100.
const defaultGOGC = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "spool" {
		return spoolCmd(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "keygen" {
		return keygen(args[1:], stdout, stderr)
	}
	cmd := ""
	if len(args) > 0 && (args[0] == "check" || args[0] == "default-config") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "config `FILE` (YAML); default: the embedded config")
	logFormat := fs.String("log-format", "", "log `format`: text or json (overrides the config's log.format)")
	logLevel := fs.String("log-level", "", "log `level`: debug, info, warn or error (overrides the config's log.level)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		if cmd == "check" && *file == "" {
			// promtool check config FILE, nginx -t -c FILE: a habit.
			fmt.Fprintf(stderr, "relay check: the config file goes after -c: relay check -c %s\n", fs.Arg(0))
			return 2
		}
		fmt.Fprintf(stderr, "relay: unexpected argument %q; see relay --help\n", fs.Arg(0))
		return 2
	}
	if err := checkLogFlags(*logFormat, *logLevel); err != nil {
		fmt.Fprintf(stderr, "relay: %v\n", err)
		return 2
	}
	switch {
	case *showVersion:
		fmt.Fprintln(stdout, "relay", version)
		return 0
	case cmd == "default-config":
		stdout.Write(config.DefaultYAML)
		return 0
	}
	cfg, err := load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if cmd == "check" {
		fmt.Fprintf(stdout, "%s: ok\n%s", nameOf(*file), cfg.Summary())
		for _, w := range cfg.Warnings() {
			fmt.Fprintf(stdout, "warning: %s\n", w)
		}
		return 0
	}
	// The flags win over the config's log section, now and at every reload.
	overrideLog := func(c *config.Config) {
		if *logFormat != "" {
			c.Log.Format = *logFormat
		}
		if *logLevel != "" {
			c.Log.Level = *logLevel
		}
	}
	overrideLog(cfg)
	level := new(slog.LevelVar)
	level.Set(cfg.Log.SlogLevel())
	log := slog.New(logHandler(cfg.Log.Format, level, stderr))
	notify, err := sdnotify.New()
	if err != nil {
		log.Warn("not telling systemd how the relay is doing", "err", err)
	}
	r, err := relay.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	// Signals are caught before Start, so a stop during startup still drains.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	if err := r.Start(); err != nil {
		log.Error("start failed", "err", err)
		notify.Status("start failed: " + err.Error())
		return 1
	}
	// READY=1 only now: Start returns once every output is set up and
	// every input listens.
	notifyErr(log, notify.Ready(status(cfg, nameOf(*file))))
	var reloading atomic.Bool
	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	defer stopWatchdog()
	if iv, ok := sdnotify.WatchdogInterval(); ok && notify.Enabled() {
		alive := func(timeout time.Duration) error {
			if reloading.Load() {
				return nil // the reload holds the control lock; its steps are bounded by drain_timeout
			}
			return r.Alive(timeout)
		}
		go notify.KeepAlive(wdCtx, iv, alive, func(err error) { log.Warn("watchdog ping withheld", "err", err) })
	}
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			log.Info("shutting down", "signal", sig.String())
			stopWatchdog()
			notifyErr(log, notify.Stopping("draining"))
			if err := r.Shutdown(context.Background()); err != nil {
				log.Warn("drain incomplete", "err", err)
			}
			return 0
		}
		if *file == "" {
			log.Warn("SIGHUP: running the embedded default config; nothing to reload")
			continue
		}
		reloading.Store(true)
		notifyErr(log, notify.Reloading("reloading "+*file))
		st := reload(r, *file, overrideLog, cfg.Log.Format, *logLevel == "", level, log)
		reloading.Store(false)
		notifyErr(log, notify.Ready(st))
	}
	return 0
}

// reload applies file to r and returns the status line for systemd.
func reload(r *relay.Relay, file string, overrideLog func(*config.Config), format string, setLevel bool, level *slog.LevelVar, log *slog.Logger) string {
	next, err := config.Load(file)
	if err != nil {
		log.Error("reload refused; the old config keeps running", "err", err)
		r.ReloadRefused()
		return "reload refused (see the log); running the previous config of " + file
	}
	overrideLog(next)
	if err := r.Reload(next); err != nil {
		log.Error("reload failed", "err", err)
		return "reload failed (see the log): " + firstLine(err.Error())
	}
	if setLevel {
		level.Set(next.Log.SlogLevel())
	}
	if next.Log.Format != format {
		log.Warn("log.format changed; it applies at the next restart", "running", format, "configured", next.Log.Format)
	}
	return status(next, file)
}

// checkLogFlags refuses a --log-format or --log-level the config would refuse.
func checkLogFlags(format, level string) error {
	switch format {
	case "", "text", "json":
	default:
		return fmt.Errorf("--log-format %q: use text or json", format)
	}
	switch level {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return nil
}

func logHandler(format string, level slog.Leveler, w io.Writer) slog.Handler {
	o := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.NewJSONHandler(w, o)
	}
	return slog.NewTextHandler(w, o)
}

// status is the line systemctl status shows while the relay runs.
func status(cfg *config.Config, file string) string {
	return fmt.Sprintf("relaying: %d inputs, %d outputs (%s)", len(cfg.Inputs), len(cfg.Outputs), file)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// notifyErr logs a failed notification: systemd then times the service out,
// and the log says why.
func notifyErr(log *slog.Logger, err error) {
	if err != nil {
		log.Warn("systemd notification failed", "err", err)
	}
}

func load(file string) (*config.Config, error) {
	if file == "" {
		return config.Default(), nil
	}
	return config.Load(file)
}

func nameOf(file string) string {
	if file == "" {
		return "embedded default config"
	}
	return file
}
