package zmq

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// floodMiB is how much each flood test sends: SECURITY_FLOOD_MIB, default
// 100 (the review's attack).
func floodMiB() int {
	if n, err := strconv.Atoi(os.Getenv("SECURITY_FLOOD_MIB")); err == nil && n > 0 {
		return n
	}
	return 100
}

// heapPeak samples the Go heap every few milliseconds until stop is
// called and returns, above the baseline taken at the start (after a GC),
// the highest live heap (what the last GC kept: memory the attack holds)
// and the highest heap in use (garbage included, which GC pacing decides).
func heapPeak() (stop func() (live, inuse uint64)) {
	settle()
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	read := func() (uint64, uint64) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		metrics.Read(sample)
		return sample[0].Value.Uint64(), ms.HeapInuse
	}
	baseLive, baseInuse := read()
	var peakLive, peakInuse atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			live, inuse := read()
			if live > baseLive && live-baseLive > peakLive.Load() {
				peakLive.Store(live - baseLive)
			}
			if inuse > baseInuse && inuse-baseInuse > peakInuse.Load() {
				peakInuse.Store(inuse - baseInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		wg.Wait()
		// What the attack still holds shows in the live heap of one more GC.
		runtime.GC()
		if live, _ := read(); live > baseLive && live-baseLive > peakLive.Load() {
			peakLive.Store(live - baseLive)
		}
		return peakLive.Load(), peakInuse.Load()
	}
}

func mibOf(b uint64) float64 { return float64(b) / (1 << 20) }

// writeUntilClosed writes chunk until total bytes are sent or the peer
// closes the connection, and returns what was written.
func writeUntilClosed(c net.Conn, chunk []byte, total int) int {
	sent := 0
	for sent < total {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Write(chunk)
		sent += n
		if err != nil {
			break
		}
	}
	return sent
}

