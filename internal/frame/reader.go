package frame

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"slices"
)

// DefaultMaxLen is the default maximum message length, 64 KiB. rsyslog's
// default maxMessageSize is 8 KiB; a receiver's limit must be at least the
// sender's, so this leaves room for senders that raised theirs.
const DefaultMaxLen = 64 << 10

const (
	// maxDigits bounds an octet count: 10 digits hold any plausible length.
	maxDigits = 10
	// minSlab and maxSlab bound the read slabs; slabs grow while reads fill
	// them (a busy connection) and shrink back when reads are small, so an
	// idle connection holds little memory.
	minSlab = 4 << 10
	maxSlab = 64 << 10
	// minRead is the least free space worth a read call; with less, a new
	// slab is started.
	minRead = 1 << 10
	// maxEmptyReads guards against readers that return 0, nil forever.
	maxEmptyReads = 100
)

// Reader reads syslog frames from a byte stream. It is not safe for
// concurrent use.
type Reader struct {
	rd     io.Reader
	maxLen int

	// buf is the current slab. buf[start:end] is read but not yet consumed.
	// Bytes before keep have been handed out and are never written again;
	// bytes in [keep, start) were discarded and may be overwritten.
	buf   []byte
	start int
	end   int
	keep  int
	// scanned counts bytes from start already searched for LF.
	scanned int

	err       error // sticky read error, returned once the buffer is drained
	saturated bool  // the last read filled all the space it was given
	lastRead  int

	// skip state left by ErrOversize and ErrMalformed, finished by the
	// next call to Next.
	discard int64 // bytes of an oversize octet-counted frame still to skip
	toLF    bool  // skipping an oversize LF frame up to its LF
	resync  bool  // skipping junk up to the next LF or '<'
	zr      io.ReadCloser
	zsrc    bytes.Reader
}

// NewReader returns a Reader of frames from r. Frames longer than maxLen
// are skipped with ErrOversize; maxLen <= 0 means DefaultMaxLen.
func NewReader(r io.Reader, maxLen int) *Reader {
	if maxLen <= 0 {
		maxLen = DefaultMaxLen
	}
	return &Reader{rd: r, maxLen: maxLen}
}

// Next returns the next message, without its octet count or trailing LF
// (or CRLF). The caller owns the returned bytes: the reader never writes
// them again.
//
// ErrOversize and ErrMalformed concern one frame only: the reader skips it
// and the next call continues with the following frame. Any other error
// (io.EOF, network errors) ends the stream and is returned again by every
// later call. A last LF frame cut short by io.EOF is returned before
// io.EOF; an octet-counted frame cut short by io.EOF yields
// io.ErrUnexpectedEOF, by any other error ErrMalformed, then that error.
func (r *Reader) Next() ([]byte, error) {
	for {
		switch {
		case r.discard > 0:
			n := min(int64(r.end-r.start), r.discard)
			r.start += int(n)
			r.discard -= n
			if r.discard > 0 {
				if err := r.fill(0); err != nil {
					r.err = eofUnexpected(err)
					return nil, r.err
				}
			}
			continue
		case r.toLF || r.resync:
			if !r.skip() {
				if err := r.fill(0); err != nil {
					return nil, err
				}
			}
			continue
		case r.start == r.end:
			if err := r.fill(1); err != nil {
				return nil, err
			}
			continue
		}

		if c := r.buf[r.start]; c >= '1' && c <= '9' && r.scanned == 0 {
			msg, st, err := r.octetCounted()
			switch st {
			case done:
				return msg, err
			case again:
				continue
			}
			// An LF frame that happens to start with a digit.
		}
		if msg, st, err := r.lineFramed(); st == done {
			return msg, err
		}
	}
}

// step tells Next what a framing function found.
type step int

const (
	done    step = iota // a frame or a per-frame error
	again               // more data was read (or the read failed): look again
	newline             // not octet-counted: the frame is LF-delimited
)

