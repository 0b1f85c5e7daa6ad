package link

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// The crash tests run a sender or a receiver in a child process (this test
// binary, re-executed) and kill it with SIGKILL mid-stream.
func TestMain(m *testing.M) {
	switch os.Getenv("LINK_CHILD") {
	case "sender":
		os.Exit(senderChild())
	case "receiver":
		os.Exit(receiverChild())
	}
	os.Exit(m.Run())
}

// crashScale is the number of records of the crash tests:
// LINK_CRASH_RECORDS, default 60000 (short enough for CI).
func crashScale() int {
	if n, err := strconv.Atoi(os.Getenv("LINK_CRASH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 60000
}

// senderChild drains the spool in LINK_SPOOL to LINK_CONNECT until it is
// empty (then prints DONE and waits) or it is killed.
func senderChild() int {
	sp, err := spool.Open(spool.Options{Dir: os.Getenv("LINK_SPOOL"), MaxBytes: 256 << 20})
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	id, err := LoadID(os.Getenv("LINK_SPOOL"))
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	s, err := NewSender(SenderConfig{Name: "child", Connect: []string{os.Getenv("LINK_CONNECT")}, ID: id, Compression: CompressZstd,
		Heartbeat: 100 * time.Millisecond, HeartbeatTimeout: time.Second, ReconnectMax: 100 * time.Millisecond,
		Sent: func(r spool.Range) error { return sp.Sent(r) }})
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	go Drain(context.Background(), sp, s, 1000)
	fmt.Println("READY", sp.Stats().Records, sp.Stats().Redelivered)
	for sp.Stats().Records > 0 {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("DONE")
	select {}
}

// receiverChild serves LINK_LISTEN and appends what it receives to the
// disk spool in LINK_OUT (fsync always), through a Ledger unless
// LINK_LEDGER=off: the receiving relay's spooled output, in small. On
// SIGTERM it stops cleanly and prints its counters.
func receiverChild() int {
	outDir := os.Getenv("LINK_OUT")
	var ledger *Ledger
	opt := spool.Options{Dir: outDir, MaxBytes: 256 << 20, SegmentBytes: 1 << 20}
	if os.Getenv("LINK_LEDGER") != "off" {
		var err error
		if ledger, err = OpenLedger(outDir); err != nil {
			fmt.Println("ERR", err)
			return 1
		}
		opt.Recovered, opt.BeforeDelete = ledger.Recovered, ledger.Save
	}
	out, err := spool.Open(opt)
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	// The consumer delivers what it reads at once: the spool hands it only
	// records written to its file, which a kill does not take back, so a
	// record delivered is never appended again under another spool seq.
	// A consumer acknowledges what it reads, so segments are deleted and
	// the ledger's saved marks are exercised too. A line the last kill cut
	// off is ended first, so it cannot run into this run's first line.
	if f, err := os.OpenFile(outDir+"/delivered", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
		f.Write([]byte("\n"))
		f.Close()
	}
	go func() {
		for {
			recs, err := out.Read(context.Background(), 1000)
			if err != nil {
				return
			}
			// Written before the ack: a kill in between delivers them
			// again under the same spool seq (the spool's at-least-once
			// last hop), told apart from a record appended twice.
			if f, err := os.OpenFile(outDir+"/delivered", os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
				w := bufio.NewWriter(f)
				for _, r := range recs {
					fmt.Fprintf(w, "%d %s\n", r.Seq, r.Raw[len(r.Raw)-12:])
				}
				w.Flush()
				f.Close()
			}
			out.Ack(recs[0].Seq, recs[len(recs)-1].Seq)
		}
	}()
	h := func(evs []*event.Event) {
		recs := make([]spool.Record, 0, len(evs))
		held := make([]*event.Event, 0, len(evs))
		for _, e := range evs {
			if ledger != nil && ledger.Have(e.Meta) {
				continue
			}
			recs = append(recs, spool.Record{Raw: e.Raw, Stream: e.Stream, Meta: e.Meta})
			e.Hold()
			held = append(held, e)
		}
		if len(recs) == 0 {
			return
		}
		err := out.Append(context.Background(), recs, func(err error) {
			for _, e := range held {
				if ledger != nil && err == nil {
					ledger.Durable(e.Meta)
				}
				e.Release(err)
			}
		})
		if err != nil {
			for _, e := range held {
				e.Release(err)
			}
			return
		}
		if ledger != nil {
			for _, e := range held {
				ledger.Appended(e.Meta)
			}
		}
	}
	r, err := NewReceiver(ReceiverConfig{Name: "child", Listen: []string{os.Getenv("LINK_LISTEN")}, StateDir: os.Getenv("LINK_STATE")})
	if err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	// Widen the window between the output's fsync and the marks' fsync,
	// where a kill leaves handed-off events the marks do not cover.
	r.store.sync = func(f *os.File) error {
		time.Sleep(30 * time.Millisecond)
		return fdatasync(f)
	}
	if err := r.Start(h); err != nil {
		fmt.Println("ERR", err)
		return 1
	}
	fmt.Println("READY")
	if ledger != nil {
		go func() { // what the ledger kept out, for the parent to sum across kills
			var last uint64
			for {
				if n := ledger.Skipped(); n != last {
					os.WriteFile(fmt.Sprintf("%s/skipped.%d", outDir, os.Getpid()), []byte(strconv.FormatUint(n, 10)), 0o600)
					last = n
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.Stop(ctx)
	skipped := uint64(0)
	if ledger != nil {
		skipped = ledger.Skipped()
	}
	st := r.Stats()
	for out.Stats().Records > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	out.Close()
	fmt.Printf("STATS %d %d %d\n", st.Suppressed, skipped, out.Stats().Redelivered)
	return 0
}

// child is a running child process.
type child struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  []string
	done chan struct{}
}

func startChild(t *testing.T, env ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(os.Args[0], "-test.run=^$"), done: make(chan struct{})}
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stderr = os.Stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			c.mu.Lock()
			c.out = append(c.out, sc.Text())
			c.mu.Unlock()
			if strings.HasPrefix(sc.Text(), "READY") || strings.HasPrefix(sc.Text(), "ERR") {
				once.Do(func() { close(ready) })
			}
		}
		c.cmd.Wait()
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		c.kill()
		t.Fatal("child did not start")
	}
	if l := c.line("ERR"); l != "" {
		t.Fatalf("child: %s", l)
	}
	t.Cleanup(c.kill)
	return c
}

func (c *child) line(prefix string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.out {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

func (c *child) term(t *testing.T) {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Fatal("child did not stop on SIGTERM")
	}
}

// TestSenderKilled: the sender is killed with SIGKILL three times while it
// drains its spool; every record reaches the receiver exactly once.
func TestSenderKilled(t *testing.T) {
	n := crashScale()
	sdir := t.TempDir()
	sp, err := spool.Open(spool.Options{Dir: sdir, MaxBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, sp, 1, n)
	sp.Close()
	col := newCollector()
	col.delay = 5 * time.Millisecond
	raddr := freeAddr(t)
	rcv := startReceiver(t, t.TempDir(), raddr, nil, col.handle)
	defer stopReceiver(t, rcv)
	env := []string{"LINK_CHILD=sender", "LINK_SPOOL=" + sdir, "LINK_CONNECT=tcp://" + raddr}
	c := startChild(t, env...)
	for k := 1; k <= 3; k++ {
		want := k * n / 4
		eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d of %d", col.count(), want) }, func() bool { return col.count() >= want })
		c.kill()
		c = startChild(t, env...)
		t.Logf("sender restarted: %s", c.line("READY"))
	}
	eventually(t, 60*time.Second, func() string { return fmt.Sprintf("%d of %d", col.count(), n) }, func() bool { return c.line("DONE") != "" })
	time.Sleep(100 * time.Millisecond)
	missing, dups := col.tally(n)
	st := rcv.Stats()
	t.Logf("receiver: %d records in %d batches, %d duplicates suppressed", st.Records, st.Batches, st.Suppressed)
	if missing != 0 || dups != 0 {
		t.Fatalf("%d missing, %d duplicated", missing, dups)
	}
}

// TestReceiverKilled: the receiver (with a spooled output, through a
// Ledger) is killed with SIGKILL three times under load; its output spool
// gets every record exactly once: the resends of batches it had handed off
// but not acknowledged are dropped by its marks or its ledger. The child
// slows its marks' fsync by 30 ms, so kills land while handed-off events
// wait for their marks: without the ledger the same run appends some
// twice (logged; how many depends on where the kills land).
func TestReceiverKilled(t *testing.T) {
	for _, ledger := range []string{"on", "off"} {
		t.Run("ledger="+ledger, func(t *testing.T) {
			n := crashScale()
			if ledger == "off" {
				n /= 2
			}
			sp, err := spool.Open(spool.Options{Dir: t.TempDir(), MaxBytes: 256 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			raddr := freeAddr(t)
			px, err := testpeer.NewProxy(raddr)
			if err != nil {
				t.Fatal(err)
			}
			defer px.Close()
			var id SenderID
			id[0] = 42
			snd, stop := startSender(t, sp, id, nil, px.Addr())
			defer stop()
			outDir, state := t.TempDir(), t.TempDir()
			env := []string{"LINK_CHILD=receiver", "LINK_OUT=" + outDir, "LINK_STATE=" + state, "LINK_LISTEN=tcp://" + raddr, "LINK_LEDGER=" + ledger}
			c := startChild(t, env...)
			go appendPaced(t, sp, n)
			for k := 1; k <= 3; k++ {
				want := uint64(k * n / 4)
				eventually(t, 60*time.Second, func() string { return fmt.Sprintf("acked %d of %d", snd.Stats().AckedRecords, want) },
					func() bool { return snd.Stats().AckedRecords >= want })
				c.kill()
				c = startChild(t, env...)
			}
			eventually(t, 60*time.Second, func() string { return fmt.Sprintf("acked %d of %d", snd.Stats().AckedRecords, n) },
				func() bool { return snd.Stats().AckedRecords >= uint64(n) && sp.Stats().Records == 0 })
			c.term(t)
			var suppressed, skipped, spoolRedelivered uint64
			fmt.Sscanf(c.line("STATS"), "STATS %d %d %d", &suppressed, &skipped, &spoolRedelivered)
			// Per test record, the spool seqs it was appended under: more
			// than one is a record the link let in twice; one seen twice is
			// the consumer's redelivery after a kill.
			appended := map[string]map[string]bool{}
			redelivered := 0
			b, _ := os.ReadFile(outDir + "/delivered")
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				sseq, tseq, _ := strings.Cut(l, " ")
				if len(tseq) != 12 || !strings.HasPrefix(tseq, "seq:") {
					continue // a line a kill cut off
				}
				if appended[tseq] == nil {
					appended[tseq] = map[string]bool{}
				}
				if appended[tseq][sseq] {
					redelivered++
				}
				appended[tseq][sseq] = true
			}
			var missing, dups int
			for i := 1; i <= n; i++ {
				k := len(appended[fmt.Sprintf("seq:%08d", i)])
				if k == 0 {
					missing++
				}
				if k > 1 {
					dups += k - 1
				}
			}
			files, _ := filepath.Glob(outDir + "/skipped.*")
			for _, f := range files {
				b, _ := os.ReadFile(f)
				k, _ := strconv.ParseUint(string(b), 10, 64)
				skipped += k
			}
			st := snd.Stats()
			t.Logf("ledger %s: %d missing, %d appended twice, %d redelivered by the output spool's consumer; sender resent %d, skipped %d; last receiver suppressed %d, ledgers skipped %d",
				ledger, missing, dups, redelivered, st.ResentRecords, st.SkippedRecords, suppressed, skipped)
			if missing != 0 {
				t.Fatalf("%d records lost", missing)
			}
			if ledger == "on" && dups != 0 {
				t.Fatalf("%d records appended twice with the ledger", dups)
			}
		})
	}
}

// appendPaced appends 1..n in chunks of 1000, 20 ms apart.
func appendPaced(t *testing.T, sp *spool.Disk, n int) {
	for i := 1; i <= n; i += 1000 {
		var recs []spool.Record
		for j := i; j <= min(n, i+999); j++ {
			recs = append(recs, rec(j))
		}
		if err := sp.Append(context.Background(), recs, nil); err != nil {
			if !errors.Is(err, spool.ErrClosed) {
				t.Error(err)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
