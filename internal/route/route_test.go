package route

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/event"
)

func TestStreamAndMatch(t *testing.T) {
	tb, err := NewTable("app-name", "unknown", []Target{
		{Name: "workers", Streams: []string{"impression", "click"}},
		{Name: "cdn", Streams: []string{"cdn-*"}},
		{Name: "taps"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		raw    string
		stream string
		want   []int
	}{
		{"<13>1 2026-11-22T05:00:00Z h impression 1 - - x", "impression", []int{0, 2}},
		{"<13>1 2026-11-22T05:00:00Z h click - - - x", "click", []int{0, 2}},
		{"<13>1 2026-11-22T05:00:00Z h cdn-edge - - - x", "cdn-edge", []int{1, 2}},
		{"<13>1 2026-11-22T05:00:00Z h - - - - no app", "unknown", []int{2}},
		{"<13>Nov 22 05:00:00 h sshd[12]: hi", "sshd", []int{2}},
	}
	for _, c := range cases {
		e := event.New([]byte(c.raw))
		if s := tb.Stream(e); s != c.stream || e.Stream != c.stream {
			t.Errorf("%q: stream %q (event %q), want %q", c.raw, s, e.Stream, c.stream)
		}
		// Twice: the second answer comes from the memo.
		for range 2 {
			if got := tb.Match(c.stream); !reflect.DeepEqual(got, c.want) {
				t.Errorf("Match(%q) = %v, want %v", c.stream, got, c.want)
			}
		}
	}
}

func TestPresetStreamIsKept(t *testing.T) {
	tb, err := NewTable("app-name", "unknown", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := event.New([]byte("<13>1 2026-11-22T05:00:00Z h impression - - - x"))
	e.Stream = "from-bridge"
	if s := tb.Stream(e); s != "from-bridge" {
		t.Fatalf("stream %q, want the preset from-bridge", s)
	}
}

func TestBadTable(t *testing.T) {
	if _, err := NewTable("nonsense", "unknown", nil); err == nil {
		t.Error("bad field spec accepted")
	}
	if _, err := NewTable("app-name", "", nil); err == nil {
		t.Error("empty default accepted")
	}
	if _, err := NewTable("app-name", "x", []Target{{Name: "o", Streams: []string{"[bad"}}}); err == nil {
		t.Error("bad glob accepted")
	}
}

func TestMemoIsBounded(t *testing.T) {
	tb, err := NewTable("app-name", "unknown", []Target{{Name: "all"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxCachedStreams + 100 {
		if got := tb.Match(fmt.Sprint("s", i)); len(got) != 1 {
			t.Fatalf("stream %d not routed", i)
		}
	}
	if n := tb.cached.Load(); n != MaxCachedStreams {
		t.Fatalf("memo holds %d streams, want the cap %d", n, MaxCachedStreams)
	}
}

func BenchmarkRoute(b *testing.B) {
	tb, _ := NewTable("app-name", "unknown", []Target{{Name: "w", Streams: []string{"impression", "click"}}, {Name: "taps"}})
	raw := []byte("<13>1 2026-11-22T05:00:00.000000Z host1 impression 123 ID47 [ex@32473 a=\"1\"] the payload")
	b.ReportAllocs()
	for b.Loop() {
		e := event.New(raw)
		tb.Match(tb.Stream(e))
	}
}
