package tap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// startPub binds a Go PUB socket like the relay's PUB output.
func startPub(t *testing.T) (*zmq.Pub, string) {
	t.Helper()
	p := zmq.NewPub(zmq.Options{})
	if err := p.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, "tcp://" + p.Addrs()[0].String()
}

func pubEvent(p *zmq.Pub, stream string, payload string) {
	p.Send(zmq.Msg{[]byte(stream), []byte(payload)})
}

// syncSub publishes warm-up events on stream until c receives one, then a
// marker, and reads up to it: afterwards the subscription is live and
// nothing stale is pending.
func syncSub(t *testing.T, p *zmq.Pub, c *Consumer, stream string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; ; i++ {
		pubEvent(p, stream, fmt.Sprintf("<14>1 - h %s - - - warmup %d", stream, i))
		rctx, rcancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err := c.Recv(rctx)
		rcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the consumer never received the warm-up events")
		}
	}
	pubEvent(p, stream, "<14>1 - h "+stream+" - - - marker")
	for {
		m, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("waiting for the marker: %v", err)
		}
		if strings.HasSuffix(string(m.Raw), "marker") {
			return
		}
	}
}

func TestConsumerPubFilters(t *testing.T) {
	p, ep := startPub(t)
	f, err := NewFilter([]string{"click"}, []string{"sd:u@32473.id=7"}, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConsumer(ConsumerConfig{Source: ep, Filter: &Filter{globs: f.globs, Streams: f.Streams}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	syncSub(t, p, c, "click")
	c.filter = f // the warm-up ran unfiltered by user and sample

	var want []string
	n := 0
	for i := range 200 {
		stream := []string{"click", "clicks", "view"}[i%3]
		user := []string{"7", "8"}[i%2]
		ev := testEvent(stream, i, user)
		if i%5 == 0 { // some as JSON, like a format: json output
			pubEvent(p, stream, string(ev.AppendJSON(nil)))
		} else {
			pubEvent(p, stream, string(ev.Raw))
		}
		if stream == "click" && user == "7" {
			if n%2 == 0 {
				want = append(want, fmt.Sprintf("message %d", i))
			}
			n++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, w := range want {
		m, err := c.Recv(ctx)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		ev := m.Event()
		if m.Stream != "click" || ev.Stream != "click" || string(ev.Header().Msg()) != w {
			t.Fatalf("event %d: stream %q, msg %q; want click, %q", i, m.Stream, ev.Header().Msg(), w)
		}
	}
}

func TestConsumerWebsocket(t *testing.T) {
	h, url := startHub(t, HubConfig{Token: "tk", QueueLen: 16})
	f, _ := NewFilter([]string{"view"}, nil, "", 0)
	c, err := NewConsumer(ConsumerConfig{Source: url, Token: "tk", Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan Message, 1000)
	go func() {
		for {
			m, err := c.Recv(ctx)
			if err != nil {
				close(got)
				return
			}
			got <- m
		}
	}()
	waitClients(t, h, 1)
	for i := range 3 {
		h.Publish(testEvent("click", i, "1"))
		h.Publish(testEvent("view", i, "1"))
	}
	for i := range 3 {
		m := <-got
		var j map[string]any
		if err := json.Unmarshal(m.JSON, &j); err != nil || m.Stream != "view" || j["message"] != fmt.Sprintf("message %d", i) {
			t.Fatalf("event %d: %+v (%v)", i, j, err)
		}
		if ev := m.Event(); string(ev.Header().AppName()) != "view" || ev.Stream != "view" {
			t.Fatalf("event %d rebuilt as %q", i, ev.Raw)
		}
	}
}

func TestConsumerWebsocketUnauthorized(t *testing.T) {
	_, url := startHub(t, HubConfig{Token: "tk"})
	c, err := NewConsumer(ConsumerConfig{Source: url, Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Recv(context.Background()); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("got %v, want ErrUnauthorized", err)
	}
}

// serveHubAt serves a fresh hub on addr (to restart "the relay" on the
// same port).
func serveHubAt(t *testing.T, addr string) (*Hub, func()) {
	t.Helper()
	var l net.Listener
	var err error
	eventually(t, 5*time.Second, "listen on "+addr, func() bool {
		l, err = net.Listen("tcp", addr)
		return err == nil
	})
	h := NewHub(HubConfig{}, nil)
	srv := &http.Server{Handler: h.Handler()}
	go srv.Serve(l)
	return h, func() { h.Close(); srv.Close() }
}

func TestConsumerWebsocketReconnect(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	h, stop := serveHubAt(t, addr)

	for _, noReconnect := range []bool{false, true} {
		c, err := NewConsumer(ConsumerConfig{Source: "ws://" + addr, NoReconnect: noReconnect})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		errc := make(chan error, 1)
		msgs := make(chan Message, 10)
		go func() {
			for {
				m, err := c.Recv(ctx)
				if err != nil {
					errc <- err
					return
				}
				msgs <- m
			}
		}()
		waitClients(t, h, 1)
		h.Publish(testEvent("a", 1, "1"))
		select {
		case <-msgs:
		case err := <-errc:
			t.Fatalf("first event: %v", err)
		}
		stop() // the relay restarts
		if noReconnect {
			if err := <-errc; !errors.Is(err, ErrDisconnected) {
				t.Errorf("NoReconnect: got %v, want ErrDisconnected", err)
			}
			cancel()
			c.Close()
			break
		}
		h, stop = serveHubAt(t, addr)
		waitClients(t, h, 1)
		h.Publish(testEvent("a", 2, "1"))
		select {
		case m := <-msgs:
			if !strings.Contains(string(m.JSON), "message 2") {
				t.Errorf("after reconnect: %s", m.JSON)
			}
		case err := <-errc:
			t.Fatalf("Recv after the restart: %v", err)
		}
		if c.Stats().Reconnects != 1 {
			t.Errorf("reconnects %d, want 1", c.Stats().Reconnects)
		}
		cancel()
		c.Close()
		<-errc
		waitClients(t, h, 0) // the next round must not see this client
	}
}

func TestConsumerPubNoReconnect(t *testing.T) {
	p, ep := startPub(t)
	c, err := NewConsumer(ConsumerConfig{Source: ep, NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	syncSub(t, p, c, "x")
	p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Recv(ctx); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("got %v, want ErrDisconnected", err)
	}
	// And a source that never answers fails after ConnectTimeout.
	c2, _ := NewConsumer(ConsumerConfig{Source: "tcp://127.0.0.1:1", NoReconnect: true, ConnectTimeout: 300 * time.Millisecond})
	defer c2.Close()
	if _, err := c2.Recv(ctx); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("unreachable source: got %v, want ErrDisconnected", err)
	}
}

func TestConsumerBadSource(t *testing.T) {
	for _, s := range []string{"http://x", "udp://x:1", "::"} {
		if _, err := NewConsumer(ConsumerConfig{Source: s}); !errors.Is(err, ErrBadSource) {
			t.Errorf("%q: got %v, want ErrBadSource", s, err)
		}
	}
}

// The relay's notice total restarts with each connection; the consumer's
// count must not go back after a reconnect.
func TestConsumerDropsAddUpOverReconnects(t *testing.T) {
	c := &Consumer{log: slog.New(slog.DiscardHandler)}
	for _, n := range []string{
		`{"notice":"dropped","dropped":5,"total":5}`,
		`{"notice":"dropped","dropped":2,"total":7}`,
		`{"notice":"dropped","dropped":3,"total":3}`, // a new connection
	} {
		c.notice([]byte(n))
	}
	if got := c.Stats().Dropped; got != 10 {
		t.Fatalf("dropped = %d, want 10", got)
	}
}
