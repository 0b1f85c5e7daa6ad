package zmq

import "net"

// WriteHooks observe the messages a PUSH socket writes to its peers'
// connections, for senders that must know which messages were written:
// a spooled output marks what the kernel took and acknowledges its spool
// for what was written. All run on the goroutine that writes (a peer's
// writer, or SendWritten's caller), in each peer's order, and must not
// block; ms is only valid during the call.
type WriteHooks struct {
	// Before is called with messages just before the write that carries
	// them.
	Before func(ms []Msg)
	// Writing is called before a write(2) with the messages of the write
	// that no write(2) has taken yet: those it may take. It is called
	// before the write's first write(2), and again before the first
	// write(2) after each Waiting; the messages it reports stay "may be in
	// the kernel" until Taken or Waiting reports them. A sender that must
	// never undercount what reached a peer (a spooled output counting
	// redeliveries after a kill -9) marks them here: nothing can be
	// persisted atomically with a write(2), so the mark goes first.
	Writing func(ms []Msg)
	// Waiting is called when a write(2) took less than the rest of the
	// write and the write waits for the peer's TCP window, with the
	// messages not taken (none of their last bytes is in the kernel; a
	// message partly written is discarded by the peer if the connection
	// dies). Only on connections with a file descriptor.
	Waiting func(ms []Msg)
	// Taken is called during that write, right after each write(2) that
	// accepted the last byte of some of its messages, with those messages
	// (each message once, in order). A write of up to 64 KiB can take
	// several write(2) calls when the peer's TCP window is full: a message
	// reported here is in the kernel (it reaches the peer even if the
	// process is killed now), one not yet reported is not (all of it).
	// On a connection without a file descriptor (tests' fakes) it is called
	// once the whole write returned, with what it wrote.
	Taken func(ms []Msg)
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

// write writes buf, which holds ms (message i ends at ends[i]), to conn,
// reporting what each write(2) took to the Taken hook; conn.Write without
// one.
func (s *socket) write(conn net.Conn, buf []byte, ms []Msg, ends []int) error {
	h := s.hooks.Load()
	if h == nil || (h.Taken == nil && h.Writing == nil && h.Waiting == nil) || len(ms) == 0 {
		_, err := conn.Write(buf)
		return err
	}
	k := 0 // ms[:k] are reported
	writing := func() {
		if h.Writing != nil && k < len(ms) {
			h.Writing(ms[k:])
		}
	}
	waiting := func() {
		if h.Waiting != nil && k < len(ms) {
			h.Waiting(ms[k:])
		}
	}
	took := func(off int) {
		j := k
		for j < len(ends) && ends[j] <= off {
			j++
		}
		if j > k {
			if h.Taken != nil {
				h.Taken(ms[k:j])
			}
			k = j
		}
	}
	if handled, err := writeRaw(conn, buf, writing, took, waiting); handled {
		return err
	}
	writing()
	n, err := conn.Write(buf)
	took(n)
	return err
}

func (s *socket) afterWrite(ms []Msg, err error) {
	if h := s.hooks.Load(); h != nil && h.After != nil && len(ms) > 0 {
		h.After(ms, err)
	}
}
