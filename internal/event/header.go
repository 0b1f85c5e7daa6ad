package event

import "math"

// Format is the header layout a message was recognised as.
type Format uint8

// The layouts Scan recognises.
const (
	// FormatUnknown: no timestamp recognised; the tag is still parsed the
	// way rsyslog's RFC 3164 parser does, so AppName may be set.
	FormatUnknown Format = iota
	// FormatRFC5424: <PRI>VERSION TIMESTAMP HOST APP PROCID MSGID SD MSG,
	// as rsyslog's RSYSLOG_SyslogProtocol23Format sends.
	FormatRFC5424
	// FormatRFC3164: <PRI>Mmm dd hh:mm:ss HOST TAG MSG, as
	// RSYSLOG_TraditionalForwardFormat and most BSD senders send.
	FormatRFC3164
	// FormatForward: the RFC 3164 layout with an RFC 3339 timestamp, as
	// rsyslog's RSYSLOG_ForwardFormat sends.
	FormatForward
)

var formatNames = [...]string{"unknown", "rfc5424", "rfc3164", "forward"}

// String returns the name used in JSON: unknown, rfc5424, rfc3164, forward.
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return "unknown"
}

// maxSpan is the longest message a span can address.
var maxSpan uint64 = math.MaxUint32

// span is a field's position in the raw message; empty means absent.
type span struct{ off, end uint32 }

// Header is the result of the light header scan: views into the raw
// message, no copies. An absent field (or an RFC 5424 NILVALUE "-") is an
// empty slice. The views are capacity-limited, so appending to one copies.
type Header struct {
	raw []byte

	// Format is the layout the message was recognised as.
	Format Format
	// HasPRI reports whether the message starts with a valid <PRI>.
	HasPRI bool
	// PRI is the priority value, 0..191, when HasPRI.
	PRI uint8

	ts, host, app, procID, msgID, sd, msg span
}

// Facility returns the facility number (PRI / 8), meaningful when HasPRI.
func (h *Header) Facility() uint8 { return h.PRI >> 3 }

// Severity returns the severity number (PRI % 8), meaningful when HasPRI.
func (h *Header) Severity() uint8 { return h.PRI & 7 }

// Timestamp returns the timestamp as sent: RFC 3339 for RFC 5424 and
// forward, "Mmm dd hh:mm:ss" for RFC 3164.
func (h *Header) Timestamp() []byte { return h.view(h.ts) }

// Hostname returns the HOSTNAME field.
func (h *Header) Hostname() []byte { return h.view(h.host) }

// AppName returns what rsyslog's %app-name% property holds: the APP-NAME
// of RFC 5424 (which may contain '/'), or the programname for the RFC 3164
// layouts, the tag up to '[', ':' or '/'.
func (h *Header) AppName() []byte { return h.view(h.app) }

// ProcID returns the PROCID of RFC 5424, or the pid in "tag[pid]:".
func (h *Header) ProcID() []byte { return h.view(h.procID) }

// MsgID returns the MSGID (RFC 5424 only).
func (h *Header) MsgID() []byte { return h.view(h.msgID) }

// SD returns the raw STRUCTURED-DATA (RFC 5424 only), "[id k=\"v\"]...".
// It is only set when well-formed; malformed SD stays in the message.
func (h *Header) SD() []byte { return h.view(h.sd) }

// Msg returns the message body: after the header, without the single
// space that separates it, and without a leading UTF-8 BOM.
func (h *Header) Msg() []byte { return h.view(h.msg) }

func (h *Header) view(s span) []byte { return h.raw[s.off:s.end:s.end] }

// Scan scans the header of a syslog message. It never allocates and never
// fails: what it cannot recognise ends up in Msg. raw must be shorter than
// 4 GiB (frames are far smaller).
func Scan(raw []byte) Header {
	var h Header
	h.scan(raw)
	return h
}

func (h *Header) scan(raw []byte) {
	if uint64(len(raw)) > maxSpan {
		raw = raw[:maxSpan] // spans are 32-bit; no frame comes near
	}
	*h = Header{raw: raw}
	p := 0
	if pri, n, ok := parsePRI(raw); ok {
		h.HasPRI, h.PRI, p = true, pri, n
		if q := version(raw, p); q > p && q < len(raw) && raw[q] == ' ' {
			h.Format = FormatRFC5424
			h.scan5424(q + 1)
			return
		}
	}
	h.scan3164(p)
}

// parsePRI parses "<N>" with N in 0..191 and at most 3 digits.
func parsePRI(b []byte) (pri uint8, n int, ok bool) {
	if len(b) < 3 || b[0] != '<' {
		return 0, 0, false
	}
	v := 0
	i := 1
	for ; i < len(b) && i <= 4 && isDigit(b[i]); i++ {
		v = v*10 + int(b[i]-'0')
	}
	if i == 1 || i > 4 || i >= len(b) || b[i] != '>' || v > 191 {
		return 0, 0, false
	}
	return uint8(v), i + 1, true
}

// version returns the end of an RFC 5424 VERSION (1-3 digits, first
// non-zero) at p, or p if there is none.
func version(b []byte, p int) int {
	if p >= len(b) || b[p] < '1' || b[p] > '9' {
		return p
	}
	q := p + 1
	for q < len(b) && q-p < 3 && isDigit(b[q]) {
		q++
	}
	return q
}

