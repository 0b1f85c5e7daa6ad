package event

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	syslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/rfc3164"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

// Event is one syslog message on its way through the relay.
//
// Header, Syslog and AppendJSON may be called from several goroutines at
// once; Raw must not change once the event is created.
type Event struct {
	// Raw is the message exactly as received, without octet count or
	// trailing LF.
	Raw []byte
	// Stream is the stream type, set by the router.
	Stream string
	// Input is the name of the input that received the event.
	Input string
	// Peer is the source address, or empty.
	Peer string
	// Received is when the relay received the event.
	Received time.Time
	// Meta is opaque to the relay: an input that must recognise its events
	// after a restart sets it, and a spool keeps it with the record (the
	// relay link: the sending relay's id and the event's sequence there).
	Meta []byte

	hdrState atomic.Uint32 // hdrNone, hdrBusy, hdrDone
	hdr      Header
	full     atomic.Pointer[parsed]
	handoff  *Handoff
}

// parsed memoises the full go-syslog parse.
type parsed struct {
	msg syslog.Message
	err error
}

// New returns an event for raw, which it keeps (no copy).
func New(raw []byte) *Event { return &Event{Raw: raw} }

// Header returns the light header scan of Raw, computed once. It is on the
// routing path: it does not allocate.
func (e *Event) Header() *Header {
	if e.hdrState.Load() != hdrDone {
		e.scanHeader()
	}
	return &e.hdr
}

const (
	hdrNone = iota
	hdrBusy
	hdrDone
)

// scanHeader scans once; a concurrent caller waits the few hundred
// nanoseconds a scan takes. (sync.Once costs a mutex per event.)
func (e *Event) scanHeader() {
	if e.hdrState.CompareAndSwap(hdrNone, hdrBusy) {
		e.hdr.scan(e.Raw)
		e.hdrState.Store(hdrDone)
		return
	}
	for e.hdrState.Load() != hdrDone {
		runtime.Gosched()
	}
}

// Syslog returns the full go-syslog parse of Raw (best effort), computed on
// first use: *rfc5424.SyslogMessage for RFC 5424, *rfc3164.SyslogMessage
// otherwise. It allocates a lot compared with Header; use it only when
// typed values are needed (a time.Time, validated structured data), never
// for routing.
func (e *Event) Syslog() (syslog.Message, error) {
	if p := e.full.Load(); p != nil {
		return p.msg, p.err
	}
	var m syslog.Machine
	switch e.Header().Format {
	case FormatRFC5424:
		m = rfc5424.NewParser(rfc5424.WithBestEffort())
	case FormatForward:
		// go-syslog's RFC 3164 machine rejects the fractional seconds of
		// RSYSLOG_ForwardFormat; the header scan has the rest already.
		msg, err := forwardMessage(e.Header())
		return e.memo(msg, err)
	default:
		m = rfc3164.NewMachine(rfc3164.WithBestEffort(), rfc3164.WithYear(rfc3164.CurrentYear{}))
	}
	return e.memo(m.Parse(e.Raw))
}

func (e *Event) memo(msg syslog.Message, err error) (syslog.Message, error) {
	p := &parsed{msg: msg, err: err}
	if !e.full.CompareAndSwap(nil, p) {
		p = e.full.Load()
	}
	return p.msg, p.err
}

// forwardMessage builds the go-syslog message of an RSYSLOG_ForwardFormat
// header.
func forwardMessage(h *Header) (*rfc3164.SyslogMessage, error) {
	m := &rfc3164.SyslogMessage{}
	if h.HasPRI {
		m.ComputeFromPriority(h.PRI)
	}
	str := func(b []byte) *string {
		if len(b) == 0 {
			return nil
		}
		s := string(b)
		return &s
	}
	m.Hostname, m.Appname, m.ProcID, m.Message = str(h.Hostname()), str(h.AppName()), str(h.ProcID()), str(h.Msg())
	ts, err := time.Parse(time.RFC3339Nano, string(h.Timestamp()))
	if err != nil {
		return m, fmt.Errorf("forward format timestamp: %w", err)
	}
	m.Timestamp = &ts
	return m, nil
}
