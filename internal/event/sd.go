package event

import "bytes"

// sdIter walks RFC 5424 STRUCTURED-DATA without allocating. Its methods
// stop at the first malformed byte and set bad.
type sdIter struct {
	b   []byte
	i   int
	bad bool
}

// element opens the next SD-ELEMENT and returns its SD-ID; false at the
// end of the SD or on a malformed element.
func (it *sdIter) element() ([]byte, bool) {
	if it.bad || it.i >= len(it.b) || it.b[it.i] != '[' {
		return nil, false
	}
	it.i++
	id := it.name()
	if len(id) == 0 {
		it.bad = true
		return nil, false
	}
	return id, true
}

// param returns the next SD-PARAM of the open element, its value still
// escaped; false when the element has no more (or is malformed).
func (it *sdIter) param() (name, value []byte, ok bool) {
	if it.bad || it.i >= len(it.b) || it.b[it.i] != ' ' {
		return nil, nil, false
	}
	it.i++
	name = it.name()
	if len(name) == 0 || it.i+1 >= len(it.b) || it.b[it.i] != '=' || it.b[it.i+1] != '"' {
		it.bad = true
		return nil, nil, false
	}
	it.i += 2
	start := it.i
	for {
		j := bytes.IndexByte(it.b[it.i:], '"')
		if j < 0 {
			it.bad = true
			return nil, nil, false
		}
		q := it.i + j
		// The quote ends the value unless an odd run of backslashes
		// escapes it (each \\ pair is one escaped backslash).
		k := q
		for k > start && it.b[k-1] == '\\' {
			k--
		}
		it.i = q + 1
		if (q-k)%2 == 0 {
			return name, it.b[start:q], true
		}
	}
}

// closeElement consumes the ']' that ends an element.
func (it *sdIter) closeElement() bool {
	if it.bad || it.i >= len(it.b) || it.b[it.i] != ']' {
		it.bad = true
		return false
	}
	it.i++
	return true
}

// name consumes an SD-NAME: printable US-ASCII except '=', SP, ']', '"'.
func (it *sdIter) name() []byte {
	start := it.i
	for it.i < len(it.b) && sdNameChar[it.b[it.i]] {
		it.i++
	}
	return it.b[start:it.i]
}

// sdNameChar holds the bytes allowed in an SD-NAME.
var sdNameChar = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = c != '=' && c != ']' && c != '"'
	}
	return t
}()

// sdLookup returns the escaped value of param in the first element id.
func sdLookup(sd, id, param []byte) ([]byte, bool) {
	it := sdIter{b: sd}
	for {
		eid, ok := it.element()
		if !ok {
			return nil, false
		}
		match := bytes.Equal(eid, id)
		for {
			name, value, ok := it.param()
			if !ok {
				break
			}
			if match && bytes.Equal(name, param) {
				return value, true
			}
		}
		if !it.closeElement() {
			return nil, false
		}
	}
}

// sdUnescape removes the escapes of RFC 5424 PARAM-VALUE: \" \\ \]. Other
// backslashes are literal. It returns v itself when there is none.
func sdUnescape(v []byte) []byte {
	if bytes.IndexByte(v, '\\') < 0 {
		return v
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) && (v[i+1] == '"' || v[i+1] == '\\' || v[i+1] == ']') {
			i++
		}
		out = append(out, v[i])
	}
	return out
}