func (h *Header) scan5424(p int) {
	b := h.raw
	for _, f := range [...]*span{&h.ts, &h.host, &h.app, &h.procID, &h.msgID} {
		if p >= len(b) {
			h.msg = span{uint32(len(b)), uint32(len(b))}
			return
		}
		q := p
		for q < len(b) && b[q] != ' ' {
			q++
		}
		if !(q-p == 1 && b[p] == '-') {
			*f = span{uint32(p), uint32(q)}
		}
		p = q
		if p < len(b) {
			p++ // the SP
		}
	}
	if p < len(b) {
		switch b[p] {
		case '-':
			p++
		case '[':
			if end, ok := scanSD(b, p); ok {
				h.sd = span{uint32(p), uint32(end)}
				p = end
			}
		}
		if p < len(b) && b[p] == ' ' {
			p++
		}
	}
	h.setMsg(p)
}

func (h *Header) setMsg(p int) {
	b := h.raw
	if len(b)-p >= 3 && b[p] == 0xEF && b[p+1] == 0xBB && b[p+2] == 0xBF {
		p += 3
	}
	h.msg = span{uint32(p), uint32(len(b))}
}

// scanSD returns the end of the STRUCTURED-DATA elements starting at p
// ('['), and whether they are well-formed.
func scanSD(b []byte, p int) (int, bool) {
	it := sdIter{b: b, i: p}
	n := 0
	for {
		if _, ok := it.element(); !ok {
			break
		}
		for {
			if _, _, ok := it.param(); !ok {
				break
			}
		}
		if !it.closeElement() {
			return p, false
		}
		n++
	}
	return it.i, n > 0 && !it.bad
}

// scan3164 scans the RFC 3164 layouts from p (after PRI) the way rsyslog's
// RFC 3164 parser (pmrfc3164) does for network messages: an optional
// timestamp, a hostname if the next word looks like one (with or without a
// timestamp), a tag up to ':' (included) or SP, then the message.
func (h *Header) scan3164(p int) {
	b := h.raw
	if q := ts3339(b, p); q > p {
		h.Format = FormatForward
		h.ts = span{uint32(p), uint32(q)}
		p = q
	} else if q := ts3164(b, p); q > p {
		h.Format = FormatRFC3164
		h.ts = span{uint32(p), uint32(q)}
		p = q
	} else if p < len(b) && b[p] == ' ' {
		// rsyslog tolerates one space before a 3164 timestamp (HP ProCurve).
		if q := ts3164(b, p+1); q > p+1 {
			h.Format = FormatRFC3164
			h.ts = span{uint32(p + 1), uint32(q)}
			p = q
		}
	}
	if h.Format != FormatUnknown && p < len(b) && b[p] == ' ' {
		p++
	}
	// A hostname is [A-Za-z0-9._-]+ ending in an alphanumeric and followed
	// by SP, or running to the end of the message.
	q := p
	for q < len(b) && isHostChar(b[q]) {
		q++
	}
	if q > p && (q == len(b) || (b[q] == ' ' && isAlnum(b[q-1]))) {
		h.host = span{uint32(p), uint32(q)}
		p = q
		if p < len(b) {
			p++
		}
	}
	// The tag runs to ':' (included) or SP.
	tag := p
	for p < len(b) && b[p] != ':' && b[p] != ' ' {
		p++
	}
	tagEnd := p
	if p < len(b) && b[p] == ':' {
		p++
	}
	// programname: printable ASCII up to '[', ':' or '/' (rsyslog's default).
	q = tag
	for q < tagEnd && b[q] > ' ' && b[q] < 0x7f && b[q] != '[' && b[q] != '/' {
		q++
	}
	if q > tag {
		h.app = span{uint32(tag), uint32(q)}
	}
	for ; q < tagEnd; q++ {
		if b[q] == '[' {
			for r := q + 1; r < tagEnd; r++ {
				if b[r] == ']' {
					if r > q+1 {
						h.procID = span{uint32(q + 1), uint32(r)}
					}
					break
				}
			}
			break
		}
	}
	if p < len(b) && b[p] == ' ' {
		p++
	}
	h.setMsg(p)
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// ts3164 returns the end of "Mmm dd hh:mm:ss" (day space-padded or a single
// digit) at p, or p.
func ts3164(b []byte, p int) int {
	if len(b)-p < 14 {
		return p
	}
	m := b[p : p+3]
	known := false
	for _, name := range months {
		if m[0]|0x20 == name[0]|0x20 && m[1]|0x20 == name[1] && m[2]|0x20 == name[2] {
			known = true
			break
		}
	}
	if !known || b[p+3] != ' ' {
		return p
	}
	q := p + 4
	switch {
	case b[q] == ' ' && isDigit(b[q+1]):
		q += 2
	case isDigit(b[q]) && isDigit(b[q+1]):
		q += 2
	case isDigit(b[q]):
		q++
	default:
		return p
	}
	if len(b)-q < 9 || b[q] != ' ' {
		return p
	}
	t := b[q+1 : q+9]
	if !isDigit(t[0]) || !isDigit(t[1]) || t[2] != ':' || !isDigit(t[3]) || !isDigit(t[4]) ||
		t[5] != ':' || !isDigit(t[6]) || !isDigit(t[7]) {
		return p
	}
	q += 9
	if q < len(b) && b[q] != ' ' {
		return p
	}
	return q
}

// ts3339 returns the end of an RFC 3339 timestamp ("YYYY-MM-DDT…", up to
// SP) at p, or p.
func ts3339(b []byte, p int) int {
	if len(b)-p < 11 {
		return p
	}
	t := b[p : p+11]
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9} {
		if !isDigit(t[i]) {
			return p
		}
	}
	if t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't') {
		return p
	}
	q := p + 11
	for q < len(b) && b[q] != ' ' {
		q++
	}
	return q
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool { return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z') }

func isHostChar(c byte) bool { return isAlnum(c) || c == '.' || c == '_' || c == '-' }
