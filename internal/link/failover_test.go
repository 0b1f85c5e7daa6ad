package link

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// TestFailoverAndBack: the first receiver becomes unreachable mid-stream;
// the sender fails over to the second, then back once the first answers
// again. What exactly once means across two receivers, checked here:
// nothing is lost (the union holds every record), neither receiver takes a
// record twice, and a record reaches both only if it was in flight to the
// first when it went away: at most the sender's FailoverResent.
func TestFailoverAndBack(t *testing.T) {
	const n = 40000
	srvTLS, cliTLS, _ := tlsPair(t)
	colA, colB := newCollector(), newCollector()
	colA.delay = 20 * time.Millisecond // hand-offs and acks trail: the cut catches batches in flight
	addrA, addrB := freeAddr(t), freeAddr(t)
	rA := startReceiver(t, t.TempDir(), addrA, srvTLS, colA.handle)
	defer stopReceiver(t, rA)
	rB := startReceiver(t, t.TempDir(), addrB, srvTLS, colB.handle)
	defer stopReceiver(t, rB)
	pA, err := testpeer.NewProxy(addrA)
	if err != nil {
		t.Fatal(err)
	}
	defer pA.Close()
	sdir := t.TempDir()
	sp, err := spool.Open(spool.Options{Dir: sdir, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	id, _ := LoadID(sdir)
	// A 3 s heartbeat timeout (also the receiver's read deadline): with the
	// 1 s of the other tests, a sender starved of CPU (GOMAXPROCS=1, -race,
	// busy loops beside it) went silent for 1 s, A closed the session and
	// the sender failed over before the blackhole: A took under 8000 of
	// the first 20000.
	snd, stop := startSenderTuned(t, sp, id, linkSec{tls: cliTLS}, func(c *SenderConfig) {
		c.HeartbeatTimeout, c.DialTimeout = 3*time.Second, 3*time.Second
	}, pA.Addr(), addrB)
	defer stop()
	var appended atomic.Int64
	feed := func(from, to int) {
		go func() {
			for i := from; i <= to; i += 1000 {
				appendN(t, sp, i, i+999)
				appended.Store(int64(i + 999))
				time.Sleep(30 * time.Millisecond)
			}
		}()
	}
	total := func() int { return colA.count() + colB.count() }
	feed(1, 20000)
	eventually(t, 20*time.Second, func() string { return fmt.Sprint(total()) }, func() bool { return colA.count() >= 8000 })
	pA.Blackhole(true) // A is gone for the sender
	eventually(t, 20*time.Second, func() string { return fmt.Sprintf("B has %d", colB.count()) }, func() bool { return colB.count() >= 5000 })
	if st := snd.Stats(); st.Failovers != 1 || st.Endpoint != "tcp://"+addrB {
		t.Fatalf("failovers %d, endpoint %s", st.Failovers, st.Endpoint)
	}
	pA.Blackhole(false)
	pA.Reset()
	eventually(t, 20*time.Second, func() string { return fmt.Sprintf("failbacks %d", snd.Stats().Failbacks) }, func() bool { return snd.Stats().Failbacks >= 1 })
	eventually(t, 20*time.Second, func() string { return fmt.Sprint(appended.Load()) }, func() bool { return appended.Load() == 20000 })
	feed(20001, n)
	eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("A %d + B %d, spool %d", colA.count(), colB.count(), sp.Stats().Records)
	}, func() bool { return appended.Load() == n && sp.Stats().Records == 0 })

	missA, dupA := colA.tally(n)
	missB, dupB := colB.tally(n)
	both := 0
	for i := 1; i <= n; i++ {
		a, b := colA.seqs[uint64(i)], colB.seqs[uint64(i)]
		if a > 0 && b > 0 {
			both++
		}
		if a == 0 && b == 0 {
			t.Fatalf("record %d lost", i)
		}
	}
	st := snd.Stats()
	t.Logf("A took %d (missing %d), B took %d (missing %d); in both: %d; failover resent %d; failovers %d, failbacks %d",
		n-missA, missA, n-missB, missB, both, st.FailoverResent, st.Failovers, st.Failbacks)
	if dupA != 0 || dupB != 0 {
		t.Fatalf("a receiver took a record twice: A %d, B %d", dupA, dupB)
	}
	if uint64(both) > st.FailoverResent {
		t.Fatalf("%d records in both receivers, more than the %d the fail-over resent", both, st.FailoverResent)
	}
	if colA.seqs[n] != 1 {
		t.Fatal("the last record did not go to A after the fail-back")
	}
}
