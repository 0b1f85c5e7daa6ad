package zmq

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestWriteHooks: every message sent reaches Before, Taken and then After
// (nil) exactly once, in order per peer, once it is written.
func TestWriteHooks(t *testing.T) {
	push := NewPush(Options{HWM: 100})
	defer push.Close()
	var mu sync.Mutex
	before, taken, after := map[string]int{}, map[string]int{}, map[string]int{}
	push.SetWriteHooks(WriteHooks{
		Before: func(ms []Msg) {
			mu.Lock()
			for _, m := range ms {
				before[string(m[0])]++
			}
			mu.Unlock()
		},
		Taken: func(ms []Msg) {
			mu.Lock()
			for _, m := range ms {
				if before[string(m[0])] != taken[string(m[0])]+1 {
					t.Errorf("%s taken without before, or twice", m[0])
				}
				taken[string(m[0])]++
			}
			mu.Unlock()
		},
		After: func(ms []Msg, err error) {
			mu.Lock()
			for _, m := range ms {
				if before[string(m[0])] != after[string(m[0])]+1 || (err == nil && taken[string(m[0])] != before[string(m[0])]) {
					t.Errorf("%s after without before or taken", m[0])
				}
				if err == nil {
					after[string(m[0])]++
				}
			}
			mu.Unlock()
		},
	})
	if err := push.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	pulls := make([]*Pull, 2)
	for i := range pulls {
		pulls[i] = NewPull(Options{})
		defer pulls[i].Close()
		pulls[i].Dial("tcp://" + push.Addrs()[0].String())
	}
	for deadline := time.Now().Add(5 * time.Second); push.Stats().Peers < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("peers did not connect")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 5000
	go func() {
		for i := 0; i < n; i += 50 {
			batch := make([]Msg, 50)
			for k := range batch {
				batch[k] = Msg{[]byte(time.Duration(i + k).String())}
			}
			push.SendBatch(ctx, batch)
		}
		push.SendWritten(ctx, Msg{[]byte("direct")})
	}()
	got := 0
	for _, p := range pulls {
		go func() {
			for {
				if _, err := p.Recv(ctx); err != nil {
					return
				}
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		done := got == n+1 && len(after) == n+1
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d, after-hook saw %d of %d", got, len(after), n+1)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for k, v := range after {
		if v != 1 || before[k] != 1 || taken[k] != 1 {
			t.Fatalf("%s: before %d, taken %d, after %d", k, before[k], taken[k], v)
		}
	}
}
