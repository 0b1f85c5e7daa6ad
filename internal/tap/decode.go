package tap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// Message is one event from a tap source. It is decoded lazily: a tap that
// passes JSON through never parses it.
type Message struct {
	// Stream is the event's stream, when the source said it.
	Stream string
	// JSON is the object as the source sent it, or nil for raw messages.
	JSON []byte
	// Raw is the syslog message as the source sent it, or nil for JSON.
	Raw []byte

	ev *event.Event
}

// Event returns the message as an event, with Stream set. For a JSON
// message, Raw is rebuilt as RFC 5424 from the JSON fields, so filters and
// fields work the same on both formats. A JSON object that is not an
// event gives an event with an empty Raw.
func (m *Message) Event() *event.Event {
	if m.ev != nil {
		return m.ev
	}
	if m.JSON == nil {
		m.ev = event.New(m.Raw)
		m.ev.Stream = m.Stream
		return m.ev
	}
	var j jsonEvent
	// A member of the wrong type is skipped; json.Unmarshal still fills
	// the others.
	var typeErr *json.UnmarshalTypeError
	if err := json.Unmarshal(m.JSON, &j); err != nil && !errors.As(err, &typeErr) {
		m.ev = event.New(nil)
		m.ev.Stream = m.Stream
		return m.ev
	}
	m.ev = event.New(rebuild(&j))
	m.ev.Stream = m.Stream
	if m.ev.Stream == "" {
		m.ev.Stream = j.Stream
	}
	m.ev.Input, m.ev.Peer = j.Input, j.Peer
	if t, err := time.Parse(time.RFC3339Nano, j.Received); err == nil {
		m.ev.Received = t
	}
	return m.ev
}

// Size is the message's size as the source sent it.
func (m *Message) Size() int { return len(m.JSON) + len(m.Raw) }

// jsonEvent is the part of event.AppendJSON's schema a tap rebuilds an
// event from.
type jsonEvent struct {
	Stream         string                       `json:"stream"`
	Facility       *int                         `json:"facility"`
	Severity       *int                         `json:"severity"`
	Timestamp      string                       `json:"timestamp"`
	Hostname       string                       `json:"hostname"`
	AppName        string                       `json:"app_name"`
	ProcID         string                       `json:"proc_id"`
	MsgID          string                       `json:"msg_id"`
	StructuredData map[string]map[string]string `json:"structured_data"`
	Message        string                       `json:"message"`
	Input          string                       `json:"input"`
	Peer           string                       `json:"peer"`
	Received       string                       `json:"received"`
	Notice         string                       `json:"notice"`
}

// Notice is an in-band message from the hub.
type Notice struct {
	Notice  string            `json:"notice"`            // "dropped" or "rates"
	Dropped uint64            `json:"dropped,omitempty"` // dropped: lost since the previous notice
	Total   uint64            `json:"total,omitempty"`   // dropped: lost in all
	Streams map[string]uint64 `json:"streams,omitempty"` // rates: events per stream in the interval
	IvlMS   int64             `json:"interval_ms,omitempty"`
}

// isNotice reports whether a websocket message is a hub notice. Events
// always start with {"stream":, so the prefix is enough.
func isNotice(b []byte) bool { return bytes.HasPrefix(b, []byte(`{"notice":`)) }

// Decode turns a source message into a Message: payload is a JSON object
// (first byte '{') or a raw syslog message, topic the stream (the PUB
// topic frame; nil from a websocket, where the JSON carries the stream).
// Decode copies payload, and only reads a JSON object's leading "stream"
// member; Message.Event does the rest on demand.
func Decode(topic, payload []byte) (Message, error) {
	if len(payload) > 0 && payload[0] == '{' {
		if isNotice(payload) {
			return Message{}, fmt.Errorf("decode JSON event: a notice is not an event: %.60q", payload)
		}
		if !json.Valid(payload) {
			return Message{}, fmt.Errorf("decode JSON event: invalid JSON: %.60q", payload)
		}
		m := Message{Stream: string(topic), JSON: bytes.Clone(payload)}
		if m.Stream == "" {
			m.Stream = leadingStream(payload)
		}
		return m, nil
	}
	return Message{Stream: string(topic), Raw: bytes.Clone(payload)}, nil
}

// leadingStream reads the stream of a JSON event: event.AppendJSON puts
// it first. Other layouts take the slow path.
func leadingStream(b []byte) string {
	const pre = `{"stream":"`
	if bytes.HasPrefix(b, []byte(pre)) {
		rest := b[len(pre):]
		if i := bytes.IndexByte(rest, '"'); i >= 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			return string(rest[:i])
		}
	}
	var j struct {
		Stream string `json:"stream"`
	}
	json.Unmarshal(b, &j)
	return j.Stream
}

// rebuild writes the JSON event's fields as an RFC 5424 message.
func rebuild(j *jsonEvent) []byte {
	b := make([]byte, 0, 64+len(j.Message))
	if j.Facility != nil && j.Severity != nil && *j.Facility >= 0 && *j.Facility < 24 && *j.Severity >= 0 && *j.Severity < 8 {
		b = append(b, '<')
		b = strconv.AppendUint(b, uint64(*j.Facility)<<3|uint64(*j.Severity), 10)
		b = append(b, '>')
	} else {
		b = append(b, "<13>"...) // user.notice, RFC 5424's default
	}
	b = append(b, '1', ' ')
	ts := "-"
	if _, err := time.Parse(time.RFC3339Nano, j.Timestamp); err == nil {
		ts = j.Timestamp
	}
	b = append(b, ts...)
	for _, f := range []struct {
		v   string
		max int
	}{{j.Hostname, 255}, {j.AppName, 48}, {j.ProcID, 128}, {j.MsgID, 32}} {
		b = append(b, ' ')
		b = appendHeaderField(b, f.v, f.max)
	}
	b = append(b, ' ')
	if len(j.StructuredData) == 0 {
		b = append(b, '-')
	}
	for _, id := range slices.Sorted(maps.Keys(j.StructuredData)) {
		b = append(b, '[')
		b = appendSDName(b, id)
		params := j.StructuredData[id]
		for _, p := range slices.Sorted(maps.Keys(params)) {
			b = append(b, ' ')
			b = appendSDName(b, p)
			b = append(b, '=', '"')
			for i := 0; i < len(params[p]); i++ {
				c := params[p][i]
				if c == '"' || c == '\\' || c == ']' {
					b = append(b, '\\')
				}
				b = append(b, c)
			}
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if j.Message != "" {
		b = append(b, ' ')
		b = append(b, j.Message...)
	}
	return b
}

// appendHeaderField appends a header field as RFC 5424 allows it: printable
// ASCII without spaces, at most max bytes, "-" when empty.
func appendHeaderField(b []byte, v string, max int) []byte {
	n := 0
	for i := 0; i < len(v) && n < max; i++ {
		if c := v[i]; c > ' ' && c < 0x7f {
			b = append(b, c)
			n++
		}
	}
	if n == 0 {
		b = append(b, '-')
	}
	return b
}

// appendSDName appends an SD-ID or PARAM-NAME without the characters
// RFC 5424 forbids in them.
func appendSDName(b []byte, v string) []byte {
	n := 0
	for i := 0; i < len(v) && n < 32; i++ {
		if c := v[i]; c > ' ' && c < 0x7f && c != '=' && c != ']' && c != '"' {
			b = append(b, c)
			n++
		}
	}
	if n == 0 {
		b = append(b, '_')
	}
	return b
}
