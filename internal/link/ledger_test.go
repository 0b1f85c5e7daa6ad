package link

import (
	"encoding/binary"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/event"
)

func metaOf(id SenderID, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(nil), id[:]...), seq)
}

// The batch forms (Unseen, AppendedEvents, DurableEvents) agree with
// Have, Appended and Durable event by event, across runs of several
// senders and events without link Meta.
func TestLedgerBatchFormsMatchPerEvent(t *testing.T) {
	a, b := SenderID{1}, SenderID{2}
	mk := func(specs ...any) []*event.Event {
		var evs []*event.Event
		for i := 0; i < len(specs); i += 2 {
			e := &event.Event{}
			if id, ok := specs[i].(SenderID); ok {
				e.Meta = metaOf(id, uint64(specs[i+1].(int)))
			}
			evs = append(evs, e)
		}
		return evs
	}
	one, batch := &Ledger{have: map[SenderID]uint64{}, dur: map[SenderID]uint64{}}, &Ledger{have: map[SenderID]uint64{}, dur: map[SenderID]uint64{}}
	rounds := [][]*event.Event{
		mk(a, 1, a, 2, nil, 0, b, 5, b, 6, a, 3),
		mk(a, 2, a, 3, a, 4, nil, 0, b, 6, b, 7, a, 5, b, 8), // a 2,3 and b 6 held
		mk(b, 1, b, 2),          // all held
		mk(nil, 0, a, 9, a, 10), // none held
	}
	for r, evs := range rounds {
		var want []*event.Event
		for _, e := range evs {
			if !one.Have(e.Meta) {
				want = append(want, e)
			}
		}
		got := batch.Unseen(evs)
		if len(got) != len(want) {
			t.Fatalf("round %d: Unseen kept %d events, Have %d", r, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("round %d: Unseen event %d differs", r, i)
			}
		}
		if len(want) == len(evs) && len(evs) > 0 && &got[0] != &evs[0] {
			t.Fatalf("round %d: nothing held, but Unseen copied the batch", r)
		}
		for _, e := range want {
			one.Appended(e.Meta)
		}
		batch.AppendedEvents(got)
		if r%2 == 0 {
			for _, e := range want {
				one.Durable(e.Meta)
			}
			batch.DurableEvents(got)
		}
		for _, m := range []struct {
			name string
			x, y map[SenderID]uint64
		}{{"have", one.have, batch.have}, {"dur", one.dur, batch.dur}} {
			if len(m.x) != len(m.y) || m.x[a] != m.y[a] || m.x[b] != m.y[b] {
				t.Fatalf("round %d: %s marks %v (per event) != %v (batch)", r, m.name, m.x, m.y)
			}
		}
		if one.Skipped() != batch.Skipped() {
			t.Fatalf("round %d: skipped %d (per event) != %d (batch)", r, one.Skipped(), batch.Skipped())
		}
	}
	if batch.have[a] != 10 || batch.have[b] != 8 || batch.Skipped() != 5 {
		t.Fatalf("have %v skipped %d; want a=10 b=8 skipped 5", batch.have, batch.Skipped())
	}
}
