package link

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// TestExactlyOnceAcrossCuts sends records through a proxy that resets,
// blackholes and throttles the link while the receiver restarts twice:
// every record reaches the receiver's handler exactly once and the spool
// is fully acknowledged.
func TestExactlyOnceAcrossCuts(t *testing.T) {
	const n = 60000
	srvTLS, cliTLS, _ := tlsPair(t)
	sdir, rdir := t.TempDir(), t.TempDir()
	sp, err := spool.Open(spool.Options{Dir: sdir, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	id, err := LoadID(sdir)
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	col.delay = 2 * time.Millisecond // acks trail the data, so cuts catch batches in flight
	raddr := freeAddr(t)
	rcv := startReceiver(t, rdir, raddr, srvTLS, col.handle)
	px, err := testpeer.NewProxy(raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	snd, stop := startSender(t, sp, id, cliTLS, px.Addr())
	defer stop()

	var appended atomic.Int64
	go func() {
		for i := 1; i <= n; i += 1000 {
			appendN(t, sp, i, min(n, i+999))
			appended.Store(int64(min(n, i+999)))
			time.Sleep(40 * time.Millisecond)
		}
	}()
	progress := func(k int) {
		eventually(t, 30*time.Second, func() string { return fmt.Sprintf("collector has %d of %d", col.count(), k) },
			func() bool { return col.count() >= k })
	}
	// The first cut comes while the collector holds the hand-offs of what
	// reaches it, so a batch is surely unacknowledged at the cut (as in
	// TestCurveExactlyOnceThroughResets, whose 2 ms delay alone once left
	// nothing in flight).
	hold := make(chan struct{})
	col.mu.Lock()
	col.hold = hold
	col.mu.Unlock()
	progress(5000)
	px.Reset()
	col.mu.Lock()
	col.hold = nil
	col.mu.Unlock()
	close(hold)
	progress(15000)
	px.Blackhole(true)
	eventually(t, 10*time.Second, func() string { return "sender did not notice the blackhole" }, func() bool { return !snd.Stats().Connected })
	px.Blackhole(false)
	px.Reset()
	progress(25000)
	var suppressed uint64
	stopReceiver(t, rcv) // SIGTERM-like: hand-offs finish, marks written
	suppressed += rcv.Stats().Suppressed
	rcv = startReceiver(t, rdir, raddr, srvTLS, col.handle)
	progress(35000)
	px.Throttle(200 << 10)
	time.Sleep(500 * time.Millisecond)
	px.Throttle(0)
	px.Reset()
	progress(45000)
	stopReceiver(t, rcv)
	suppressed += rcv.Stats().Suppressed
	rcv = startReceiver(t, rdir, raddr, srvTLS, col.handle)
	defer stopReceiver(t, rcv)
	progress(n)
	eventually(t, 10*time.Second, func() string { return fmt.Sprintf("spool still holds %d records", sp.Stats().Records) },
		func() bool { return sp.Stats().Records == 0 })
	missing, dups := col.tally(n)
	st, rs := snd.Stats(), rcv.Stats()
	t.Logf("sender: sessions %d, batches %d, resent %d batches / %d records, skipped %d, window %d, ack rtt %s, ratio %.2f",
		st.Sessions, st.Batches, st.ResentBatches, st.ResentRecords, st.SkippedRecords, st.Window, st.AckRTT, float64(st.RawBytes)/float64(st.WireBytes))
	suppressed += rs.Suppressed
	t.Logf("receivers: suppressed %d duplicates", suppressed)
	if missing != 0 || dups != 0 {
		t.Fatalf("%d missing, %d duplicated", missing, dups)
	}
	// Batches the receiver had handed off when a cut lost their ACKs are
	// acknowledged by its WELCOME mark (skipped, not sent again); those it
	// had not are sent again.
	if st.SkippedRecords == 0 || st.ResentRecords == 0 {
		t.Errorf("skipped %d, resent %d: the cuts caught nothing in flight", st.SkippedRecords, st.ResentRecords)
	}
	if st.Sessions < 4 {
		t.Errorf("only %d sessions: the cuts did not cut", st.Sessions)
	}
}

// TestContiguousMark: a later batch handed off before an earlier one
// whose hand-off fails does not move the mark over the hole; the sender
// resends, the receiver takes the failed batch and drops the later one.
func TestContiguousMark(t *testing.T) {
	rdir := t.TempDir()
	col := newCollector()
	var failOnce atomic.Bool
	failOnce.Store(true)
	col.fail = func(seq uint64) bool { return seq == 3 && failOnce.CompareAndSwap(true, false) }
	// Hand-offs wait until every batch is in, so the later batches are
	// handed off before the failure closes the session (otherwise it
	// depended on whether they had arrived by then).
	col.hold = make(chan struct{})
	raddr := freeAddr(t)
	rcv := startReceiver(t, rdir, raddr, nil, col.handle)
	defer stopReceiver(t, rcv)
	sp := spool.NewMemory(spool.Options{MaxBytes: 16 << 20})
	var id SenderID
	id[0] = 7
	s, err := NewSender(SenderConfig{Name: "t", Connect: []string{"tcp://" + raddr}, ID: id, BatchRecords: 2,
		Heartbeat: 100 * time.Millisecond, ReconnectMax: 100 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	appendN(t, sp, 1, 10)
	recs, _ := sp.Read(context.Background(), 10)
	acked := make(chan [2]uint64, 100)
	if err := s.Send(context.Background(), recs, func(f, l uint64) { acked <- [2]uint64{f, l} }); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string { return fmt.Sprintf("receiver has %d of 10 records", rcv.Stats().Records) },
		func() bool { return rcv.Stats().Records >= 10 })
	close(col.hold)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	missing, dups := col.tally(10)
	if missing != 0 || dups != 0 {
		t.Fatalf("%d missing, %d duplicated", missing, dups)
	}
	st := rcv.Stats()
	if st.HandoffFailures != 1 || st.Suppressed == 0 {
		t.Fatalf("hand-off failures %d, suppressed %d: want 1 and the later batches suppressed", st.HandoffFailures, st.Suppressed)
	}
	var last uint64
	for len(acked) > 0 {
		a := <-acked
		if a[0] <= last {
			t.Fatalf("ack %v after %d: out of order", a, last)
		}
		last = a[1]
	}
	if last != 10 {
		t.Fatalf("acked up to %d, want 10", last)
	}
}

// TestCompressions: batches arrive whole with zstd, s2 and none, and the
// wire bytes show the compression.
func TestCompressions(t *testing.T) {
	for _, c := range []Compression{CompressNone, CompressZstd, CompressS2} {
		col := newCollector()
		raddr := freeAddr(t)
		rcv := startReceiver(t, t.TempDir(), raddr, nil, col.handle)
		sp := spool.NewMemory(spool.Options{})
		var id SenderID
		id[0] = byte(c + 1)
		s, err := NewSender(SenderConfig{Name: "t", Connect: []string{"tcp://" + raddr}, ID: id, Compression: c, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go Drain(ctx, sp, s, 1000)
		recs := realistic(3000, 1)
		for i := range recs {
			recs[i].Seq = 0
			recs[i].Raw = append(recs[i].Raw, fmt.Sprintf(" seq:%08d", i+1)...)
		}
		sp.Append(context.Background(), recs, nil)
		eventually(t, 10*time.Second, func() string { return fmt.Sprint(col.count()) }, func() bool { return col.count() == 3000 })
		missing, dups := col.tally(3000)
		st := s.Stats()
		t.Logf("compression %d: %d raw bytes, %d on the wire (%.2f:1)", c, st.RawBytes, st.WireBytes, float64(st.RawBytes)/float64(st.WireBytes))
		if missing != 0 || dups != 0 {
			t.Fatalf("compression %d: %d missing, %d duplicated", c, missing, dups)
		}
		if (c == CompressNone) != (st.RawBytes == st.WireBytes) || rcv.Stats().RawBytes != st.RawBytes {
			t.Fatalf("compression %d: raw %d, wire %d, receiver raw %d", c, st.RawBytes, st.WireBytes, rcv.Stats().RawBytes)
		}
		cancel()
		s.Close(context.Background())
		stopReceiver(t, rcv)
	}
}

// TestCompressPipeline: with batches compressed by four workers at once
// (tiny batches, so many are in the pipeline together), they still go out
// in order, tile the sequence space, and every record arrives once; Flush
// waits for the batches still being compressed.
func TestCompressPipeline(t *testing.T) {
	col := newCollector()
	raddr := freeAddr(t)
	rcv := startReceiver(t, t.TempDir(), raddr, nil, col.handle)
	defer stopReceiver(t, rcv)
	sp := spool.NewMemory(spool.Options{MaxBytes: 64 << 20})
	var id SenderID
	id[0] = 4
	s, err := NewSender(SenderConfig{Name: "t", Connect: []string{"tcp://" + raddr}, ID: id, Compression: CompressZstd,
		BatchRecords: 7, CompressWorkers: 4, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	const n = 20000
	appendN(t, sp, 1, n)
	recs, err := sp.Read(context.Background(), n)
	if err != nil || len(recs) != n {
		t.Fatalf("read %d: %v", len(recs), err)
	}
	var acked atomic.Uint64
	for len(recs) > 0 {
		k := min(len(recs), 333)
		if err := s.Send(context.Background(), recs[:k], func(first, last uint64) { acked.Add(last - first + 1) }); err != nil {
			t.Fatal(err)
		}
		recs = recs[k:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if acked.Load() != n {
		t.Fatalf("Flush returned with %d of %d acknowledged", acked.Load(), n)
	}
	missing, dups := col.tally(n)
	if missing != 0 || dups != 0 || rcv.Stats().Malformed != 0 {
		t.Fatalf("%d missing, %d duplicated, %d malformed sessions", missing, dups, rcv.Stats().Malformed)
	}
	if st := s.Stats(); st.Batches < n/7 {
		t.Fatalf("%d batches: the pipeline was not exercised", st.Batches)
	}
}
