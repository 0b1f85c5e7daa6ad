package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAckSection(t *testing.T) {
	c := mustLoad(t, "testdata/ack.good.yaml")
	want := []*Ack{
		{Bind: []string{"tcp://0.0.0.0:5558"}, Batch: 100, Window: 16, Timeout: 5 * time.Second, Flush: DefaultAckFlush},
		{Connect: []string{"tcp://sink:5559"}, Batch: 1000, Window: 4, Timeout: 30 * time.Second, Flush: 50 * time.Millisecond},
	}
	for i, w := range want {
		if got := c.Outputs[i].Ack; !reflect.DeepEqual(got, w) {
			t.Errorf("outputs[%d].ack = %+v, want %+v", i, got, w)
		}
	}
	sum := c.Summary()
	for _, s := range []string{
		"output workers: acknowledged, acks bind tcp://0.0.0.0:5558; batch 100, window 16 (at most 1600 events held), resent after 5s, partial batches sent after 10ms",
		"output pool: acknowledged, acks connect tcp://sink:5559; batch 1000, window 4",
	} {
		if !strings.Contains(sum, s) {
			t.Errorf("summary lacks %q:\n%s", s, sum)
		}
	}
	// Defaults fill an ack section that only names its endpoint.
	c, err := Parse([]byte(`inputs: [{name: in, type: syslog, listen: "tcp://127.0.0.1:10514"}]
outputs: [{name: o, socket: push, bind: "tcp://127.0.0.1:5557", ack: {bind: "tcp://127.0.0.1:5558"}}]
`), "")
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Outputs[0].Ack; a.Batch != DefaultAckBatch || a.Window != 160 || a.Timeout != DefaultAckTimeout || a.Flush != DefaultAckFlush {
		t.Fatalf("defaults not applied: %+v", a)
	}
}

func TestAckSectionErrors(t *testing.T) {
	head := "inputs: [{name: in, type: syslog, listen: \"tcp://127.0.0.1:10514\"}]\noutputs:\n"
	for _, tc := range []struct{ out, path, msg string }{
		{`  - {name: o, socket: pub, bind: "tcp://127.0.0.1:5557", ack: {bind: "tcp://127.0.0.1:5558"}}`,
			"outputs[0].ack", "ack applies only to push outputs"},
		{`  - {name: o, socket: push, bind: "tcp://127.0.0.1:5557", ack: {batch: 10}}`,
			"outputs[0].ack.bind", "acks need an endpoint of their own"},
		{`  - {name: o, socket: push, bind: "tcp://127.0.0.1:5557", ack: {bind: "tcp://127.0.0.1:5557"}}`,
			"outputs[0].ack.bind", "tcp://127.0.0.1:5557 is already bound by outputs[0].bind"},
		{`  - {name: o, socket: push, bind: "tcp://127.0.0.1:5557", ack: {bind: "tcp://127.0.0.1:5558", batch: 0}}`,
			"outputs[0].ack.batch", "0 is too small; use at least 1 (default 100)"},
		{`  - {name: o, socket: push, bind: "tcp://127.0.0.1:5557", ack: {bind: "tcp://127.0.0.1:5558", window: 5000}}`,
			"outputs[0].ack.window", "5000 is too large; use at most 4096 (default 16)"},
		{`  - {name: o, socket: push, bind: "tcp://127.0.0.1:5557", ack: {bind: "tcp://127.0.0.1:5558", batch: 100000, window: 100}}`,
			"outputs[0].ack.window", "batch × window = 10000000 events held in memory"},
		{`  - {name: o, socket: push, bind: "tcp://127.0.0.1:5557", ack: {bind: "tcp://127.0.0.1:5558", timeout: 0}}`,
			"outputs[0].ack.timeout", "a batch must be resent after some time"},
		{`  - {name: o, socket: push, bind: "tcp://127.0.0.1:5557", ack: {bind: "tcp://127.0.0.1:5558", timeout: 1s, flush: 2s}}`,
			"outputs[0].ack.flush", "2s is not below timeout 1s"},
		{`  - {name: o, socket: push, bind: "tcp://127.0.0.1:5557", ack: {bind: "tcp://127.0.0.1:5558", windw: 4}}`,
			"outputs[0].ack.windw", `unknown key; did you mean "window"?`},
		{`  - {name: o, socket: push, bind: "tcp://127.0.0.1:5557", ack: {connect: "tcp://*:5558"}}`,
			"outputs[0].ack.connect", "connect needs a host, not *"},
	} {
		_, err := Parse([]byte(head+tc.out+"\n"), "ack.yaml")
		var cerr *Error
		if !errors.As(err, &cerr) {
			t.Errorf("%s: err = %v, want *Error", tc.out, err)
			continue
		}
		found := false
		for _, p := range cerr.Problems {
			if p.Path == tc.path && strings.Contains(p.Msg, tc.msg) && p.Line == 3 {
				found = true
			}
		}
		if !found || len(cerr.Problems) != 1 {
			t.Errorf("%s:\n got %v\nwant one problem at line 3 %s: …%s", tc.out, err, tc.path, tc.msg)
		}
	}
}
