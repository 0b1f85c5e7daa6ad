package relp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Limits of the frame grammar (librelp src/relpframe.c).
const (
	// MaxTxnr is the largest transaction number: TXNR has at most 9
	// digits. The spec wraps to 1 after it.
	MaxTxnr = 999_999_999
	// maxDigits bounds TXNR and DATALEN.
	maxDigits = 9
	// maxCommand is the longest command name.
	maxCommand = 32
)

// Commands the relay knows.
const (
	CmdOpen        = "open"
	CmdSyslog      = "syslog"
	CmdClose       = "close"
	CmdRsp         = "rsp"
	CmdServerclose = "serverclose"
)

// Frame is one RELP frame: TXNR SP COMMAND SP DATALEN [SP DATA] LF.
type Frame struct {
	Txnr    int
	Command string
	// Data is the frame's data, owned by the caller (it may share a
	// backing array with other frames' data, never with later reads).
	Data []byte
}

// NextTxnr returns the transaction number that follows t: t+1, and 1 after
// MaxTxnr, as the RELP spec says. (librelp's client computes 1,000,000,000
// after 999,999,999, which its own frame builder then refuses, so in
// practice its session breaks there and restarts at 1.)
func NextTxnr(t int) int {
	if t >= MaxTxnr {
		return 1
	}
	return t + 1
}

// Reader reads RELP frames from a byte stream, as they arrive: a frame
// may span any number of reads. Every parse error is a *FrameError and
// ends the stream (RELP has no resynchronisation point).
type Reader struct {
	br      *bufio.Reader
	maxData int
	cmd     [maxCommand]byte
	slab    []byte // small frames' data are carved from it
}

// readBufSize is the Reader's buffer: one read syscall takes up to this
// much, hundreds of typical frames.
const readBufSize = 64 << 10

// slabSize is how much data a slab holds; data larger than slabSize/8
// gets its own allocation, so one big frame does not pin a slab.
const slabSize = 64 << 10

// NewReader returns a Reader of r that refuses frames whose DATALEN
// exceeds maxData (ErrOversize).
func NewReader(r io.Reader, maxData int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, readBufSize), maxData: maxData}
}

// Buffered reports how many bytes are read from the stream but not yet
// parsed: 0 means the next Next may block on the network.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Next returns the next frame. At a clean end of stream (between frames)
// it returns io.EOF; an I/O error between frames is returned as it is.
// Anything else wrong is a *FrameError.
func (r *Reader) Next() (Frame, error) {
	c, err := r.br.ReadByte()
	if err != nil {
		return Frame{}, err
	}
	// TXNR
	txnr, c, err := r.number(c)
	switch {
	case errors.Is(err, errNotNumber):
		return Frame{}, frameErr(ReasonTxnr, 0, ErrBadTxnr, "frame starts with %s, not a digit", quoteByte(c))
	case errors.Is(err, errTooLong):
		return Frame{}, frameErr(ReasonTxnr, 0, ErrBadTxnr, "more than %d digits", maxDigits)
	case err != nil:
		return Frame{}, truncated(0, err)
	case c != ' ':
		return Frame{}, frameErr(ReasonTxnr, 0, ErrBadTxnr, "%s after the transaction number, want a space", quoteByte(c))
	}
	// COMMAND
	n := 0
	for {
		c, err = r.br.ReadByte()
		if err != nil {
			return Frame{}, truncated(txnr, err)
		}
		if c == ' ' {
			break
		}
		if !isAlpha(c) {
			return Frame{}, frameErr(ReasonCommand, txnr, ErrBadCommand, "%s in the command", quoteByte(c))
		}
		if n == maxCommand {
			return Frame{}, frameErr(ReasonCommand, txnr, ErrBadCommand, "longer than %d letters", maxCommand)
		}
		r.cmd[n] = c
		n++
	}
	if n == 0 {
		return Frame{}, frameErr(ReasonCommand, txnr, ErrBadCommand, "empty command")
	}
	f := Frame{Txnr: txnr, Command: commandName(r.cmd[:n])}
	// DATALEN
	c, err = r.br.ReadByte()
	if err != nil {
		return Frame{}, truncated(txnr, err)
	}
	dlen, c, err := r.number(c)
	switch {
	case errors.Is(err, errNotNumber):
		return Frame{}, frameErr(ReasonDatalen, txnr, ErrBadDatalen, "%s where DATALEN starts", quoteByte(c))
	case errors.Is(err, errTooLong):
		return Frame{}, frameErr(ReasonDatalen, txnr, ErrBadDatalen, "more than %d digits", maxDigits)
	case err != nil:
		return Frame{}, truncated(txnr, err)
	}
	if dlen == 0 {
		// No data: the trailer follows DATALEN at once.
		if c != '\n' {
			return Frame{}, frameErr(ReasonTrailer, txnr, ErrNoTrailer, "%s after DATALEN 0", quoteByte(c))
		}
		return f, nil
	}
	if c != ' ' {
		return Frame{}, frameErr(ReasonDatalen, txnr, ErrBadDatalen, "%s after DATALEN, want a space", quoteByte(c))
	}
	if dlen > r.maxData {
		return Frame{}, frameErr(ReasonOversize, txnr, ErrOversize, "DATALEN %d, limit %d", dlen, r.maxData)
	}
	f.Data = r.alloc(dlen)
	if _, err := io.ReadFull(r.br, f.Data); err != nil {
		return Frame{}, truncated(txnr, err)
	}
	c, err = r.br.ReadByte()
	if err != nil {
		return Frame{}, truncated(txnr, err)
	}
	if c != '\n' {
		return Frame{}, frameErr(ReasonTrailer, txnr, ErrNoTrailer, "%s after %d bytes of data", quoteByte(c), dlen)
	}
	return f, nil
}

