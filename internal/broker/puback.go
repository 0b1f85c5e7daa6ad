package broker

import (
	"encoding/json"

	"github.com/nats-io/nats.go/jetstream"
)

// pubAck is a JetStream publish acknowledgement as the server sends it:
// {"stream":"S","seq":N[,"duplicate":true][,"domain":"D"]}, or the error
// form {"error":{"code":C,"err_code":E,"description":"…"}}.
type pubAck struct {
	Error     *jetstream.APIError `json:"error,omitempty"`
	Stream    string              `json:"stream"`
	Seq       uint64              `json:"seq"`
	Duplicate bool                `json:"duplicate,omitempty"`
	Domain    string              `json:"domain,omitempty"`
}

// parsePubAck decodes a PubAck. It returns what encoding/json would
// (FuzzPubAck holds it to that): a hand-written scanner takes the forms
// nats-server sends, and anything it is not sure of (escapes, non-ASCII,
// nested values of unknown keys, keys in another case, null) goes to
// encoding/json. The scanner is why: decoding each PubAck with
// encoding/json was a sixth of the output's CPU per event.
func parsePubAck(b []byte) (pubAck, error) {
	if pa, ok := scanPubAck(b); ok {
		return pa, nil
	}
	var pa pubAck
	if err := json.Unmarshal(b, &pa); err != nil {
		return pubAck{}, err
	}
	return pa, nil
}

// pubAckScanner reads one JSON text; ok is cleared at the first byte it
// does not handle.
type pubAckScanner struct {
	b  []byte
	i  int
	ok bool
}

func scanPubAck(b []byte) (pubAck, bool) {
	s := pubAckScanner{b: b, ok: true}
	var pa pubAck
	sawErr := false
	s.object(func(key []byte) {
		switch {
		case string(key) == "stream":
			pa.Stream = s.str()
		case string(key) == "seq":
			pa.Seq = s.uint(1<<64 - 1)
		case string(key) == "duplicate":
			pa.Duplicate = s.boolean()
		case string(key) == "domain":
			pa.Domain = s.str()
		case string(key) == "error":
			if sawErr { // encoding/json merges a repeated object
				s.ok = false
				return
			}
			sawErr = true
			pa.Error = &jetstream.APIError{}
			e := pa.Error
			s.object(func(key []byte) {
				switch {
				case string(key) == "code":
					e.Code = int(s.uint(1<<31 - 1))
				case string(key) == "err_code":
					e.ErrorCode = jetstream.ErrorCode(s.uint(1<<16 - 1))
				case string(key) == "description":
					e.Description = s.str()
				case foldsTo(key, "code", "err_code", "description"):
					s.ok = false
				default:
					s.skip()
				}
			})
		case foldsTo(key, "stream", "seq", "duplicate", "domain", "error"):
			// encoding/json matches keys without regard to case.
			s.ok = false
		default:
			s.skip()
		}
	})
	s.space()
	if !s.ok || s.i != len(s.b) {
		return pubAck{}, false
	}
	return pa, true
}

func (s *pubAckScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// expect consumes c after optional white space.
func (s *pubAckScanner) expect(c byte) bool {
	s.space()
	if !s.ok || s.i >= len(s.b) || s.b[s.i] != c {
		s.ok = false
		return false
	}
	s.i++
	return true
}

// object reads {"key":value,…}, calling member with each key and the
// scanner before the value.
func (s *pubAckScanner) object(member func(key []byte)) {
	if !s.expect('{') {
		return
	}
	s.space()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return
	}
	for s.ok {
		s.space()
		key := s.rawStr()
		if !s.expect(':') {
			return
		}
		s.space()
		member(key)
		if !s.ok {
			return
		}
		s.space()
		if s.i >= len(s.b) {
			s.ok = false
			return
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return
		default:
			s.ok = false
			return
		}
	}
}

// rawStr reads a string of printable ASCII without escapes.
func (s *pubAckScanner) rawStr() []byte {
	if !s.ok || s.i >= len(s.b) || s.b[s.i] != '"' {
		s.ok = false
		return nil
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return s.b[start:j]
		case c < 0x20 || c >= 0x7f || c == '\\':
			s.ok = false
			return nil
		}
	}
	s.ok = false
	return nil
}

func (s *pubAckScanner) str() string { return string(s.rawStr()) }

// uint reads a non-negative integer no greater than limit.
func (s *pubAckScanner) uint(limit uint64) uint64 {
	if !s.ok || s.i >= len(s.b) {
		s.ok = false
		return 0
	}
	start := s.i
	var n uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if n > (limit-d)/10 {
			s.ok = false
			return 0
		}
		n = n*10 + d
		s.i++
	}
	digits := s.i - start
	if digits == 0 || digits > 1 && s.b[start] == '0' {
		s.ok = false
		return 0
	}
	if s.i < len(s.b) {
		// A fraction or an exponent is JSON but not an integer.
		if c := s.b[s.i]; c == '.' || c == 'e' || c == 'E' {
			s.ok = false
			return 0
		}
	}
	return n
}

func (s *pubAckScanner) boolean() bool {
	switch {
	case !s.ok:
	case hasAt(s.b, s.i, "true"):
		s.i += 4
		return true
	case hasAt(s.b, s.i, "false"):
		s.i += 5
		return false
	}
	s.ok = false
	return false
}

// skip reads the value of a key the output does not use: a string, an
// integer, true, false or null; anything else goes to encoding/json.
func (s *pubAckScanner) skip() {
	if !s.ok || s.i >= len(s.b) {
		s.ok = false
		return
	}
	switch c := s.b[s.i]; {
	case c == '"':
		s.rawStr()
	case c >= '0' && c <= '9':
		s.uint(1<<64 - 1)
	case hasAt(s.b, s.i, "true"), hasAt(s.b, s.i, "null"):
		s.i += 4
	case hasAt(s.b, s.i, "false"):
		s.i += 5
	default:
		s.ok = false
	}
}

func hasAt(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// foldsTo reports whether key equals one of names without regard to
// ASCII case (keys the scanner reads are ASCII).
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if len(n) != len(key) {
			continue
		}
		eq := true
		for i := range n {
			c := key[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != n[i] {
				eq = false
				break
			}
		}
		if eq {
			return true
		}
	}
	return false
}
