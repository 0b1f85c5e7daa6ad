package output

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// TestSpooledAckPushCountsRedeliveries: a spooled acknowledged PUSH marks
// a batch's records Sent as the batch goes out, so after a restart the
// spool counts as redelivered exactly the window that was out
// unacknowledged: not 0 (the records the workers may have), and not the
// records still waiting in the spool behind the window.
func TestSpooledAckPushCountsRedeliveries(t *testing.T) {
	const batch, window = 10, 4
	dir := t.TempDir()
	open := func() *spool.Disk {
		sp, err := spool.Open(spool.Options{Dir: dir, Fsync: spool.FsyncNever})
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	appendN := func(sp spool.Spool, from, n int) {
		recs := make([]spool.Record, n)
		for i := range recs {
			recs[i] = spool.Record{Raw: fmt.Appendf(nil, "<13>1 - h app - - - msgnum:%08d", from+i), Stream: "app"}
		}
		if err := sp.Append(context.Background(), recs, func(error) {}); err != nil {
			t.Fatal(err)
		}
	}
	spooled := func(sp spool.Spool, rig *ackRig) *Spooled {
		o, err := NewSpooled(SpooledConfig{Name: "acked", Spool: sp, Sender: rig.out})
		if err != nil {
			t.Fatal(err)
		}
		return o
	}

	sp := open()
	rig := newAckRig(t, AckPushConfig{Batch: batch, Window: window, Timeout: time.Minute}, 2)
	o := spooled(sp, rig)
	appendN(sp, 0, 1000)
	testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprintf("spool empty: %+v", sp.Stats()) }, func() bool {
		return sp.Stats().Records == 0
	})
	// The sink stops acking: the window fills, every batch of it sent.
	resume := rig.pause()
	appendN(sp, 1000, 500)
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the window to fill"), func() bool {
		st := rig.out.AckStats()
		return st.WindowFull && st.Batches == 1000/batch+window
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	o.Close(ctx) // drain gives up; the window is abandoned, not acked
	cancel()
	resume()

	sp = open()
	if left := sp.Stats().Records; left != 500 {
		t.Fatalf("after reopening the spool holds %d records, want 500", left)
	}
	rig2 := newAckRig(t, AckPushConfig{Batch: batch, Window: window, Timeout: time.Minute}, 2)
	o2 := spooled(sp, rig2)
	defer o2.Close(context.Background())
	testpeer.Eventually(t, 10*time.Second, func() string { return fmt.Sprintf("spool empty: %+v", sp.Stats()) }, func() bool {
		return sp.Stats().Records == 0
	})
	if got := sp.Stats().Redelivered; got != batch*window {
		t.Errorf("redelivered %d, want the window's %d records: exactly those went out unacknowledged", got, batch*window)
	}
	if d := rig2.delivered(); len(d) != 500 {
		t.Errorf("the second run delivered %d distinct events, want the 500 left", len(d))
	}
}