// octetCounted handles a frame starting with a non-zero digit.
func (r *Reader) octetCounted() ([]byte, step, error) {
	i := r.start
	var n int64 // 10 digits overflow a 32-bit int
	for i < r.end && i-r.start < maxDigits && isDigit(r.buf[i]) {
		n = n*10 + int64(r.buf[i]-'0')
		i++
	}
	digits := i - r.start
	if i == r.end {
		if r.err != nil {
			return nil, newline, nil // only digits before EOF: an LF fragment
		}
		r.fill(digits + 1)
		return nil, again, nil
	}
	switch c := r.buf[i]; {
	case c == ' ':
	case isDigit(c):
		return nil, done, r.malformed(digits, "octet count longer than 10 digits")
	default:
		return nil, newline, nil // e.g. "2026-11-22T…": not a count
	}
	body := i + 1
	if n > int64(r.maxLen) {
		r.start = body
		r.discard = n
		return nil, done, fmt.Errorf("%w: octet count %d, max %d", ErrOversize, n, r.maxLen)
	}
	size := int(n)
	if need := body + size - r.start; r.end-r.start < need {
		if r.err != nil {
			have := r.end - r.start
			r.start = r.end
			if !errors.Is(r.err, io.EOF) {
				// Cut by a broken connection, a timeout or shutdown: a
				// fragment, counted like an LF line's (r.err stays for
				// the next call). A clean EOF gives io.ErrUnexpectedEOF.
				return nil, done, fmt.Errorf("%w: %d-byte octet-counted fragment cut off by %v", ErrMalformed, have, r.err)
			}
			r.err = eofUnexpected(r.err)
			return nil, done, r.err
		}
		r.fill(need)
		return nil, again, nil
	}
	msg := r.buf[body : body+size : body+size]
	r.start = body + size
	r.keep = r.start
	if msg[0] == 'z' && zlibHeader(msg[1:]) {
		msg, err := r.inflate(msg[1:])
		if err == nil {
			msg = trimEOL(msg)
		}
		return msg, done, err
	}
	// rsyslog's templates end in LF (RSYSLOG_SyslogProtocol23Format does),
	// and octet counting carries it inside the frame: the message is what
	// precedes it.
	if msg = trimEOL(msg); len(msg) == 0 {
		return nil, again, nil
	}
	return msg, done, nil
}

// trimEOL drops one trailing LF or CRLF.
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		return trimCR(b[: n-1 : n-1])
	}
	return b
}

// lineFramed handles a non-transparent frame, terminated by LF.
func (r *Reader) lineFramed() ([]byte, step, error) {
	from := r.start + r.scanned
	if j := bytes.IndexByte(r.buf[from:r.end], '\n'); j >= 0 {
		lf := from + j
		msg := trimCR(r.buf[r.start:lf:lf])
		r.start = lf + 1
		r.keep = r.start
		r.scanned = 0
		if len(msg) > r.maxLen {
			return nil, done, fmt.Errorf("%w: %d-byte line, max %d", ErrOversize, len(msg), r.maxLen)
		}
		if len(msg) == 0 {
			return nil, again, nil // empty line: skip it
		}
		return msg, done, nil
	}
	pending := r.end - r.start
	r.scanned = pending
	// maxLen+1 leaves room for the CR of a CRLF.
	if pending > r.maxLen+1 {
		r.start = r.end
		r.scanned = 0
		r.toLF = true
		return nil, done, fmt.Errorf("%w: line longer than %d bytes", ErrOversize, r.maxLen)
	}
	if r.err != nil {
		msg := trimCR(r.buf[r.start:r.end:r.end])
		r.start = r.end
		r.keep = r.start
		r.scanned = 0
		if len(msg) > 0 && !errors.Is(r.err, io.EOF) {
			// The connection broke (or was closed at shutdown) mid-line:
			// what we have is a fragment, not a message. Only a clean EOF
			// ends a last line that lacks its LF.
			return nil, done, fmt.Errorf("%w: %d-byte fragment cut off by %v", ErrMalformed, len(msg), r.err)
		}
		if len(msg) > r.maxLen {
			return nil, done, fmt.Errorf("%w: line longer than %d bytes", ErrOversize, r.maxLen)
		}
		if len(msg) == 0 {
			return nil, done, r.err
		}
		return msg, done, nil
	}
	r.fill(pending + 1)
	return nil, again, nil
}

// malformed starts resynchronisation after a bad frame start of n bytes.
func (r *Reader) malformed(n int, why string) error {
	r.start += n
	r.resync = true
	return fmt.Errorf("%w: %s", ErrMalformed, why)
}

