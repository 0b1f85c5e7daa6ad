package output

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// copyDir copies dir's regular files to a new directory: what a kill -9 at
// this instant would leave on disk (the page cache survives the process).
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// TestPushSenderMarksBeforeTheKernelTakes: a kill -9 right after a
// write(2) returned (before anything else runs: the spool directory is
// copied from the Taken hook) leaves a spool that, read again, counts every
// record that write took as redelivered: they reach the worker, and will
// again. Marking after the write(2) (the old Taken mark) left them
// uncounted: 244 duplicates with relay_spool_redelivered_total 0 in
// TestLinkChaos/receiver-kill. The count exceeds them at most by the rest
// of that write.
func TestPushSenderMarksBeforeTheKernelTakes(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(spool.Options{Dir: dir, Fsync: spool.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	push := zmq.NewPush(zmq.Options{})
	if err := push.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	pull := zmq.NewPull(zmq.Options{RecvHWM: 100000})
	defer pull.Close()
	if err := pull.Dial("tcp://" + push.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	snd := NewPushSender(push, Raw, sp)
	var (
		mu         sync.Mutex
		snap       string
		taken      int // messages the first write(2) took
		firstWrite int // messages of the write it belongs to
	)
	push.SetWriteHooks(zmq.WriteHooks{
		Writing: func(ms []zmq.Msg) {
			mu.Lock()
			if snap == "" && firstWrite == 0 {
				firstWrite = len(ms)
			}
			mu.Unlock()
			snd.writing(ms)
		},
		Waiting: snd.waiting,
		Taken: func(ms []zmq.Msg) {
			mu.Lock()
			defer mu.Unlock()
			if snap == "" {
				snap, taken = copyDir(t, dir), len(ms)
			}
		},
		After: snd.after,
	})
	const n = 2000
	recs := make([]spool.Record, n)
	for i := range recs {
		recs[i] = spool.Record{Raw: fmt.Appendf(nil, "event %06d %s", i, bytes.Repeat([]byte{'x'}, 280))}
	}
	if err := sp.Append(context.Background(), recs, nil); err != nil {
		t.Fatal(err)
	}
	var read []spool.Record
	for len(read) < n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rs, err := sp.Read(ctx, n-len(read))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		read = append(read, rs...)
	}
	acked := make(chan struct{}, n)
	if err := snd.Send(context.Background(), read, func(first, last uint64) {
		for range last - first + 1 {
			acked <- struct{}{}
		}
	}); err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case <-acked:
		case <-time.After(20 * time.Second):
			t.Fatal("not every record was written")
		}
	}
	snd.Close(context.Background())
	sp.Close()
	mu.Lock()
	defer mu.Unlock()
	if snap == "" || taken == 0 {
		t.Fatal("no write(2) took anything")
	}

	// The restart after the kill.
	again, err := spool.Open(spool.Options{Dir: snap, Fsync: spool.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	left := again.Stats().Records
	for got := int64(0); got < left; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rs, err := again.Read(ctx, n)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		got += int64(len(rs))
	}
	red := again.Stats().Redelivered
	t.Logf("killed after the first write(2): it took %d of its write's %d messages; the restarted spool redelivers %d records, counts %d", taken, firstWrite, left, red)
	if red < uint64(taken) {
		t.Errorf("the write(2) put %d records in the kernel (they reach the worker), but only %d are counted as redelivered: duplicates no counter shows", taken, red)
	}
	if red > uint64(firstWrite) {
		t.Errorf("%d counted as redelivered, more than the %d messages of the write the kill interrupted", red, firstWrite)
	}
}
