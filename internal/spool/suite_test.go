package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The shared suite: every Spool implementation passes the same tests.
type impl struct {
	name string
	open func(t *testing.T, o Options) Spool
}

func impls() []impl {
	return []impl{
		{"memory", func(t *testing.T, o Options) Spool { return NewMemory(o) }},
		{"disk", func(t *testing.T, o Options) Spool {
			if o.Dir == "" {
				o.Dir = t.TempDir()
			}
			d, err := Open(o)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}},
	}
}

func TestSuite(t *testing.T) {
	for _, im := range impls() {
		t.Run(im.name, func(t *testing.T) {
			t.Run("fields", func(t *testing.T) { testFields(t, im) })
			t.Run("concurrent_appends_in_order", func(t *testing.T) { testConcurrent(t, im) })
			t.Run("read_waits", func(t *testing.T) { testReadWaits(t, im) })
			t.Run("ack_out_of_order", func(t *testing.T) { testAckOutOfOrder(t, im) })
			t.Run("full_block", func(t *testing.T) { testFullBlock(t, im) })
			t.Run("full_drop_newest", func(t *testing.T) { testDropNewest(t, im) })
			t.Run("full_drop_oldest", func(t *testing.T) { testDropOldest(t, im) })
			t.Run("close", func(t *testing.T) { testClose(t, im) })
			t.Run("too_large", func(t *testing.T) { testTooLarge(t, im) })
		})
	}
}

func rec(i int, size int) Record {
	raw := fmt.Appendf(nil, "<13>1 2026-11-22T05:00:00Z host app - - - event %d ", i)
	for len(raw) < size {
		raw = append(raw, 'x')
	}
	return Record{Raw: raw, Stream: "app", Input: "tcp", Peer: "127.0.0.1:5000", Received: time.Unix(1700000000, int64(i))}
}

func readN(t *testing.T, s Spool, n int) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []Record
	for len(out) < n {
		rs, err := s.Read(ctx, n-len(out))
		if err != nil {
			t.Fatalf("read after %d of %d: %v", len(out), n, err)
		}
		out = append(out, rs...)
	}
	return out
}

// durableWait appends and waits for the durable callback.
func appendWait(t *testing.T, s Spool, recs []Record) error {
	t.Helper()
	done := make(chan error, 1)
	if err := s.Append(context.Background(), recs, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("durable callback never came")
	}
	return nil
}

func testFields(t *testing.T, im impl) {
	s := im.open(t, Options{})
	defer s.Close()
	in := []Record{
		{Raw: []byte("hello"), Stream: "click", Input: "relp", Peer: "10.0.0.1:514", Received: time.Unix(1, 2), Meta: []byte{0, 1, 2}},
		{Raw: nil, Stream: "", Input: "", Peer: ""},
		{Raw: bytes.Repeat([]byte{0xff}, 70000), Stream: "big"},
	}
	if err := appendWait(t, s, in); err != nil {
		t.Fatal(err)
	}
	out := readN(t, s, 3)
	for i := range in {
		a, b := in[i], out[i]
		if a.Seq == 0 || a.Seq != b.Seq || !bytes.Equal(a.Raw, b.Raw) || a.Stream != b.Stream || a.Input != b.Input ||
			a.Peer != b.Peer || !a.Received.Equal(b.Received) || !bytes.Equal(a.Meta, b.Meta) {
			t.Fatalf("record %d: wrote %+v, read %+v", i, a, b)
		}
	}
	if out[1].Seq != out[0].Seq+1 || out[2].Seq != out[1].Seq+1 {
		t.Fatalf("seqs %d %d %d are not consecutive", out[0].Seq, out[1].Seq, out[2].Seq)
	}
}