var (
	errNotNumber = errors.New("not a number")
	errTooLong   = errors.New("too many digits")
)

// number reads the decimal number starting with first and returns it with
// the byte after it.
func (r *Reader) number(first byte) (int, byte, error) {
	if !isDigit(first) {
		return 0, first, errNotNumber
	}
	v, digits := int(first-'0'), 1
	for {
		c, err := r.br.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		if !isDigit(c) {
			return v, c, nil
		}
		if digits == maxDigits {
			return 0, c, errTooLong
		}
		v = v*10 + int(c-'0')
		digits++
	}
}

// alloc returns n bytes the caller owns; small ones share a slab.
func (r *Reader) alloc(n int) []byte {
	if n > slabSize/8 {
		return make([]byte, n)
	}
	if cap(r.slab)-len(r.slab) < n {
		r.slab = make([]byte, 0, slabSize)
	}
	start := len(r.slab)
	r.slab = r.slab[:start+n]
	return r.slab[start : start+n : start+n]
}

func truncated(txnr int, err error) *FrameError {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return &FrameError{Reason: ReasonTruncated, Txnr: txnr, Err: fmt.Errorf("%w: %w", ErrTruncated, err)}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func quoteByte(c byte) string { return strconv.QuoteRune(rune(c)) }

// commandName returns the command as a string without allocating for the
// commands the relay knows.
func commandName(b []byte) string {
	switch string(b) { // no allocation: the compiler compares in place
	case CmdSyslog:
		return CmdSyslog
	case CmdOpen:
		return CmdOpen
	case CmdClose:
		return CmdClose
	case CmdRsp:
		return CmdRsp
	case CmdServerclose:
		return CmdServerclose
	}
	return string(b)
}

// AppendFrame appends the frame TXNR SP COMMAND SP DATALEN [SP DATA] LF.
func AppendFrame(dst []byte, txnr int, command string, data []byte) []byte {
	dst = strconv.AppendInt(dst, int64(txnr), 10)
	dst = append(dst, ' ')
	dst = append(dst, command...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(len(data)), 10)
	if len(data) > 0 {
		dst = append(dst, ' ')
		dst = append(dst, data...)
	}
	return append(dst, '\n')
}

// rspOK is the data of a positive answer.
var rspOK = []byte("200 OK")

// AppendOK appends the answer "TXNR rsp 6 200 OK" LF.
func AppendOK(dst []byte, txnr int) []byte { return AppendFrame(dst, txnr, CmdRsp, rspOK) }

// AppendError appends a negative answer "500 msg". librelp's client drops
// a syslog frame answered so, for good: the relay sends it only to frames
// it could not parse or will never take.
func AppendError(dst []byte, txnr int, msg string) []byte {
	if len(msg) > 80 { // the spec's HUMAN-TEXT limit
		msg = msg[:80]
	}
	return AppendFrame(dst, txnr, CmdRsp, append([]byte("500 "), msg...))
}

// AppendServerclose appends the hint "0 serverclose 0" LF, which tells
// the client the server closes the session: it reconnects and sends every
// unanswered frame again under new transaction numbers.
func AppendServerclose(dst []byte) []byte { return AppendFrame(dst, 0, CmdServerclose, nil) }
