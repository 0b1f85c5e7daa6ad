package zmq

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SendBatch delivers to a libzmq SUB exactly what Send would: the
// messages whose topic matches a subscription, in order, with runs of
// wanted and unwanted topics inside one batch.
func TestLibzmqPubSendBatch(t *testing.T) {
	needLibzmq(t)
	pub := NewPub(Options{})
	closeAll(t, pub)
	ep := bound(t, pub)
	z := startZpeer(t, "sub", "connect", ep, "--print")
	z.do("sub a")
	waitFor(t, 10*time.Second, "subscription a", func() bool {
		pub.SendBatch([]Msg{{[]byte("a.probe")}})
		return strings.Contains(strings.Join(z.received(), ","), "a.probe")
	})
	var batch []Msg
	var want []string
	for i := range 40 {
		topic := []string{"a", "a", "b", "a", "c", "c"}[i%6] + fmt.Sprint(i)
		batch = append(batch, Msg{[]byte(topic), []byte("x")})
		if topic[0] == 'a' {
			want = append(want, topic+"|x")
		}
	}
	if err := pub.SendBatch(batch[:17]); err != nil {
		t.Fatal(err)
	}
	if err := pub.SendBatch(batch[17:]); err != nil {
		t.Fatal(err)
	}
	// A marker after them: once it is in, so is anything unwanted the
	// batches let through (one connection keeps the order).
	pub.Send(Msg{[]byte("a.end"), []byte("x")})
	real := func() []string {
		var out []string
		for _, m := range z.received() {
			if !strings.HasSuffix(m, ".probe") && m != "a.end|x" {
				out = append(out, m)
			}
		}
		return out
	}
	waitFor(t, 10*time.Second, "the marker after the batches", func() bool { return slices.Contains(z.received(), "a.end|x") })
	if got := strings.Join(real(), ","); got != strings.Join(want, ",") {
		t.Fatalf("got %s\nwant %s", got, strings.Join(want, ","))
	}
	if d := pub.Stats().Drops[DropPubQueueFull]; d != 0 {
		t.Fatalf("%d drops with a reading subscriber", d)
	}
}

// With SendBatch, a stalled subscriber drops what does not fit (counted
// per peer and in total, and every message is either delivered or counted
// dropped) while a subscriber that keeps up loses nothing.
func TestPubSendBatchDropsForSlowSubscriberOnly(t *testing.T) {
	pub, fast, slow, fastPeer, slowPeer := fastAndStalledSubs(t)
	ctx := testCtx(t, 30*time.Second)
	const n, batchLen = 50000, 32
	fastGot := countRecv(ctx, fast, n)
	payload := bytes.Repeat([]byte("d"), 2000)
	batch := make([]Msg, batchLen)
	for i := range batch {
		batch[i] = Msg{payload}
	}
	for i := 0; i < n; i += batchLen {
		k := min(batchLen, n-i)
		for j := range k {
			p := bytes.Clone(payload)
			copy(p, fmt.Sprintf("%08d", i+j)) // a sequence number, to check order
			batch[j] = Msg{p}
		}
		pub.SendBatch(batch[:k])
		// Pace like a real producer so the only reason to drop is the
		// slow subscriber.
		for fastPeer.q.len() > 50 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	if got := fastGot(); got != n {
		t.Fatalf("fast subscriber got %d of %d", got, n)
	}
	if d := fastPeer.drops.Load(); d != 0 {
		t.Fatalf("fast subscriber had %d drops", d)
	}
	st := pub.Stats()
	dropped := slowPeer.drops.Load()
	if dropped == 0 || dropped != st.Drops[DropPubQueueFull] {
		t.Fatalf("slow peer dropped %d, socket counted %d: want the same, not 0", dropped, st.Drops[DropPubQueueFull])
	}
	// Read the slow subscriber dry: what it got is in order, without
	// duplicates, and with what was counted dropped it is everything sent.
	slowGot, last := 0, -1
	for uint64(slowGot)+dropped < n {
		m, err := slow.Recv(ctx)
		if err != nil {
			t.Fatalf("slow subscriber: %d delivered + %d dropped of %d: %v", slowGot, dropped, n, err)
		}
		seq, _ := strconv.Atoi(string(m[0][:8]))
		if seq <= last {
			t.Fatalf("slow subscriber got %d after %d", seq, last)
		}
		last = seq
		slowGot++
	}
	// Its queue is empty now: a marker gets in, and must come next.
	if err := pub.Send(Msg{[]byte("end")}); err != nil {
		t.Fatal(err)
	}
	if m, err := slow.Recv(ctx); err != nil || string(m[0]) != "end" {
		t.Fatalf("slow subscriber got %q (%v) beyond %d delivered + %d dropped, want the marker", m, err, slowGot, dropped)
	}
}

// BenchmarkPubFanout compares Send per message with SendBatch of 256 (the
// relay's input batch) to two subscribers reading everything. ns/op is
// bound by the subscribers; send-ns/msg is the time spent in the calls,
// what the router's goroutine pays, side by side.
func BenchmarkPubFanout(b *testing.B) {
	for _, mode := range []string{"Send", "SendBatch"} {
		b.Run(mode, func(b *testing.B) {
			pub := NewPub(Options{HWM: 100000})
			defer pub.Close()
			if err := pub.Listen("tcp://127.0.0.1:0"); err != nil {
				b.Fatal(err)
			}
			ep := tcpEndpoint(pub.Addrs()[0])
			const subs = 2
			var wg sync.WaitGroup
			for i := range subs {
				s := NewSub(Options{RecvHWM: 100000})
				defer s.Close()
				s.Subscribe("")
				s.Dial(ep)
				for {
					l := *pub.list.Load()
					if len(l) == i+1 && l[i].subs.Load().match(nil) {
						break
					}
					time.Sleep(time.Millisecond)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]Msg, 256)
					for n := 0; n < b.N; {
						k, err := s.RecvBatch(b.Context(), buf)
						if err != nil {
							return
						}
						n += k
					}
				}()
			}
			peers := *pub.list.Load()
			batch := make([]Msg, 256)
			for i := range batch {
				batch[i] = Msg{[]byte("click"), make([]byte, 200)}
			}
			var inSend time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i += len(batch) {
				k := min(len(batch), b.N-i)
				t0 := time.Now()
				if mode == "Send" {
					for _, m := range batch[:k] {
						pub.Send(m)
					}
				} else {
					pub.SendBatch(batch[:k])
				}
				inSend += time.Since(t0)
				for maxDepth(peers) > 50000 {
					time.Sleep(10 * time.Microsecond)
				}
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(inSend.Nanoseconds())/float64(b.N), "send-ns/msg")
			if d := pub.Stats().Drops[DropPubQueueFull]; d != 0 {
				b.Fatalf("%d drops: the benchmark must pace to the subscribers", d)
			}
		})
	}
}

