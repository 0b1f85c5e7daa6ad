package tap

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// An RFC 5424 event survives AppendJSON → Decode → Event → AppendJSON.
func TestDecodeRoundTrip(t *testing.T) {
	for _, raw := range []string{
		`<165>1 2026-11-22T05:00:00.123Z web1 nginx 42 ACCESS [u@32473 id="7" path="/a\"b\]"][x@1 k="v"] GET / 200`,
		`<14>1 2026-11-22T05:00:00Z - app - - - {"user":{"id":"9"}}`,
		`<0>1 - host a - - -`,
	} {
		ev := event.New([]byte(raw))
		ev.Stream = "s1"
		ev.Input, ev.Peer = "in", "10.0.0.1:514"
		js := ev.AppendJSON(nil)
		m, err := Decode([]byte("s1"), js)
		if err != nil {
			t.Fatal(err)
		}
		back := m.Event()
		var a, b map[string]any
		json.Unmarshal(js, &a)
		json.Unmarshal(back.AppendJSON(nil), &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("round trip of %q:\n got  %v\n want %v\n rebuilt %q", raw, b, a, back.Raw)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, p := range []string{`{"notice":"dropped","dropped":1,"total":1}`, `{"stream":`, `{]`} {
		if _, err := Decode(nil, []byte(p)); err == nil {
			t.Errorf("%q: decoded", p)
		}
	}
	m, err := Decode(nil, []byte(`{"stream":"a\"b","message":"x"}`))
	if err != nil || m.Stream != `a"b` {
		t.Errorf("escaped stream: %q, %v", m.Stream, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("click"), []byte(`<14>1 2026-11-22T05:00:00Z h click - - [u@32473 id="1"] hi`))
	f.Add([]byte(""), []byte(`{"stream":"click","format":"rfc5424","facility":1,"severity":6,"hostname":"h","app_name":"click","structured_data":{"u@32473":{"id":"1"}},"message":"hi"}`))
	f.Add([]byte("x"), []byte(`{"facility":300,"severity":-1,"structured_data":{"":{"":"]\"\\"}},"timestamp":"x y"}`))
	f.Add([]byte("x"), []byte(`<13>Nov 22 05:00:00 host tag: msg`))
	f.Fuzz(func(t *testing.T, topic, payload []byte) {
		m, err := Decode(topic, payload)
		if err != nil {
			return
		}
		ev := m.Event()
		js := ev.AppendJSON(nil)
		if !json.Valid(js) {
			t.Fatalf("invalid JSON from %q: %q", payload, js)
		}
		if m.JSON != nil {
			// The rebuilt message must scan as RFC 5424 and decode again
			// to the same fields.
			if h := ev.Header(); len(ev.Raw) > 0 && h.Format != event.FormatRFC5424 {
				t.Fatalf("rebuilt %q scans as %v", ev.Raw, h.Format)
			}
			again, err := Decode(topic, js)
			if err != nil {
				t.Fatalf("re-decode %q: %v", js, err)
			}
			if got := again.Event().AppendJSON(nil); string(got) != string(js) {
				t.Fatalf("not stable:\n%s\n%s", js, got)
			}
		}
	})
}