// skip consumes buffered bytes of a frame being skipped. It reports whether
// the skip is over.
func (r *Reader) skip() bool {
	b := r.buf[r.start:r.end]
	j := -1
	if r.toLF {
		j = bytes.IndexByte(b, '\n')
	} else {
		j = bytes.IndexAny(b, "\n<")
	}
	if j < 0 {
		r.start = r.end
		return false
	}
	if b[j] == '\n' {
		j++ // consume the LF; a '<' starts the next frame
	}
	r.start += j
	r.toLF, r.resync = false, false
	return true
}

// fill reads more data so that at least need bytes from start can be
// buffered, starting a new slab when the current one lacks room. It returns
// the sticky read error once nothing more can be read.
func (r *Reader) fill(need int) error {
	if r.err != nil {
		return r.err
	}
	if r.start == r.end && r.start > r.keep {
		// Only discarded bytes since keep: reuse their space.
		r.start, r.end = r.keep, r.keep
	}
	// Room for a frame grows with what has arrived of it: a peer that
	// claims a large frame and sends it a byte at a time (slowloris) gets
	// no more memory than it sent, and a large frame arriving at once
	// costs a few doublings.
	if grow := 2*(r.end-r.start) + minSlab; need > grow {
		need = grow
	}
	if free := len(r.buf) - r.end; free < minRead || len(r.buf)-r.start < need {
		r.newSlab(need)
	}
	for tries := 0; ; tries++ {
		space := r.buf[r.end:]
		n, err := r.rd.Read(space)
		if n < 0 || n > len(space) {
			r.err = fmt.Errorf("read: %w", errors.New("invalid count from io.Reader"))
			return r.err
		}
		r.end += n
		if n > 0 {
			r.lastRead = n
			r.saturated = n == len(space)
		}
		if err != nil {
			r.err = err
			if n > 0 {
				return nil // use the data first; the error comes later
			}
			return err
		}
		if n > 0 {
			return nil
		}
		if tries >= maxEmptyReads {
			r.err = io.ErrNoProgress
			return r.err
		}
	}
}

// newSlab moves the unconsumed bytes into a fresh slab sized for the recent
// read pattern and at least need bytes from start.
func (r *Reader) newSlab(need int) {
	size := minSlab
	if len(r.buf) > 0 && r.saturated {
		size = 2 * len(r.buf)
	} else if want := 4 * r.lastRead; want > size {
		size = want
	}
	if size > maxSlab {
		size = maxSlab
	}
	pending := r.end - r.start
	if need < pending {
		need = pending
	}
	if min := 2*need + minRead; size < min {
		size = min
	}
	b := make([]byte, size)
	copy(b, r.buf[r.start:r.end])
	r.buf, r.start, r.end, r.keep = b, 0, pending, 0
}

// inflate decompresses a rsyslog 'z' frame, bounded by maxLen.
func (r *Reader) inflate(z []byte) ([]byte, error) {
	r.zsrc.Reset(z)
	var err error
	if r.zr == nil {
		r.zr, err = zlib.NewReader(&r.zsrc)
	} else {
		err = r.zr.(zlib.Resetter).Reset(&r.zsrc, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: compressed frame: %v", ErrMalformed, err)
	}
	// Syslog text compresses about 2-4x: start there, grow as needed.
	out := make([]byte, 0, min(r.maxLen+1, 4*len(z)+64))
	for {
		if len(out) == cap(out) {
			out = slices.Grow(out, len(out))
		}
		room := out[len(out):cap(out)]
		if lim := r.maxLen + 1 - len(out); len(room) > lim {
			room = room[:lim]
		}
		n, err := r.zr.Read(room)
		out = out[:len(out)+n]
		if len(out) > r.maxLen {
			return nil, fmt.Errorf("%w: compressed frame inflates beyond %d bytes", ErrOversize, r.maxLen)
		}
		switch {
		case err == io.EOF && len(out) == 0:
			return nil, fmt.Errorf("%w: compressed frame is empty", ErrMalformed)
		case err == io.EOF:
			return out[:len(out):len(out)], nil
		case err != nil:
			return nil, fmt.Errorf("%w: compressed frame: %v", ErrMalformed, err)
		}
	}
}

// zlibHeader reports whether b starts with a valid zlib header (RFC 1950):
// deflate method and a header checksum, so a plain 'z' message is not
// mistaken for a compressed one.
func zlibHeader(b []byte) bool {
	if len(b) < 2 {
		return false
	}
	return b[0]&0x0f == 8 && b[0]>>4 <= 7 && (uint16(b[0])<<8|uint16(b[1]))%31 == 0
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[: n-1 : n-1]
	}
	return b
}

func eofUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