// The review's attack: READY Socket-Type=SUB to a PUB, then empty frames
// with MORE set, forever. Each costs a slice header but no payload: 100 MiB
// took the relay to 5.1 GB. Frames are counted (at most DefaultMaxFrames
// per message) and each costs FrameOverhead against MaxMsgSize, so the
// peer is cut off after a bounded number of frames and the heap stays small.
func TestEmptyFrameFloodIsBounded(t *testing.T) {
	pub := NewPub(Options{})
	closeAll(t, pub)
	addr := strings.TrimPrefix(bound(t, pub), "tcp://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	testpeer.ZMTPHandshake(t, c, "SUB")
	c.SetDeadline(time.Time{})
	waitFor(t, 5*time.Second, "raw SUB connected", func() bool { return pub.Stats().Peers == 1 })

	stop := heapPeak()
	chunk := bytes.Repeat([]byte{flagMore, 0}, 512<<10) // 1 MiB of empty frames
	total := floodMiB() << 20
	sent := writeUntilClosed(c, chunk, total)
	expectClosed(t, c, "empty-frame flood")
	live, inuse := stop()
	t.Logf("measured: empty-frame flood: %.1f MiB sent (of %d MiB offered) before the PUB cut the peer off; Go live heap peak +%.1f MiB, in use +%.1f MiB",
		mibOf(uint64(sent)), total>>20, mibOf(live), mibOf(inuse))
	const bound = 16 << 20
	if live > bound {
		t.Errorf("live heap grew %.1f MiB under the empty-frame flood, want under %d MiB", mibOf(live), bound>>20)
	}
	waitFor(t, 5*time.Second, "the flooding peer gone", func() bool { return pub.Stats().Peers == 0 })
	if st := pub.Stats(); st.Oversize == 0 {
		t.Errorf("the flood was not counted as oversize: %+v", st)
	}
}

// Subscriptions are bounded in bytes per peer, not only in number: the
// review made 400 SUB peers hold 4096 subscriptions of up to 1 MiB each
// (+275 MB). Here 64 peers each try to subscribe 4 MiB of distinct long
// prefixes; each keeps at most MaxSubscriptionBytes, the rest are refused
// and counted.
func TestSubscriptionFloodIsBounded(t *testing.T) {
	pub := NewPub(Options{})
	closeAll(t, pub)
	addr := strings.TrimPrefix(bound(t, pub), "tcp://")
	const peers, subLen = 64, 64 << 10
	perPeer := 4 << 20
	stop := heapPeak()
	var conns []net.Conn
	cmd := make([]byte, 0, subLen+32)
	for i := range peers {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		testpeer.ZMTPHandshake(t, c, "SUB")
		topic := bytes.Repeat([]byte{'a'}, subLen)
		for k := 0; k < perPeer/subLen; k++ { // distinct 64 KiB prefixes
			copy(topic, fmt.Sprintf("%03d-%05d-", i, k))
			cmd = appendCmd(cmd[:0], "SUBSCRIBE", topic)
			if _, err := c.Write(cmd); err != nil {
				t.Fatalf("peer %d: %v", i, err)
			}
		}
		conns = append(conns, c)
	}
	waitFor(t, 30*time.Second, "every SUBSCRIBE read", func() bool {
		var n uint64
		for _, pe := range *pub.list.Load() {
			n += pe.cmdsIn.Load()
		}
		return n >= uint64(peers*(perPeer/subLen))
	})
	live, inuse := stop()
	var kept int
	for _, pe := range *pub.list.Load() {
		kept += pe.subs.Load().bytes
	}
	st := pub.Stats()
	t.Logf("measured: subscription flood: %d peers x %d MiB of 64 KiB prefixes offered; %d KiB kept in all, %d subscriptions refused; Go live heap peak +%.1f MiB, in use +%.1f MiB",
		peers, perPeer>>20, kept>>10, st.SubscriptionsRefused, mibOf(live), mibOf(inuse))
	if kept > peers*MaxSubscriptionBytes {
		t.Errorf("%d bytes of subscriptions kept, want at most %d per peer", kept, MaxSubscriptionBytes)
	}
	if st.SubscriptionsRefused == 0 {
		t.Error("no subscription refused")
	}
	const bound = 40 << 20 // per peer: 64 KiB kept, a read buffer, a frame, what the slab pins (256 KiB)
	if live > bound {
		t.Errorf("live heap grew %.1f MiB under the subscription flood, want under %d MiB", mibOf(live), bound>>20)
	}
	// A peer at its limit cancels one and subscribes within it again.
	c := conns[0]
	long := bytes.Repeat([]byte{'a'}, subLen)
	copy(long, fmt.Sprintf("%03d-%05d-", 0, 0)) // the one peer 0 holds
	c.Write(appendCmd(nil, "CANCEL", long))
	c.Write(appendCmd(nil, "SUBSCRIBE", []byte("ok")))
	waitFor(t, 5*time.Second, "a short subscription taken", func() bool {
		for _, pe := range *pub.list.Load() {
			if pe.subs.Load().match([]byte("ok-topic")) {
				return true
			}
		}
		return false
	})
}

// A listening socket takes at most MaxPeers peers; more are refused at
// accept (counted) and the ones connected carry on.
func TestMaxPeers(t *testing.T) {
	pub := NewPub(Options{MaxPeers: 3})
	closeAll(t, pub)
	addr := strings.TrimPrefix(bound(t, pub), "tcp://")
	var conns []net.Conn
	for range 3 {
		c := rawPeer(t, addr, "SUB")
		conns = append(conns, c)
	}
	waitFor(t, 5*time.Second, "3 peers", func() bool { return pub.Stats().Peers == 3 })
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	expectClosed(t, extra, "a fourth peer over MaxPeers")
	if st := pub.Stats(); st.PeersRefused != 1 || st.Peers != 3 {
		t.Errorf("refused %d, peers %d; want 1 and 3", st.PeersRefused, st.Peers)
	}
	conns[0].Close()
	waitFor(t, 5*time.Second, "a slot freed", func() bool { return pub.Stats().Peers == 2 && pub.accepted.Load() == 2 })
	rawPeer(t, addr, "SUB")
	waitFor(t, 5*time.Second, "a new peer in the freed slot", func() bool { return pub.Stats().Peers == 3 })
}
