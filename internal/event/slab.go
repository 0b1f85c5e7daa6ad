package event

// slabEvents is how many events one Slab block holds: 64 events of ~200
// bytes, a 13 KiB block.
const slabEvents = 64

// Slab allocates events in blocks, one allocation per 64 events instead
// of one per event, for inputs that create events at a high rate. An event
// keeps its whole block alive, so it suits events that are released in
// roughly the order they were made (the relay's queues). A Slab is not
// safe for concurrent use: give each connection its own.
type Slab struct {
	block []Event
}

// New returns an event for raw, like the package's New.
func (s *Slab) New(raw []byte) *Event {
	if len(s.block) == 0 {
		s.block = make([]Event, slabEvents)
	}
	e := &s.block[0]
	s.block = s.block[1:]
	e.Raw = raw
	return e
}
