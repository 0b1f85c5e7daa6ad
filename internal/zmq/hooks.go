package zmq

// WriteHooks observe the messages a PUSH socket writes to its peers'
// connections, for senders that must know which messages were written:
// a spooled output acknowledges its spool for what was written, and marks
// what is about to be. Both run on the goroutine that writes (a peer's
// writer, or SendWritten's caller), in each peer's order, and must not
// block; ms is only valid during the call.
type WriteHooks struct {
	// Before is called with messages just before the write that carries
	// them.
	Before func(ms []Msg)
	// After is called once that write returned: err nil, the messages are
	// in the kernel; err not nil, the write failed and some of them may have
	// partly reached the peer. The socket does not send them again.
	After func(ms []Msg, err error)
}

// SetWriteHooks installs h; call it before the first Send. Messages the
// socket discards without writing them (Close with messages queued) reach
// neither hook.
func (p *Push) SetWriteHooks(h WriteHooks) { p.hooks.Store(&h) }

// beforeWrite calls the Before hook with the messages of qs, gathered
// into scratch (reused across writes), and returns them for afterWrite;
// nothing is gathered without hooks.
func (s *socket) beforeWrite(qs []qmsg, scratch []Msg) []Msg {
	h := s.hooks.Load()
	if h == nil {
		return scratch[:0]
	}
	scratch = scratch[:0]
	for _, q := range qs {
		scratch = append(scratch, q.m)
	}
	if h.Before != nil {
		h.Before(scratch)
	}
	return scratch
}

func (s *socket) afterWrite(ms []Msg, err error) {
	if h := s.hooks.Load(); h != nil && h.After != nil && len(ms) > 0 {
		h.After(ms, err)
	}
}