func testConcurrent(t *testing.T, im impl) {
	s := im.open(t, Options{MemBytes: 64 << 10}) // small: the disk spool reads back from its files too
	defer s.Close()
	const writers, batches, per = 4, 200, 25
	var cbs atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				recs := make([]Record, per)
				for i := range recs {
					recs[i] = rec(w*1_000_000+b*per+i, 100)
				}
				var once atomic.Int32
				if err := s.Append(context.Background(), recs, func(err error) {
					if once.Add(1) != 1 {
						t.Error("durable called twice")
					}
					if err != nil {
						t.Error(err)
					}
					cbs.Add(1)
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	total := writers * batches * per
	got := make([]Record, 0, total)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for len(got) < total {
			rs, err := s.Read(ctx, 500)
			if err != nil {
				t.Error(err)
				return
			}
			got = append(got, rs...)
			s.Ack(rs[0].Seq, rs[len(rs)-1].Seq)
		}
	}()
	wg.Wait()
	<-done
	// Per writer, events in the order appended; seqs strictly increasing.
	last := map[int]int{}
	for i, r := range got {
		if i > 0 && r.Seq <= got[i-1].Seq {
			t.Fatalf("seq %d after %d", r.Seq, got[i-1].Seq)
		}
		var n int
		fmt.Sscanf(string(r.Raw[bytes.Index(r.Raw, []byte("event "))+6:]), "%d", &n)
		w := n / 1_000_000
		if prev, ok := last[w]; ok && n != prev+1 {
			t.Fatalf("writer %d: event %d after %d", w, n, prev)
		}
		last[w] = n
	}
	if len(got) != total {
		t.Fatalf("read %d, want %d", len(got), total)
	}
	testEventually(t, func() bool { return cbs.Load() == writers*batches })
	testEventually(t, func() bool { return s.Stats().Records == 0 })
	if st := s.Stats(); st.Appended != uint64(total) || st.Acked != uint64(total) {
		t.Fatalf("stats %+v", st)
	}
}

func testEventually(t *testing.T, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !f(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}

func testReadWaits(t *testing.T, im impl) {
	s := im.open(t, Options{})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.Read(ctx, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read of an empty spool: %v, want deadline exceeded", err)
	}
	got := make(chan []Record)
	go func() {
		rs, err := s.Read(context.Background(), 10)
		if err != nil {
			t.Error(err)
		}
		got <- rs
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Append(context.Background(), []Record{rec(1, 10)}, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case rs := <-got:
		if len(rs) != 1 {
			t.Fatalf("read %d records", len(rs))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting Read was not woken by Append")
	}
}

func testAckOutOfOrder(t *testing.T, im impl) {
	s := im.open(t, Options{})
	defer s.Close()
	recs := make([]Record, 100)
	for i := range recs {
		recs[i] = rec(i, 50)
	}
	appendWait(t, s, recs)
	out := readN(t, s, 100)
	first := out[0].Seq
	var ranges []Range
	for i := 0; i < 100; i += 10 {
		ranges = append(ranges, Range{first + uint64(i), first + uint64(i) + 9})
	}
	rand.Shuffle(len(ranges), func(i, j int) { ranges[i], ranges[j] = ranges[j], ranges[i] })
	for i, r := range ranges {
		if err := s.Ack(r.First, r.Last); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(r.First, r.Last); err != nil { // repeated: no effect
			t.Fatal(err)
		}
		if got := s.Stats().Records; got != int64(100-10*(i+1)) {
			t.Fatalf("after %d acks: %d records, want %d", i+1, got, 100-10*(i+1))
		}
	}
	if st := s.Stats(); st.Acked != 100 || !st.OldestUnacked.IsZero() {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Ack(5, 4); err == nil {
		t.Fatal("ack with last < first accepted")
	}
}

// fill appends records of size bytes until the next would not fit, then
// checks that one more blocks; it returns how many it appended.
func fill(t *testing.T, s Spool, size int) int {
	t.Helper()
	n := 0
	fs := int64(frameSize(&Record{Raw: rec(0, size).Raw}) + 64)
	for s.Stats().Bytes+fs <= 1<<20 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := s.Append(ctx, []Record{rec(n, size)}, nil)
		cancel()
		if err != nil {
			t.Fatalf("append %d: %v", n, err)
		}
		n++
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	for {
		err := s.Append(ctx, []Record{rec(n, size)}, nil)
		if errors.Is(err, context.DeadlineExceeded) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++ // a segment header's worth of slack
		if s.Stats().Bytes > 1<<20 {
			t.Fatalf("spool holds %d bytes, over max_bytes", s.Stats().Bytes)
		}
	}
}

func testFullBlock(t *testing.T, im impl) {
	s := im.open(t, Options{MaxBytes: 1 << 20, Full: FullBlock})
	defer s.Close()
	n := fill(t, s, 1000)
	if n < 500 || n > 1100 {
		t.Fatalf("%d records of 1 KB fit in 1 MiB", n)
	}
	st := s.Stats()
	if st.Bytes > 1<<20 || st.DroppedNewest+st.DroppedOldest != 0 {
		t.Fatalf("stats %+v", st)
	}
	// Draining and acknowledging makes room; a blocked Append goes on.
	unblocked := make(chan error)
	go func() {
		unblocked <- s.Append(context.Background(), []Record{rec(n, 1000)}, nil)
	}()
	select {
	case <-unblocked:
		t.Fatal("append did not block on a full spool")
	case <-time.After(100 * time.Millisecond):
	}
	out := readN(t, s, n)
	s.Ack(out[0].Seq, out[len(out)-1].Seq)
	select {
	case err := <-unblocked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("append still blocked after the spool was drained")
	}
	if rs := readN(t, s, 1); !bytes.Contains(rs[0].Raw, fmt.Appendf(nil, "event %d ", n)) {
		t.Fatalf("read %q", rs[0].Raw)
	}
}

func testDropNewest(t *testing.T, im impl) {
	s := im.open(t, Options{MaxBytes: 1 << 20, Full: FullDropNewest})
	defer s.Close()
	var dropped int
	n := 0
	for dropped == 0 {
		err := appendWait(t, s, []Record{rec(n, 1000), rec(n+1, 1000)})
		if errors.Is(err, ErrDropped) {
			dropped++
		} else if err != nil {
			t.Fatal(err)
		}
		n += 2
		if n > 5000 {
			t.Fatal("nothing dropped")
		}
	}
	st := s.Stats()
	if st.DroppedNewest == 0 || st.Bytes > 1<<20 {
		t.Fatalf("stats %+v", st)
	}
	// What was kept is the oldest, in order.
	out := readN(t, s, int(st.Records))
	if !bytes.Contains(out[0].Raw, []byte("event 0 ")) {
		t.Fatalf("first kept %q", out[0].Raw)
	}
	if int(st.Appended)+int(st.DroppedNewest) != n {
		t.Fatalf("appended %d + dropped %d != %d", st.Appended, st.DroppedNewest, n)
	}
}

func testDropOldest(t *testing.T, im impl) {
	s := im.open(t, Options{MaxBytes: 1 << 20, Full: FullDropOldest})
	defer s.Close()
	const n = 3000 // 3 MB through a 1 MiB spool
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.Append(ctx, []Record{rec(i, 1000)}, nil); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		cancel()
	}
	var st Stats
	testEventually(t, func() bool {
		st = s.Stats()
		return int(st.Records)+int(st.DroppedOldest) == n
	})
	if st.DroppedOldest == 0 || st.Bytes > 1<<20 {
		t.Fatalf("stats %+v", st)
	}
	out := readN(t, s, int(st.Records))
	if !bytes.Contains(out[len(out)-1].Raw, fmt.Appendf(nil, "event %d ", n-1)) {
		t.Fatalf("newest %q", out[len(out)-1].Raw)
	}
	for i := 1; i < len(out); i++ {
		if out[i].Seq != out[i-1].Seq+1 {
			t.Fatalf("hole between %d and %d in what was kept", out[i-1].Seq, out[i].Seq)
		}
	}
}

func testClose(t *testing.T, im impl) {
	s := im.open(t, Options{})
	res := make(chan error)
	go func() {
		_, err := s.Read(context.Background(), 1)
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("blocked read: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked read not woken by Close")
	}
	if err := s.Append(context.Background(), []Record{rec(0, 10)}, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second close:", err)
	}
}

func testTooLarge(t *testing.T, im impl) {
	s := im.open(t, Options{MaxBytes: 1 << 20})
	defer s.Close()
	if err := s.Append(context.Background(), []Record{rec(0, 1<<20)}, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("append of a record bigger than the spool: %v", err)
	}
}
