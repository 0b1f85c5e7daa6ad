package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func brokerConfig(inputs, outputs string) []byte {
	if inputs == "" {
		inputs = "  - {name: in, type: syslog, listen: tcp://127.0.0.1:0}\n"
	}
	return []byte("inputs:\n" + inputs + "outputs:\n" + outputs + "http: {listen: \"\"}\n")
}

// TestBrokerGood: jetstream and kafka outputs and a jetstream input parse
// with their defaults, show in the summary, and the effective YAML parses
// back to the same configuration, passwords redacted.
func TestBrokerGood(t *testing.T) {
	dir := t.TempDir()
	creds := filepath.Join(dir, "relay.creds")
	os.WriteFile(creds, []byte("x"), 0o600)
	f := filepath.Join(dir, "relay.yaml")
	os.WriteFile(f, brokerConfig(
		"  - {name: from-nats, type: jetstream, servers: [nats://n1:4222, n2:4222], stream: EVENTS, filter_subjects: [events.click], creds: relay.creds}\n",
		"  - name: to-nats\n    type: jetstream\n    servers: [nats://n1:4222, nats://n2:4222, nats://n3:4222]\n    subject: \"events.{stream}\"\n"+
			"    user: relay\n    password: secret\n    spool: {dir: spool/nats, max_bytes: 20GiB}\n    create_stream: {name: EVENTS, max_age: 168h}\n"+
			"  - {name: to-kafka, type: kafka, brokers: [k1:9092, k2:9092], topic: \"ev.{stream}\", format: json, spool: {dir: spool/kafka},"+
			" sasl: {mechanism: SCRAM-SHA-512, username: relay, password: secret}}\n"), 0o644)
	c, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	j := c.Outputs[0].JetStream
	if j.MaxPending != DefaultJetStreamMaxPending || j.AckTimeout != DefaultJetStreamAckTimeout || j.CreateStream.Replicas != 3 ||
		j.CreateStream.DuplicateWindow != 2*time.Hour || c.Outputs[0].Spool.Dir != filepath.Join(dir, "spool/nats") {
		t.Fatalf("jetstream output %+v %+v", j, j.CreateStream)
	}
	k := c.Outputs[1].Kafka
	if k.Acks != "all" || k.Compression != "zstd" || k.MaxPending != 4096 {
		t.Fatalf("kafka output %+v", k)
	}
	in := c.Inputs[0].JetStream
	if in.Consumer != "relay-from-nats" || in.AckWait != time.Minute || in.Creds != creds {
		t.Fatalf("jetstream input %+v", in)
	}
	sum := c.Summary()
	for _, want := range []string{"output to-nats: jetstream nats://n1:4222", "creates stream EVENTS (R3", "output to-kafka: kafka k1:9092,k2:9092 topic ev.{stream}", "input from-nats: jetstream"} {
		if !strings.Contains(sum, want) {
			t.Fatalf("summary lacks %q:\n%s", want, sum)
		}
	}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(y), "secret") || strings.Contains(string(y), "hwm") || strings.Contains(string(y), "socket") {
		t.Fatalf("effective YAML:\n%s", y)
	}
	c2, err := Parse(y, f)
	if err != nil {
		t.Fatalf("effective YAML does not parse back: %v\n%s", err, y)
	}
	if c2.Outputs[0].JetStream.Subject != j.Subject || c2.Outputs[1].Kafka.Topic != k.Topic || c2.Inputs[0].JetStream.Stream != "EVENTS" {
		t.Fatalf("parsed back differently:\n%s", y)
	}
}

// TestBrokerProblems: what relay check finds offline, each at its key.
func TestBrokerProblems(t *testing.T) {
	dir := t.TempDir()
	sp := "spool: {dir: " + dir + "/s}"
	for _, tc := range []struct{ name, inputs, outputs, path, msg string }{
		{"no spool", "", "  - {name: n, type: jetstream, servers: [nats://h:4222], subject: 'e.{stream}'}\n", "outputs[0].spool", "needs a spool"},
		{"malformed url", "", "  - {name: n, type: jetstream, servers: ['nats://h:42:22'], subject: 'e.{stream}', " + sp + "}\n", "outputs[0].servers", "too many colons"},
		{"scheme", "", "  - {name: n, type: jetstream, servers: ['http://h:4222'], subject: 'e.{stream}', " + sp + "}\n", "outputs[0].servers", "scheme \"http\""},
		{"no servers", "", "  - {name: n, type: jetstream, subject: 'e.{stream}', " + sp + "}\n", "outputs[0].servers", "servers is required"},
		{"bad subject", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: 'e..{stream}', " + sp + "}\n", "outputs[0].subject", "not a valid subject"},
		{"wildcard subject", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: 'e.>', " + sp + "}\n", "outputs[0].subject", "not a valid subject"},
		{"two auths", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: e, user: a, token: t, " + sp + "}\n", "outputs[0]", "exclude each other"},
		{"creds missing", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: e, creds: /nonexistent.creds, " + sp + "}\n", "outputs[0].creds", "does not exist"},
		{"zmq key", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: e, hwm: 10, " + sp + "}\n", "outputs[0].hwm", "does not apply to a jetstream output"},
		{"stream name", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: e, create_stream: {name: 'a.b'}, " + sp + "}\n", "outputs[0].create_stream.name", "not a stream name"},
		{"replicas", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: e, create_stream: {name: E, replicas: 7}, " + sp + "}\n", "outputs[0].create_stream.replicas", "use 1 to 5"},
		{"kafka acks", "", "  - {name: k, type: kafka, brokers: [k:9092], topic: t, acks: 1, " + sp + "}\n", "outputs[0].acks", "only all"},
		{"kafka broker", "", "  - {name: k, type: kafka, brokers: [k], topic: t, " + sp + "}\n", "outputs[0].brokers", "not host:port"},
		{"kafka topic", "", "  - {name: k, type: kafka, brokers: [k:9092], topic: 'a b', " + sp + "}\n", "outputs[0].topic", "not a topic name"},
		{"kafka compression", "", "  - {name: k, type: kafka, brokers: [k:9092], topic: t, compression: brotli, " + sp + "}\n", "outputs[0].compression", "not a compression"},
		{"kafka sasl", "", "  - {name: k, type: kafka, brokers: [k:9092], topic: t, sasl: {mechanism: GSSAPI, username: a, password: b}, " + sp + "}\n", "outputs[0].sasl.mechanism", "not a SASL mechanism"},
		{"input no stream", "  - {name: j, type: jetstream, servers: [h:4222]}\n", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0}\n", "inputs[0].stream", "stream is required"},
		{"input listen", "  - {name: j, type: jetstream, servers: [h:4222], stream: E, listen: tcp://x:1}\n", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0}\n", "inputs[0].listen", "does not apply to a jetstream input"},
		{"input ack_wait", "  - {name: j, type: jetstream, servers: [h:4222], stream: E, ack_wait: 10ms}\n", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0}\n", "inputs[0].ack_wait", "too short"},
		{"input filter", "  - {name: j, type: jetstream, servers: [h:4222], stream: E, filter_subjects: ['a b']}\n", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0}\n", "inputs[0].filter_subjects", "not a valid subject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(brokerConfig(tc.inputs, tc.outputs), "relay.yaml")
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err %v", err)
			}
			for _, p := range cerr.Problems {
				if strings.HasPrefix(p.Path, tc.path) && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Fatalf("no problem at %s containing %q in:\n%v", tc.path, tc.msg, err)
		})
	}
}
