package cli

import (
	"bytes"
	"hash/fnv"

	"github.com/rsyslog-zmq/relay/internal/event"
)

const (
	reset = "\033[0m"
	dim   = "\033[2m"
	bold  = "\033[1m"
	red   = "\033[31m"
	yell  = "\033[33m"
)

var streamColors = []string{"\033[36m", "\033[32m", "\033[35m", "\033[34m", "\033[96m", "\033[92m"}

var sevNames = [...]string{"EMERG", "ALERT", "CRIT ", "ERR  ", "WARN ", "NOTE ", "INFO ", "DEBUG"}

// appendPretty appends one aligned line: time, stream, host, app,
// severity, message. Colour marks the stream and the severity on a TTY.
func appendPretty(b []byte, e *event.Event, color bool) []byte {
	h := e.Header()
	ts := h.Timestamp()
	if i := bytes.IndexByte(ts, 'T'); i >= 0 {
		ts = ts[i+1:]
	}
	b = pad(b, ts, 12, color, dim)
	b = append(b, ' ')
	sc := ""
	if color {
		f := fnv.New32a()
		f.Write([]byte(e.Stream))
		sc = streamColors[f.Sum32()%uint32(len(streamColors))]
	}
	b = pad(b, []byte(e.Stream), 14, color, sc)
	b = append(b, ' ')
	b = pad(b, h.Hostname(), 16, false, "")
	b = append(b, ' ')
	b = pad(b, h.AppName(), 14, color, bold)
	b = append(b, ' ')
	if h.HasPRI {
		sev := h.Severity()
		c := ""
		switch {
		case sev <= 3:
			c = red
		case sev == 4:
			c = yell
		case sev == 7:
			c = dim
		}
		b = pad(b, []byte(sevNames[sev]), 5, color, c)
	} else {
		b = append(b, "-    "...)
	}
	b = append(b, ' ')
	for _, c := range h.Msg() {
		if c == '\n' || c == '\r' {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

// pad appends v cut or padded to width, coloured when color and c != "".
func pad(b, v []byte, width int, color bool, c string) []byte {
	if len(v) > width {
		v = v[:width]
	}
	if color && c != "" {
		b = append(b, c...)
	}
	b = append(b, v...)
	if color && c != "" {
		b = append(b, reset...)
	}
	for i := len(v); i < width; i++ {
		b = append(b, ' ')
	}
	return b
}
