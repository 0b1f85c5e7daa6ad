package event

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzHeader checks that the header scan and the JSON encoder accept any
// input: no panic, views inside Raw, valid JSON whose message decodes to
// what encoding/json makes of the same bytes.
func FuzzHeader(f *testing.F) {
	f.Add([]byte(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event`))
	f.Add([]byte(`<30>2026-11-22T05:06:07.123456+00:00 web1 sshd[4242]: Accepted publickey`))
	f.Add([]byte(`<13>Nov  2 05:06:07 host app[1]:hello`))
	f.Add([]byte("<13>1 - - - - - [a x=\"\\\"\\]\"][b y=\"\xff\"] \xef\xbb\xbfm\x00"))
	f.Add([]byte("no pri: \xe2\x80\xa8"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		e := New(raw)
		e.Stream, e.Input, e.Peer, e.Received = "s\xff", "in", "peer", time.Unix(1, 2)
		h := e.Header()
		if s := Scan(raw); fieldsOf(h) != fieldsOf(&s) {
			t.Fatal("Header and Scan disagree")
		}
		if h.HasPRI && h.PRI > 191 {
			t.Fatalf("PRI %d", h.PRI)
		}
		for _, v := range [][]byte{h.Timestamp(), h.Hostname(), h.AppName(), h.ProcID(), h.MsgID(), h.SD(), h.Msg()} {
			if len(v) != cap(v) || len(v) > len(raw) {
				t.Fatalf("view %q: len %d cap %d of %d", v, len(v), cap(v), len(raw))
			}
		}
		out := e.AppendJSON(nil)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %s", out)
		}
		var got struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		var want string
		std, _ := json.Marshal(string(h.Msg()))
		json.Unmarshal(std, &want)
		if got.Message != want {
			t.Fatalf("message %q, encoding/json makes %q", got.Message, want)
		}
	})
}

// FuzzParseField checks that any spec either parses or fails with
// ErrBadField, and that parsed fields never panic on any message.
func FuzzParseField(f *testing.F) {
	for _, spec := range []string{"app-name", "msgid", "hostname", "facility", "severity",
		"sd:origin@32473.ip", "json:user.name", `regex:user=(\w+)`, "sd:a.b.c", "json:a..b", "regex:(", "x"} {
		f.Add(spec, []byte(`<13>1 - h app - ID1 [origin@32473 ip="1.2.3.4"] @cee: {"user":{"name":"b\u00f6b"},"a":[1,"]"]}`))
	}
	f.Add("json:a.b", []byte(`<13>1 - - - - - - {"a":{"b":"\ud83d\ude00 \ud800"}}`))
	f.Fuzz(func(t *testing.T, spec string, raw []byte) {
		fld, err := ParseField(spec)
		if err != nil {
			if !errors.Is(err, ErrBadField) {
				t.Fatalf("ParseField(%q): %v is not ErrBadField", spec, err)
			}
			return
		}
		v, ok := fld.Get(New(raw))
		if !ok && v != "" {
			t.Fatalf("absent value %q", v)
		}
	})
}
