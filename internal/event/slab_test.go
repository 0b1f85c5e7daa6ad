package event

import (
	"fmt"
	"testing"
)

func TestSlab(t *testing.T) {
	var s Slab
	var evs []*Event
	for i := range 3*slabEvents + 5 {
		evs = append(evs, s.New(fmt.Appendf(nil, "<13>1 - h app%d - - - m", i)))
	}
	for i, e := range evs {
		if got, want := string(e.Header().AppName()), fmt.Sprintf("app%d", i); got != want {
			t.Fatalf("event %d: app %q, want %q (events share state?)", i, got, want)
		}
	}
	raw := []byte("<13>1 - h app - - - m")
	if n := testing.AllocsPerRun(10*slabEvents, func() { s.New(raw) }); n > 1.0/slabEvents*2 {
		t.Fatalf("%v allocations per event, want about 1/%d", n, slabEvents)
	}
}
