package event

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonLookup returns the member at path of the JSON object in msg (which
// may start with rsyslog's "@cee:" cookie). Strings are returned unquoted,
// numbers and booleans as written, objects and arrays as raw JSON; null and
// missing members are absent. The document is not validated beyond the
// parts walked, and walking never recurses, so hostile input is harmless.
func jsonLookup(msg []byte, path []string) (string, bool) {
	b := bytes.TrimLeft(msg, " \t")
	if bytes.HasPrefix(b, []byte("@cee:")) {
		b = bytes.TrimLeft(b[5:], " \t")
	}
	s := jscan{b: b}
	for _, seg := range path {
		if !s.member(seg) {
			return "", false
		}
	}
	s.ws()
	if s.i >= len(s.b) {
		return "", false
	}
	start := s.i
	switch s.b[s.i] {
	case '"':
		raw, esc, ok := s.str()
		if !ok {
			return "", false
		}
		if esc {
			return jsonUnescape(raw)
		}
		return Intern(raw), true
	case 'n':
		return "", false
	}
	if !s.skip() {
		return "", false
	}
	return Intern(s.b[start:s.i]), true
}

// jscan is a cursor over JSON text.
type jscan struct {
	b []byte
	i int
}

func (s *jscan) ws() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *jscan) eat(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// member expects an object and moves to the value of its first member
// named key.
func (s *jscan) member(key string) bool {
	if !s.eat('{') {
		return false
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false // '}' (no such member) or junk
		}
		raw, esc, ok := s.str()
		if !ok || !s.eat(':') {
			return false
		}
		if esc {
			if k, ok := jsonUnescape(raw); ok && k == key {
				return true
			}
		} else if string(raw) == key {
			return true
		}
		s.ws()
		if !s.skip() || !s.eat(',') {
			return false
		}
	}
}

// str consumes a string at the cursor and returns its raw body and
// whether it holds escapes.
func (s *jscan) str() (raw []byte, esc, ok bool) {
	s.i++ // the opening quote
	start := s.i
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '\\':
			esc = true
			s.i += 2
		case '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, esc, true
		default:
			s.i++
		}
	}
	return nil, false, false
}

// skip consumes one value without recursion.
func (s *jscan) skip() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch s.b[s.i] {
	case '"':
		_, _, ok := s.str()
		return ok
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if _, _, ok := s.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		s.i++
	}
	return s.i > start
}

// jsonUnescape decodes the body of a JSON string; invalid escapes fail,
// unpaired surrogates become U+FFFD.
func jsonUnescape(raw []byte) (string, bool) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(raw) {
			return "", false
		}
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(raw[i+1:])
			if !ok {
				return "", false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(raw[min(i+3, len(raw)):]); ok && i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						out = utf8.AppendRune(out, d)
						i += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return string(out), true
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c|0x20 >= 'a' && c|0x20 <= 'f':
			r = r<<4 | rune(c|0x20-'a'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
