package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
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
	writeCreds(t, creds)
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

// writeCreds writes a creds file as nsc does: a user JWT and its seed
// (the JWT is not signed by an operator here: relay check cannot verify
// that offline, only the server can).
func writeCreds(t *testing.T, path string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	b := fmt.Sprintf("-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJzdWIiOiJVIn0.c2ln\n------END NATS USER JWT------\n\n"+
		"************************* IMPORTANT *************************\n\n-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n", seed)
	if err := os.WriteFile(path, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestBrokerCredsFiles: creds and nkey files are read and parsed offline,
// as the NATS client will at connect.
func TestBrokerCredsFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.creds")
	writeCreds(t, good)
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	nkey := filepath.Join(dir, "relay.nk")
	os.WriteFile(nkey, append(seed, '\n'), 0o600)
	for _, ok := range []string{"creds: " + good, "nkey: " + nkey} {
		out := "  - {name: n, type: jetstream, servers: [h:4222], subject: e, " + ok + ", spool: {dir: " + dir + "/s}}\n"
		if _, err := Parse(brokerConfig("", out), filepath.Join(dir, "relay.yaml")); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// TestBrokerProblems: what relay check finds offline, each at its key.
func TestBrokerProblems(t *testing.T) {
	dir := t.TempDir()
	sp := "spool: {dir: " + dir + "/s}"
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a credential\n"), 0o600)
	seedOnly := filepath.Join(dir, "seed.nk")
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	os.WriteFile(seedOnly, seed, 0o600)
	os.Mkdir(filepath.Join(dir, "adir"), 0o700)
	w := "  - {name: w, socket: push, bind: tcp://127.0.0.1:0}\n"
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
		{"creds garbage", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: e, creds: " + garbage + ", " + sp + "}\n", "outputs[0].creds", "holds no user JWT"},
		{"creds without jwt", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: e, creds: " + seedOnly + ", " + sp + "}\n", "outputs[0].creds", "holds no user JWT"},
		{"creds a directory", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: e, creds: " + dir + "/adir, " + sp + "}\n", "outputs[0].creds", "not a regular file"},
		{"nkey garbage", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: e, nkey: " + garbage + ", " + sp + "}\n", "outputs[0].nkey", "holds no nkey seed"},
		{"input creds garbage", "  - {name: j, type: jetstream, servers: [h:4222], stream: E, creds: " + garbage + "}\n", w, "inputs[0].creds", "holds no user JWT"},
		{"subject braces", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: 'e.{stream', " + sp + "}\n", "outputs[0].subject", "only placeholder"},
		{"subject placeholder", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: 'e.{host}', " + sp + "}\n", "outputs[0].subject", "only placeholder"},
		{"create_stream subjects", "", "  - {name: n, type: jetstream, servers: [h:4222], subject: 'events.{stream}', create_stream: {name: E, subjects: ['other.>', 'events.click']}, " + sp + "}\n", "outputs[0].create_stream.subjects", "do not take the output's subject"},
		{"url no host", "", "  - {name: n, type: jetstream, servers: ['nats://:4222'], subject: e, " + sp + "}\n", "outputs[0].servers", "not a server URL"},
		{"url bad port", "", "  - {name: n, type: jetstream, servers: ['nats://h:99999'], subject: e, " + sp + "}\n", "outputs[0].servers", "bad port"},
		{"input malformed url", "  - {name: j, type: jetstream, servers: ['nats://h:42:22'], stream: E}\n", w, "inputs[0].servers", "too many colons"},
		{"kafka port", "", "  - {name: k, type: kafka, brokers: ['k:port'], topic: t, " + sp + "}\n", "outputs[0].brokers", "not host:port"},
		{"kafka no host", "", "  - {name: k, type: kafka, brokers: [':9092'], topic: t, " + sp + "}\n", "outputs[0].brokers", "not host:port"},
		{"kafka topic braces", "", "  - {name: k, type: kafka, brokers: [k:9092], topic: 'ev.{strem}', " + sp + "}\n", "outputs[0].topic", "not a topic name"},
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
