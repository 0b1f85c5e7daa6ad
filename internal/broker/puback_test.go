package broker

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// pubAckSeeds are what nats-server sends, and forms the scanner hands to
// encoding/json.
var pubAckSeeds = []string{
	`{"stream":"EVENTS","seq":1}`,
	`{"stream":"EVENTS","seq":18446744073709551615}`,
	`{"stream":"EVENTS","seq":42,"duplicate":true}`,
	`{"stream":"EVENTS","domain":"hub","seq":7}`,
	`{"stream":"EVENTS","seq":0,"duplicate":true}`,
	`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`,
	`{"error":{"code":404,"err_code":10059,"description":"stream not found"},"stream":"X","seq":1}`,
	` { "stream" : "S" , "seq" : 3 , "val" : "x", "n": 5, "b": false, "z": null } `,
	`{"Stream":"S","seq":1}`,
	`{"stream":"S\u00e9","seq":1}`,
	`{"stream":"S","seq":1.5}`,
	`{"stream":"S","seq":-1}`,
	`{"stream":"S","seq":01}`,
	`{"stream":"S","seq":18446744073709551616}`,
	`{"stream":"S","seq":1,"batch":{"id":"b","count":2}}`,
	`{"error":{"code":1},"error":{"err_code":2}}`,
	`{"error":null,"stream":"S","seq":1}`,
	`{"stream":"S","seq":1}x`,
	`{"stream":"S","seq":1,}`,
	`{}`,
	``,
	`[]`,
	`{"stream":"S","seq":1,"duplicate":tru}`,
}

func decodePubAckJSON(b []byte) (pubAck, error) {
	var pa pubAck
	if err := json.Unmarshal(b, &pa); err != nil {
		return pubAck{}, err
	}
	return pa, nil
}

// FuzzPubAck: parsePubAck never panics and decodes exactly what
// encoding/json decodes; when the scanner alone accepts an input, so does
// encoding/json, with the same fields.
func FuzzPubAck(f *testing.F) {
	for _, s := range pubAckSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, wantErr := decodePubAckJSON(b)
		if pa, ok := scanPubAck(b); ok {
			if wantErr != nil {
				t.Fatalf("scanner accepted %q, encoding/json: %v", b, wantErr)
			}
			if !reflect.DeepEqual(pa, want) {
				t.Fatalf("scanner %q: %+v, encoding/json %+v", b, pa, want)
			}
		}
		got, err := parsePubAck(b)
		if (err != nil) != (wantErr != nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %+v %v, encoding/json %+v %v", b, got, err, want, wantErr)
		}
	})
}

// The forms nats-server sends go through the scanner, not encoding/json.
func TestPubAckScanner(t *testing.T) {
	for _, c := range []struct {
		in   string
		want pubAck
	}{
		{`{"stream":"EVENTS","seq":12345}`, pubAck{Stream: "EVENTS", Seq: 12345}},
		{`{"stream":"EVENTS","seq":9,"duplicate":true}`, pubAck{Stream: "EVENTS", Seq: 9, Duplicate: true}},
		{`{"stream":"EVENTS","seq":9,"domain":"hub"}`, pubAck{Stream: "EVENTS", Seq: 9, Domain: "hub"}},
		{`{"stream":"EVENTS","seq":0,"duplicate":true}`, pubAck{Stream: "EVENTS", Duplicate: true}},
		{`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"}}`,
			pubAck{Error: &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum messages exceeded"}}},
		{`{"stream":"EVENTS","seq":3,"val":"v","count":2}`, pubAck{Stream: "EVENTS", Seq: 3}},
	} {
		got, ok := scanPubAck([]byte(c.in))
		if !ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v ok=%v, want %+v", c.in, got, ok, c.want)
		}
	}
	// An error PubAck classifies like nats.go's decoded one.
	pa, err := parsePubAck([]byte(`{"error":{"code":404,"err_code":10059,"description":"stream not found"}}`))
	if err != nil || pa.Error == nil {
		t.Fatalf("%+v %v", pa, err)
	}
	if cause, _ := classify(pa.Error, "s"); cause != CauseNoStream {
		t.Fatalf("stream not found classified as %q", cause)
	}
	pa, _ = parsePubAck([]byte(`{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"}}`))
	if cause, _ := classify(pa.Error, "s"); cause != CauseStreamFull {
		t.Fatalf("maximum bytes exceeded classified as %q", cause)
	}
	if _, err := parsePubAck([]byte(`{"stream":`)); err == nil {
		t.Fatal("truncated PubAck accepted")
	}
}

func BenchmarkParsePubAck(b *testing.B) {
	in := []byte(`{"stream":"EVENTS","seq":123456789,"duplicate":true}`)
	b.Run("scanner", func(b *testing.B) {
		for b.Loop() {
			if _, err := parsePubAck(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodePubAckJSON(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}