// SendBatch matches a run of one topic once: subscribers to a prefix, to
// everything, and to nothing in the batch get exactly their messages, in
// order, from batches where topics repeat. The everything subscription
// stops matching once cancelled.
func TestPubSendBatchRuns(t *testing.T) {
	pub := NewPub(Options{})
	closeAll(t, pub)
	ep := bound(t, pub)
	subs := map[string]*Sub{}
	for i, prefix := range []string{"cl", "", "zz"} {
		s := NewSub(Options{})
		closeAll(t, s)
		s.Subscribe(prefix)
		s.Dial(ep)
		waitFor(t, 5*time.Second, "subscriber "+prefix, func() bool {
			l := *pub.list.Load()
			return len(l) == i+1 && l[i].subs.Load().match([]byte(prefix+"x"))
		})
		subs[prefix] = s
	}
	topics := []string{"click", "click", "view", "view", "view", "click", "buy", "click", "click", "view"}
	var batch []Msg
	want := map[string][]string{}
	for i, tp := range topics {
		body := fmt.Sprint(i)
		batch = append(batch, Msg{[]byte(tp), []byte(body)})
		want[""] = append(want[""], tp+"|"+body)
		if strings.HasPrefix(tp, "cl") {
			want["cl"] = append(want["cl"], tp+"|"+body)
		}
	}
	if err := pub.SendBatch(batch[:4]); err != nil { // ends inside a run
		t.Fatal(err)
	}
	if err := pub.SendBatch(batch[4:]); err != nil {
		t.Fatal(err)
	}
	pub.Send(Msg{[]byte("zz.end"), []byte("end")}) // a marker only "" and "zz" take
	ctx := testCtx(t, 10*time.Second)
	for prefix, s := range subs {
		var got []string
		for {
			m, err := s.Recv(ctx)
			if err != nil {
				t.Fatalf("%q: %v after %q", prefix, err, got)
			}
			if string(m[0]) == "zz.end" {
				break
			}
			got = append(got, string(m[0])+"|"+string(m[1]))
			if prefix == "cl" && len(got) == len(want["cl"]) {
				break // "cl" never gets the marker
			}
		}
		if strings.Join(got, ",") != strings.Join(want[prefix], ",") {
			t.Errorf("%q got %q, want %q", prefix, got, want[prefix])
		}
	}
	pub.Send(Msg{[]byte("cl.end"), []byte("end")}) // a marker "cl" takes: it must come next
	if m, err := subs["cl"].Recv(ctx); err != nil || string(m[0]) != "cl.end" {
		t.Errorf(`"cl" got %q (%v) beyond its messages, want the marker`, m, err)
	}
	s, _ := (&subSet{}).with("", 1)
	if s, _ = s.with("", -1); s.all || s.match([]byte("x")) {
		t.Error("a cancelled subscription to everything still matches")
	}
}
