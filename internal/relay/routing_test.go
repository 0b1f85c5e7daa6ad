package relay

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// routingEvents are sent over TCP in this order; seq i is event i. The
// stream derives from app-name; the last has none and gets the default.
var routingEvents = []struct {
	raw    string
	stream string
}{
	{`<14>1 2026-11-22T05:00:00.5Z h1 click 77 ID1 [ex@32473 k="v" q="a\"b"][meta x="1"] seq:00000000`, "click"},
	{`<14>1 2026-11-22T05:00:00Z h2 impression - - - seq:00000001`, "impression"},
	{`<14>1 2026-11-22T05:00:00Z h3 other - - - seq:00000002`, "other"},
	{`<13>Nov 22 05:00:00 h4 click[99]: seq:00000003`, "click"},
	{`<14>2026-11-22T05:00:00.123456+00:00 h5 impression: seq:00000004`, "impression"},
	{`<14>1 2026-11-22T05:00:00Z h6 - - - - seq:00000005`, "unknown"},
	{`<14>1 2026-11-22T05:00:00Z h7 imprint - - - seq:00000006`, "imprint"},
}

// TestRouting: each stream reaches exactly the outputs whose globs match
// it (PUSH and PUB alike), and nothing else.
func TestRouting(t *testing.T) {
	if testing.Short() {
		t.Skip("real libzmq peers")
	}
	r := startRelay(t, `
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
stream: {from: app-name, default: unknown}
outputs:
  - name: clicks
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: [click]
  - name: ads
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: ["impr*", click]
  - name: rest
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: [other, unknown]
  - name: everything
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    format: json
  - name: taps
    type: zmq
    socket: pub
    bind: tcp://127.0.0.1:0
    streams: ["imp?ession", probe]
http:
  listen: 127.0.0.1:0
`)
	peers := map[string]*testpeer.Peer{}
	for _, name := range []string{"clicks", "ads", "rest", "everything"} {
		peers[name] = startWorkers(t, r, name, 1)[0]
	}
	sub := testpeer.StartPeer(t, "sub", ">"+outputEndpoint(t, r, "taps"))
	addr := inputAddr(t, r, "syslog", "tcp")
	// Events published before the SUB's subscription reached the PUB are
	// (rightly) not for it.
	waitSubscribed(t, r, "taps", 1)
	for name := range peers {
		waitPeers(t, r, name, 1)
	}
	var msgs []string
	for _, e := range routingEvents {
		msgs = append(msgs, e.raw)
	}
	sendTCP(t, addr, true, msgs)

	want := map[string][]int{
		"clicks":     {0, 3},
		"ads":        {0, 1, 3, 4, 6},
		"rest":       {2, 5},
		"everything": {0, 1, 2, 3, 4, 5, 6},
		"taps":       {1, 4},
	}
	peers["taps"] = sub
	for _, name := range sortedKeys(want) {
		p := peers[name]
		testpeer.Eventually(t, 20*time.Second,
			func() string { return fmt.Sprintf("%d events at %s, have %v", len(want[name]), name, p.Messages()) },
			func() bool { return len(seqs(p)) >= len(want[name]) })
	}
	// Everything was sent on one connection, so once "everything" has the
	// last event every output has been written its share: wait for the
	// relay to count them all, then compare exactly.
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("all events routed"), func() bool {
		return metric(t, r, "relay_input_received_total", "input=syslog") >= float64(len(routingEvents))
	})
	for _, name := range sortedKeys(want) {
		if got := seqs(peers[name]); !reflect.DeepEqual(got, want[name]) {
			t.Errorf("output %s got events %v, want %v", name, got, want[name])
		}
		// What the relay handed each PUSH socket: a wrong event still in
		// flight to a peer would show here.
		n := len(want[name])
		if got := metric(t, r, "relay_output_sent_total", "output="+name); got != float64(n) {
			t.Errorf("relay_output_sent_total{output=%q} = %v, want %d", name, got, n)
		}
	}
	if got := metric(t, r, "relay_unrouted_events_total"); got != 0 {
		t.Errorf("relay_unrouted_events_total = %v with an output for every stream", got)
	}
	for _, m := range sub.Messages() {
		if len(m) != 2 {
			t.Errorf("PUB message with %d frames, want [stream, payload]", len(m))
			continue
		}
		if s := testpeer.SeqOf(m[1]); s >= 0 && m[0] != routingEvents[s].stream {
			t.Errorf("PUB topic %q for event %d, want %q", m[0], s, routingEvents[s].stream)
		}
	}
	// Raw outputs carry the message exactly as sent.
	for _, m := range peers["ads"].Messages() {
		if s := testpeer.SeqOf(m[0]); m[0] != routingEvents[s].raw {
			t.Errorf("raw payload %q, want %q", m[0], routingEvents[s].raw)
		}
	}
	for stream, n := range map[string]float64{"click": 2, "impression": 2, "other": 1, "unknown": 1, "imprint": 1} {
		if got := metric(t, r, "relay_stream_events_total", "stream="+stream); got != n {
			t.Errorf("relay_stream_events_total{stream=%q} = %v, want %v", stream, got, n)
		}
	}
}

