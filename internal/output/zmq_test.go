package output

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

func events(stream string, n int) []*event.Event {
	out := make([]*event.Event, n)
	for i := range out {
		e := event.New(fmt.Appendf(nil, "<13>1 2026-11-22T05:00:00Z host %s - - - msg %d", stream, i))
		e.Stream = stream
		out[i] = e
	}
	return out
}

func TestPushRawOneFrame(t *testing.T) {
	out, err := NewZMQ(ZMQConfig{Name: "w", Socket: "push", Bind: []string{"tcp://127.0.0.1:0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close(context.Background())
	pull := zmq.NewPull(zmq.Options{})
	defer pull.Close()
	if err := pull.Dial("tcp://" + out.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	batch := events("click", 100)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := out.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for i := range batch {
		m, err := pull.Recv(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if len(m) != 1 || string(m[0]) != string(batch[i].Raw) {
			t.Fatalf("message %d = %q, want one frame %q", i, m, batch[i].Raw)
		}
	}
	if s := out.Stats(); s.Sent != 100 || s.Dropped != 0 {
		t.Fatalf("stats %+v, want 100 sent, 0 dropped", s)
	}
}

func TestPushBlocksThenFailsWithCtxAndReleases(t *testing.T) {
	out, err := NewZMQ(ZMQConfig{Name: "w", Socket: "push", Bind: []string{"tcp://127.0.0.1:0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close(context.Background())
	var got error
	fired := 0
	h := event.NewHandoff(func(err error) { fired++; got = err })
	batch := events("click", 3)
	for _, e := range batch {
		e.SetHandoff(h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// No peer: Write must block until ctx ends, then fail every event.
	if err := out.Write(ctx, batch); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write with no peer = %v, want deadline exceeded", err)
	}
	h.Release(nil)
	if fired != 1 || !errors.Is(got, context.DeadlineExceeded) {
		t.Fatalf("hand-off fired %d times with %v, want once with the deadline error", fired, got)
	}
	if s := out.Stats(); s.Dropped != 3 || s.Sent != 0 {
		t.Fatalf("stats %+v, want 3 failed", s)
	}
}

func TestPubJSONTwoFrames(t *testing.T) {
	out, err := NewZMQ(ZMQConfig{Name: "taps", Socket: "pub", Format: JSON, Bind: []string{"tcp://127.0.0.1:0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close(context.Background())
	sub := zmq.NewSub(zmq.Options{})
	defer sub.Close()
	sub.Subscribe("click")
	if err := sub.Dial("tcp://" + out.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitSubscribed(t, out)
	if err := out.Write(ctx, append(events("impression", 1), events("click", 1)...)); err != nil {
		t.Fatal(err)
	}
	m, err := sub.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || string(m[0]) != "click" {
		t.Fatalf("got %q, want [click, json]", m)
	}
	var obj map[string]any
	if err := json.Unmarshal(m[1], &obj); err != nil {
		t.Fatalf("payload is not JSON: %v: %s", err, m[1])
	}
	if obj["stream"] != "click" || obj["app_name"] != "click" {
		t.Fatalf("JSON %v lacks stream/app_name click", obj)
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": Raw, "raw": Raw, "json": JSON} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("xml accepted")
	}
}

// A small batch's JSON slab is sized for the batch, not 64 KiB: each
// queued payload pins its slab.
func TestJSONSlabSizedForBatch(t *testing.T) {
	e := event.New([]byte("<14>1 2026-11-22T05:00:00Z h app - - - hello"))
	enc := newEncoder(JSON, []*event.Event{e})
	p := enc.payload(e)
	if c := cap(enc.slab); c > 1024 {
		t.Fatalf("slab for one small event: cap %d", c)
	}
	if !json.Valid(p) {
		t.Fatalf("payload %s", p)
	}
	big := event.New(bytes.Repeat([]byte("x"), 100<<10))
	enc = newEncoder(JSON, []*event.Event{big})
	if p := enc.payload(big); len(p) < 100<<10 || !json.Valid(p) {
		t.Fatalf("big event: %d bytes", len(p))
	}
}

// A PUB output whose socket is closed (a reload or shutdown racing a
// write) counts the batch as dropped and tells the inputs; it used to
// return the error with nothing counted.
func TestPubWriteAfterCloseCountsAndReleases(t *testing.T) {
	out, err := NewZMQ(ZMQConfig{Name: "taps", Socket: "pub", Bind: []string{"tcp://127.0.0.1:0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out.Close(context.Background())
	var got error
	h := event.NewHandoff(func(err error) { got = err })
	batch := events("click", 4)
	for _, e := range batch {
		e.SetHandoff(h)
	}
	if err := out.Write(context.Background(), batch); !errors.Is(err, zmq.ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	h.Release(nil)
	if !errors.Is(got, zmq.ErrClosed) {
		t.Fatalf("hand-off fired with %v, want ErrClosed", got)
	}
	if s := out.Stats(); s.Dropped != 4 || s.Sent != 0 {
		t.Fatalf("stats %+v, want 4 dropped", s)
	}
}

// TestPushHoldsHandoffUntilWritten: a PUSH output holds the hand-off of
// the events it takes until they are written to a peer's connection, not
// when they are queued: here they wait in a connecting endpoint's queue
// until a peer appears.
func TestPushHoldsHandoffUntilWritten(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := "tcp://" + l.Addr().String()
	l.Close() // nobody listens there yet
	out, err := NewZMQ(ZMQConfig{Name: "w", Socket: "push", Connect: []string{ep}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close(context.Background())
	fired := make(chan error, 1)
	h := event.NewHandoff(func(err error) { fired <- err })
	batch := events("click", 3)
	for _, e := range batch {
		e.SetHandoff(h)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := out.Write(ctx, batch); err != nil {
		t.Fatal(err) // queued for the endpoint
	}
	h.Release(nil) // the input's own hold
	select {
	case err := <-fired:
		t.Fatalf("hand-off fired (%v) with the events only queued", err)
	case <-time.After(100 * time.Millisecond):
	}
	pull := zmq.NewPull(zmq.Options{})
	defer pull.Close()
	if err := pull.Listen(ep); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-fired:
		if err != nil {
			t.Fatalf("hand-off failed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hand-off did not fire once the events were written")
	}
	for i := range batch {
		if m, err := pull.Recv(ctx); err != nil || string(m[0]) != string(batch[i].Raw) {
			t.Fatalf("message %d: %q %v", i, m, err)
		}
	}
}

// TestPubReleasesOnceRouted: a PUB output never holds a hand-off: events
// routed only to taps are safe as soon as they are routed (documented).
func TestPubReleasesOnceRouted(t *testing.T) {
	out, err := NewZMQ(ZMQConfig{Name: "t", Socket: "pub", Bind: []string{"tcp://127.0.0.1:0"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close(context.Background())
	fired := 0
	h := event.NewHandoff(func(err error) { fired++ })
	batch := events("click", 2)
	for _, e := range batch {
		e.SetHandoff(h)
	}
	if err := out.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	h.Release(nil)
	if fired != 1 {
		t.Fatalf("hand-off fired %d times, want once, when the input released it", fired)
	}
}
