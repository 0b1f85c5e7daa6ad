package event

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestJSONGolden encodes every line of testdata/json.input and compares
// with testdata/json.golden (run with -update to rewrite it, then review
// the diff).
func TestJSONGolden(t *testing.T) {
	in, err := os.ReadFile("testdata/json.input")
	if err != nil {
		t.Fatal(err)
	}
	received := time.Date(2026, 11, 22, 5, 6, 7, 123456789, time.UTC)
	var out []byte
	for i, line := range bytes.Split(bytes.TrimSuffix(in, []byte("\n")), []byte("\n")) {
		e := New(line)
		e.Stream, e.Input, e.Peer, e.Received = "s1", "tcp514", "192.0.2.7:51234", received
		if i%2 == 1 { // cover the omitted optional members too
			e.Input, e.Peer, e.Received = "", "", time.Time{}
		}
		start := len(out)
		out = e.AppendJSON(out)
		if !json.Valid(out[start:]) {
			t.Fatalf("line %d: invalid JSON %s", i+1, out[start:])
		}
		out = append(out, '\n')
	}
	if *update {
		if err := os.WriteFile("testdata/json.golden", out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/json.golden")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Fatalf("JSON differs from testdata/json.golden (go test -run JSONGolden -update to rewrite):\n%s", out)
	}
}

// TestJSONMatchesEncodingJSON checks the string escaping against the
// standard library on awkward strings: both must decode to the same text.
func TestJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain", "\"\\/", "\x00\x01\x1f\x7f", "\n\r\t\b\f", "\xff", "a\xe2\x82", "\xed\xa0\x80 surrogate",
		"\xf4\x90\x80\x80 too big", "\xc0\xaf overlong", "\u2028\u2029", "ü€😀", "\xef\xbf\xbd",
		strings.Repeat("é\x80", 20),
	} {
		ours := appendJSONString(nil, s)
		var a, b string
		if err := json.Unmarshal(ours, &a); err != nil {
			t.Fatalf("%q: our %s is invalid: %v", s, ours, err)
		}
		std, _ := json.Marshal(s)
		json.Unmarshal(std, &b)
		if a != b {
			t.Errorf("%q: ours decodes to %q, encoding/json's to %q", s, a, b)
		}
		if oursB := appendJSONString(nil, []byte(s)); !bytes.Equal(oursB, ours) {
			t.Errorf("%q: []byte and string encodings differ: %s vs %s", s, oursB, ours)
		}
	}
}

func TestJSONStructuredData(t *testing.T) {
	e := New([]byte(`<13>1 - - - - - [a@1 x="1" y="q\"q"][b z="\]\\"] m`))
	var got struct {
		SD map[string]map[string]string `json:"structured_data"`
	}
	if err := json.Unmarshal(e.AppendJSON(nil), &got); err != nil {
		t.Fatal(err)
	}
	if got.SD["a@1"]["x"] != "1" || got.SD["a@1"]["y"] != `q"q` || got.SD["b"]["z"] != `]\` {
		t.Fatalf("structured data %v", got.SD)
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	e := New([]byte(`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event`))
	e.Received = time.Now()
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = e.AppendJSON(buf[:0]) }); n != 0 {
		t.Fatalf("AppendJSON into a large enough buffer: %v allocs", n)
	}
}

// TestJSONEscapeEveryOffset puts each awkward character at every offset of
// a plain string, so the 8-byte fast path meets it in every lane.
func TestJSONEscapeEveryOffset(t *testing.T) {
	plain := strings.Repeat("abcdefgh", 5)
	for _, special := range []string{`"`, `\`, "\n", "\x00", "\x1f", "\x7f", "\x80", "é", "\u2028", "\xff", " ", "~", "!", "#", "[", "]"} {
		for p := 0; p <= len(plain); p++ {
			s := plain[:p] + special + plain[p:]
			var got, want string
			if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
				t.Fatalf("%q: %v", s, err)
			}
			std, _ := json.Marshal(s)
			json.Unmarshal(std, &want)
			if got != want {
				t.Fatalf("%q: decodes to %q, encoding/json's to %q", s, got, want)
			}
		}
	}
}

func BenchmarkJSONString(b *testing.B) {
	s := []byte(benchMsgs["rfc5424"])
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(s)))
	for range b.N {
		buf = appendJSONString(buf[:0], s)
	}
}
