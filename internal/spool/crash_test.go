package spool

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("SPOOL_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	os.Exit(m.Run())
}

// crashChild appends to the spool in dir until it is killed. It reports
// on stdout, one line per write (atomic on a pipe), every batch once its
// durable callback said so ("D first last gen k0": seqs first..last hold
// events gen-k0..), every run of consecutive seqs its reader got ("R first
// last"), and every range its reader acknowledges ("A first last"), just
// before Ack.
func crashChild(dir string) {
	gen, _ := strconv.Atoi(os.Getenv("SPOOL_CRASH_GEN"))
	// SPOOL_CRASH_KEEPUP: the reader keeps up (big reads, no pause, the
	// backlog of earlier generations acknowledged as read, the appenders
	// paced), so it reads
	// what was just appended, from memory, while the committer writes and
	// fsyncs (slowed to a slow disk's 2 ms); else it falls behind and
	// reads from the files.
	keepUp := os.Getenv("SPOOL_CRASH_KEEPUP") != ""
	o := Options{Dir: dir, SegmentBytes: 256 << 10, MemBytes: 128 << 10}
	if keepUp {
		o.hooks = &hooks{sync: func(f *os.File) error {
			time.Sleep(2 * time.Millisecond)
			return fdatasync(f)
		}}
	}
	d, err := Open(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		os.Stdout.WriteString(fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	say("READY\n")
	var k int
	var kmu sync.Mutex
	for range 3 {
		go func() {
			for {
				n := 1 + rand.IntN(60)
				kmu.Lock()
				k0 := k
				k += n
				kmu.Unlock()
				recs := make([]Record, n)
				for i := range recs {
					recs[i] = Record{Raw: fmt.Appendf(nil, "g%d-k%d %0*d", gen, k0+i, rand.IntN(300), 0), Stream: "s", Received: time.Now()}
				}
				// recs' order within the batch is kept, but batches of
				// different goroutines interleave: report the seqs.
				err := d.Append(context.Background(), recs, func(err error) {
					if err == nil {
						say("D %d %d %d %d\n", recs[0].Seq, recs[n-1].Seq, gen, k0)
					}
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				if keepUp { // paced, so that one reader can keep up
					time.Sleep(time.Duration(500+rand.IntN(1000)) * time.Microsecond)
				}
			}
		}()
	}
	// The reader sends (marks) and acknowledges some, out of order, so
	// checkpoints and segment deletions happen while the kills land.
	d.mu.Lock()
	backlog := d.nextSeq // below: appended by earlier generations
	d.mu.Unlock()
	for {
		max := 1 + rand.IntN(200)
		if keepUp {
			max = 2000
		}
		rs, err := d.Read(context.Background(), max)
		if err != nil {
			os.Exit(4)
		}
		// Runs of consecutive seqs: a batch may span the numbers a
		// restart left unused.
		for i, j := 0, 0; i < len(rs); i = j {
			for j = i + 1; j < len(rs) && rs[j].Seq == rs[j-1].Seq+1; j++ {
			}
			say("R %d %d\n", rs[i].Seq, rs[j-1].Seq)
		}
		d.Sent(Range{rs[0].Seq, rs[len(rs)-1].Seq})
		if keepUp && rs[0].Seq < backlog {
			say("A %d %d\n", rs[0].Seq, rs[len(rs)-1].Seq)
			d.Ack(rs[0].Seq, rs[len(rs)-1].Seq)
		} else if rand.IntN(3) > 0 {
			half := len(rs) / 2
			// Announced before Ack: a kill between an Ack and a line
			// written after it would make a record acknowledged (and
			// rightly gone) look lost to the parent.
			say("A %d %d\n", rs[half].Seq, rs[len(rs)-1].Seq)
			d.Ack(rs[half].Seq, rs[len(rs)-1].Seq)
			say("A %d %d\n", rs[0].Seq, rs[len(rs)-1].Seq)
			d.Ack(rs[0].Seq, rs[len(rs)-1].Seq)
		}
		if !keepUp {
			time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		}
	}
}

// TestKill9 kills a child process that appends, reads and acknowledges,
// 20 times at random moments; after reopening, every record reported
// durable and not acknowledged is there, once, in order, with its content,
// and so is every record the reader got (durable or not yet) and did not
// acknowledge: the spool hands out nothing a kill makes it forget. Once
// with a reader that falls behind (reading from the files), once with one
// that keeps up (reading from memory what the committer just wrote).
func TestKill9(t *testing.T) {
	t.Run("reader-behind", func(t *testing.T) { kill9(t, false) })
	t.Run("reader-keeps-up", func(t *testing.T) { kill9(t, true) })
}

func kill9(t *testing.T, keepUp bool) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	durable := map[uint64]string{} // seq → raw prefix
	acked, read := rangeSet{}, rangeSet{}
	kills := 20
	for gen := range kills {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), "SPOOL_CRASH_CHILD="+dir, "SPOOL_CRASH_GEN="+strconv.Itoa(gen))
		if keepUp {
			cmd.Env = append(cmd.Env, "SPOOL_CRASH_KEEPUP=1")
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || sc.Text() != "READY" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child %d did not start: %q", gen, sc.Text())
		}
		timer := time.AfterFunc(time.Duration(50+rand.IntN(250))*time.Millisecond, func() {
			cmd.Process.Signal(syscall.SIGKILL)
		})
		for sc.Scan() {
			var a, b, g, k0 uint64
			switch line := sc.Text(); line[0] {
			case 'D':
				fmt.Sscanf(line, "D %d %d %d %d", &a, &b, &g, &k0)
				for s := a; s <= b; s++ {
					durable[s] = fmt.Sprintf("g%d-k%d ", g, k0+s-a)
				}
			case 'A':
				fmt.Sscanf(line, "A %d %d", &a, &b)
				acked.add(Range{a, b})
			case 'R':
				fmt.Sscanf(line, "R %d %d", &a, &b)
				read.add(Range{a, b})
			}
		}
		timer.Stop()
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child %d ended by %v, not by the kill", gen, err)
		}
	}
	d, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got := readAll(t, d)
	seen := map[uint64]bool{}
	for i, r := range got {
		if seen[r.Seq] {
			t.Fatalf("seq %d twice", r.Seq)
		}
		seen[r.Seq] = true
		if i > 0 && r.Seq <= got[i-1].Seq {
			t.Fatalf("seq %d after %d", r.Seq, got[i-1].Seq)
		}
		if want, ok := durable[r.Seq]; ok && string(r.Raw[:len(want)]) != want {
			t.Fatalf("seq %d holds %q, was reported durable as %q", r.Seq, r.Raw, want)
		}
	}
	missing := 0
	for s := range durable {
		if _, ok := acked.contains(s); !ok && !seen[s] {
			missing++
			if missing < 5 {
				t.Errorf("seq %d (%s) was reported durable, never acknowledged, and is gone", s, durable[s])
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d durable records lost", missing)
	}
	// A run may span records Read skipped because they were acknowledged:
	// acked covers those.
	gone := 0
	for _, r := range read {
		for s := r.First; s <= r.Last; s++ {
			if _, ok := acked.contains(s); !ok && !seen[s] {
				gone++
				if gone < 5 {
					t.Errorf("seq %d was handed to the reader, never acknowledged, and is gone after a kill", s)
				}
			}
		}
	}
	if gone > 0 {
		t.Fatalf("%d records read and then lost with the process", gone)
	}
	st := d.Stats()
	t.Logf("%d kills: %d records reported durable, %d acknowledged ranges, %d left and read back; redelivered %d; truncated tails %d",
		kills, len(durable), len(acked), len(got), st.Redelivered, st.TruncatedTails)
	if len(durable) < 1000 {
		t.Fatalf("only %d records reported durable: the children barely ran", len(durable))
	}
}