// seqs returns the sorted sequence numbers a peer received (probes left out).
func seqs(p *testpeer.Peer) []int {
	var out []int
	for _, m := range p.Messages() {
		if s := testpeer.SeqOf(m[len(m)-1]); s >= 0 {
			out = append(out, s)
		}
	}
	sort.Ints(out)
	return out
}

// TestJSONFormat checks the json output's fields for RFC 5424, RFC 3164
// and rsyslog's forward formats.
func TestJSONFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("real libzmq peers")
	}
	r, w := jsonRelay(t)
	var msgs []string
	for _, e := range routingEvents {
		msgs = append(msgs, e.raw)
	}
	sendTCP(t, inputAddr(t, r, "syslog", "tcp"), false, msgs)
	testpeer.Eventually(t, 20*time.Second, func() string { return fmt.Sprintf("%d JSON events, have %d", len(msgs), w.Count()) },
		func() bool { return w.Count() >= len(msgs) })

	type obj = map[string]any
	want := []obj{
		{"stream": "click", "hostname": "h1", "app_name": "click", "proc_id": "77", "msg_id": "ID1",
			"structured_data": obj{"ex@32473": obj{"k": "v", "q": `a"b`}, "meta": obj{"x": "1"}},
			"message":         "seq:00000000", "facility": 1.0, "severity": 6.0, "timestamp": "2026-11-22T05:00:00.5Z"},
		{"stream": "impression", "hostname": "h2", "app_name": "impression", "message": "seq:00000001"},
		{"stream": "other", "hostname": "h3", "app_name": "other", "message": "seq:00000002"},
		{"stream": "click", "hostname": "h4", "app_name": "click", "proc_id": "99", "message": "seq:00000003",
			"facility": 1.0, "severity": 5.0, "timestamp": "Nov 22 05:00:00"},
		{"stream": "impression", "hostname": "h5", "app_name": "impression", "message": "seq:00000004",
			"timestamp": "2026-11-22T05:00:00.123456+00:00"},
		{"stream": "unknown", "hostname": "h6", "message": "seq:00000005"},
		{"stream": "imprint", "hostname": "h7", "app_name": "imprint", "message": "seq:00000006"},
	}
	absent := [][]string{
		nil, {"proc_id", "msg_id", "structured_data"}, nil, {"msg_id", "structured_data"},
		{"msg_id", "structured_data"}, {"app_name", "msg_id"}, nil,
	}
	for i, m := range w.Messages() {
		var got obj
		if err := json.Unmarshal([]byte(m[0]), &got); err != nil {
			t.Fatalf("event %d: invalid JSON %q: %v", i, m[0], err)
		}
		if got["input"] != "syslog" || got["received"] == nil {
			t.Errorf("event %d: input %v, received %v", i, got["input"], got["received"])
		}
		for k, v := range want[i] {
			if !reflect.DeepEqual(got[k], v) {
				t.Errorf("event %d (%s): %s = %#v, want %#v\n%s", i, routingEvents[i].raw, k, got[k], v, m[0])
			}
		}
		for _, k := range absent[i] {
			if v, ok := got[k]; ok {
				t.Errorf("event %d (%s): %s = %#v, want it absent", i, routingEvents[i].raw, k, v)
			}
		}
		if wf := []string{"rfc5424", "rfc5424", "rfc5424", "rfc3164", "forward", "rfc5424", "rfc5424"}[i]; got["format"] != wf {
			t.Errorf("event %d: format = %#v, want %q", i, got["format"], wf)
		}
	}
}

// An event whose stream no output takes is written nowhere, and counted.
func TestUnroutedCounted(t *testing.T) {
	if testing.Short() {
		t.Skip("real libzmq peers")
	}
	r := startRelay(t, `
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
stream: {from: app-name, default: unknown}
outputs:
  - name: clicks
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
    streams: [click]
http:
  listen: 127.0.0.1:0
`)
	w := startWorkers(t, r, "clicks", 1)[0]
	sendTCP(t, inputAddr(t, r, "syslog", "tcp"), true, []string{
		"<14>1 - h other - - - a", "<14>1 - h other - - - b", "<14>1 - h view - - - c", "<14>1 - h click - - - d",
	})
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("the click at its worker"), func() bool { return w.Count() == 1 })
	testpeer.Eventually(t, 5*time.Second, testpeer.Text("3 unrouted events counted"), func() bool {
		return metric(t, r, "relay_unrouted_events_total") == 3
	})
}
