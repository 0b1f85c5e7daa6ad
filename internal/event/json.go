package event

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the event as one JSON object (schema in the package
// documentation) to dst and returns the extended slice. Invalid UTF-8 is
// replaced by U+FFFD, so the output is always valid JSON.
func (e *Event) AppendJSON(dst []byte) []byte {
	h := e.Header()
	dst = append(dst, `{"stream":`...)
	dst = appendJSONString(dst, e.Stream)
	dst = append(dst, `,"format":"`...)
	dst = append(dst, h.Format.String()...)
	dst = append(dst, '"')
	if h.HasPRI {
		dst = append(dst, `,"facility":`...)
		dst = strconv.AppendUint(dst, uint64(h.Facility()), 10)
		dst = append(dst, `,"severity":`...)
		dst = strconv.AppendUint(dst, uint64(h.Severity()), 10)
	}
	dst = appendField(dst, `,"timestamp":`, h.Timestamp())
	dst = appendField(dst, `,"hostname":`, h.Hostname())
	dst = appendField(dst, `,"app_name":`, h.AppName())
	dst = appendField(dst, `,"proc_id":`, h.ProcID())
	dst = appendField(dst, `,"msg_id":`, h.MsgID())
	if sd := h.SD(); len(sd) > 0 {
		dst = append(dst, `,"structured_data":`...)
		dst = appendSD(dst, sd)
	}
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, h.Msg())
	if e.Input != "" {
		dst = append(dst, `,"input":`...)
		dst = appendJSONString(dst, e.Input)
	}
	if e.Peer != "" {
		dst = append(dst, `,"peer":`...)
		dst = appendJSONString(dst, e.Peer)
	}
	if !e.Received.IsZero() {
		dst = append(dst, `,"received":"`...)
		dst = e.Received.AppendFormat(dst, time.RFC3339Nano)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

func appendField(dst []byte, key string, v []byte) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = append(dst, key...)
	return appendJSONString(dst, v)
}

// appendSD appends well-formed structured data as {"id":{"param":"value"}}.
func appendSD(dst []byte, sd []byte) []byte {
	dst = append(dst, '{')
	it := sdIter{b: sd}
	for n := 0; ; n++ {
		id, ok := it.element()
		if !ok {
			break
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, id)
		dst = append(dst, ":{"...)
		for m := 0; ; m++ {
			name, value, ok := it.param()
			if !ok {
				break
			}
			if m > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, name)
			dst = append(dst, ':', '"')
			dst = appendSDValue(dst, value)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
		if !it.closeElement() {
			break
		}
	}
	return append(dst, '}')
}

// appendSDValue appends an escaped PARAM-VALUE, unescaped and then escaped
// for JSON, without allocating.
func appendSDValue(dst, v []byte) []byte {
	start := 0
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && (v[i+1] == '"' || v[i+1] == '\\' || v[i+1] == ']') {
			dst = appendJSONBody(dst, v[start:i])
			start = i + 1
			i++
		}
	}
	return appendJSONBody(dst, v[start:])
}

// appendJSONString appends s as a quoted JSON string.
func appendJSONString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	dst = appendJSONBody(dst, s)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// safe[c] is true for ASCII bytes that need no escaping in a JSON string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONBody appends s escaped for a JSON string, without quotes:
// control characters escaped, invalid UTF-8 as U+FFFD, and U+2028/U+2029
// escaped so the output is also safe inside JavaScript.
func appendJSONBody[S ~string | ~[]byte](dst []byte, s S) []byte {
	start := 0
	for i := 0; i < len(s); {
		// Skip 8 plain ASCII bytes at a time: the common case.
		for i+8 <= len(s) && plain8(load64(s, i)) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := decodeRune(s, i)
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain8 reports whether the 8 bytes in x need no escaping: no byte below
// 0x20, none of '"' or '\\', no non-ASCII byte.
func plain8(x uint64) bool {
	hasZero := func(v uint64) uint64 { return (v - lsb) & ^v & msb }
	return (x&msb)|((x-0x20*lsb)&^x&msb)|hasZero(x^('"'*lsb))|hasZero(x^('\\'*lsb)) == 0
}

// load64 reads 8 bytes of s at i, little-endian (the compiler merges the
// byte loads into one).
func load64[S ~string | ~[]byte](s S, i int) uint64 {
	s = s[i : i+8]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// decodeRune is utf8.DecodeRune for either string or []byte: it returns
// (utf8.RuneError, 1) for invalid or truncated encodings, surrogates and
// overlong forms.
func decodeRune[S ~string | ~[]byte](s S, i int) (rune, int) {
	n := len(s) - i
	c0 := s[i]
	cont := func(c byte) bool { return c&0xC0 == 0x80 }
	switch {
	case c0 < 0xC2:
		return utf8.RuneError, 1
	case c0 < 0xE0:
		if n < 2 || !cont(s[i+1]) {
			return utf8.RuneError, 1
		}
		return rune(c0&0x1F)<<6 | rune(s[i+1]&0x3F), 2
	case c0 < 0xF0:
		lo, hi := byte(0x80), byte(0xBF)
		if c0 == 0xE0 {
			lo = 0xA0
		} else if c0 == 0xED {
			hi = 0x9F // no surrogates
		}
		if n < 3 || s[i+1] < lo || s[i+1] > hi || !cont(s[i+2]) {
			return utf8.RuneError, 1
		}
		return rune(c0&0x0F)<<12 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F), 3
	case c0 < 0xF5:
		lo, hi := byte(0x80), byte(0xBF)
		if c0 == 0xF0 {
			lo = 0x90
		} else if c0 == 0xF4 {
			hi = 0x8F
		}
		if n < 4 || s[i+1] < lo || s[i+1] > hi || !cont(s[i+2]) || !cont(s[i+3]) {
			return utf8.RuneError, 1
		}
		return rune(c0&0x07)<<18 | rune(s[i+1]&0x3F)<<12 | rune(s[i+2]&0x3F)<<6 | rune(s[i+3]&0x3F), 4
	}
	return utf8.RuneError, 1
}
