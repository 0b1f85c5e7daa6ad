package relay

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// curveKeyLayout writes the files an admin would have: the relay's pair
// (written as `relay keygen` writes it) with the admitted clients'
// public certificates under relay/clients, and for rsyslog its own pair
// written by pyzmq's zmq.auth.create_certificates (the czmq format
// rsyslog-czmq reads) plus a copy of the relay's public certificate.
type curveKeyLayout struct {
	relayDir, rsyslogDir string
	relayPub             zmq.CurveKey
}

func newCurveKeyLayout(t *testing.T, admitted ...string) curveKeyLayout {
	t.Helper()
	testpeer.NeedPyzmq(t)
	base := t.TempDir()
	l := curveKeyLayout{relayDir: filepath.Join(base, "relay"), rsyslogDir: filepath.Join(base, "rsyslog")}
	for _, d := range []string{l.relayDir, filepath.Join(l.relayDir, "clients"), l.rsyslogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	kp, err := zmq.NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	l.relayPub = kp.Public
	if err := zmq.WriteCurveCerts(filepath.Join(l.relayDir, "relay.key"), kp, map[string]string{"name": "relay"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(filepath.Join(l.relayDir, "relay.key"))
	if err := os.WriteFile(filepath.Join(l.rsyslogDir, "relay.key"), pub, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rsyslog", "stranger"} {
		out, err := exec.Command(testpeer.Python, "-c", `import sys, zmq.auth; zmq.auth.create_certificates(sys.argv[1], sys.argv[2])`, l.rsyslogDir, name).CombinedOutput()
		if err != nil {
			t.Fatalf("pyzmq create_certificates: %v\n%s", err, out)
		}
	}
	for _, name := range admitted {
		b, err := os.ReadFile(filepath.Join(l.rsyslogDir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(l.relayDir, "clients", name+".key"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// curveModule is rsyslog-czmq's module line for a CURVE client with
// certificate name (its secret is read from NAME.key_secret by czmq).
func (l curveKeyLayout) curveModule(mod, name string) string {
	return fmt.Sprintf(`module(load=%q authtype="CURVECLIENT" clientcertpath=%q servercertpath=%q)`,
		mod, filepath.Join(l.rsyslogDir, name+".key"), filepath.Join(l.rsyslogDir, "relay.key"))
}

// curveWhy explains a CURVE test that timed out: what rsyslogd said
// (rsyslog-czmq reports a czmq or libzmq without CURVE, or a certificate
// it could not load, there) and what the relay counted.
func curveWhy(t *testing.T, r *Relay, kind, name string, rs *testpeer.Rsyslogd, what string) func() string {
	return func() string {
		var counts []string
		for _, reason := range zmq.CurveReasons {
			if v := metric(t, r, "relay_"+kind+"_curve_refused_total", kind+"="+name, "reason="+reason); v > 0 {
				counts = append(counts, fmt.Sprintf("%s=%v", reason, v))
			}
		}
		return fmt.Sprintf("%s.\nThe relay's CURVE refusals: %v, handshake failures %v.\n"+
			"If rsyslog-czmq cannot do CURVE (czmq or libzmq built without libsodium), rsyslogd says so below; "+
			"with no refusals counted it never reached the handshake.\nrsyslogd:\n%s",
			what, counts, metric(t, r, "relay_"+kind+"_handshake_errors_total", kind+"="+name)+metric(t, r, "relay_"+kind+"_handshake_failures_total", kind+"="+name), rs.Output())
	}
}

// TestRsyslogOmczmqCurveClient: rsyslog's omczmq with
// authtype="CURVECLIENT" (czmq certificate files) PUSHes to the relay's
// PULL input, a CURVE server admitting the certificates in its
// allow_dir; every event arrives once. An rsyslog whose key is not in the
// directory is refused and counted as unknown_key, and none of its events
// get through.
func TestRsyslogOmczmqCurveClient(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd and libzmq peers")
	}
	l := newCurveKeyLayout(t, "rsyslog")
	r := startRelay(t, `
inputs:
  - name: from-czmq
    type: zmq
    socket: pull
    bind: tcp://127.0.0.1:0
    curve: {key_file: `+filepath.Join(l.relayDir, "relay.key")+`, allow_dir: `+filepath.Join(l.relayDir, "clients")+`}
stream: {from: app-name, default: unknown}
outputs:
  - name: workers
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
http:
  listen: 127.0.0.1:0
`)
	worker := testpeer.StartPeer(t, "pull", ">"+outputEndpoint(t, r, "workers"))
	pullAddr := inputAddr(t, r, "from-czmq", "tcp")
	action := `action(type="omczmq" endpoints=">tcp://` + pullAddr + `" socktype="PUSH"
    template="RSYSLOG_SyslogProtocol23Format" action.resumeRetryCount="-1" action.resumeInterval="1")`
	rs := startRsyslogd(t, forwardConfWith(l.curveModule("omczmq", "rsyslog"), action))
	// omczmq connects when its first message comes.
	const n = 2000
	feedRsyslog(t, rs, "click", n)
	testpeer.Eventually(t, 30*time.Second, curveWhy(t, r, "input", "from-czmq", rs, "omczmq never completed a CURVE handshake with the relay"),
		func() bool { return metric(t, r, "relay_input_connections", "input=from-czmq") == 1 })
	testpeer.Eventually(t, 60*time.Second, func() string {
		return curveWhy(t, r, "input", "from-czmq", rs, fmt.Sprintf("%d of %d events at the worker", worker.Count(), n))()
	}, func() bool { return worker.Count() >= n })
	checkExactlyOnce(t, n, worker)

	// A second rsyslog with a key the relay does not list.
	stranger := startRsyslogd(t, forwardConfWith(l.curveModule("omczmq", "stranger"), action))
	feedRsyslog(t, stranger, "stranger", 10)
	testpeer.Eventually(t, 30*time.Second, curveWhy(t, r, "input", "from-czmq", stranger, "the unlisted rsyslog was not refused as unknown_key"),
		func() bool {
			return metric(t, r, "relay_input_curve_refused_total", "input=from-czmq", "reason=unknown_key") >= 1
		})
	time.Sleep(500 * time.Millisecond)
	if v := metric(t, r, "relay_stream_events_total", "stream=stranger"); v != 0 {
		t.Fatalf("%v events of an unlisted client got through", v)
	}
	if c := metric(t, r, "relay_input_connections", "input=from-czmq"); c != 1 {
		t.Fatalf("%v peers connected, want only the listed rsyslog", c)
	}
}

// TestRsyslogImczmqCurveClient: the relay's PUB output is a CURVE server;
// rsyslog's imczmq SUBscribes with authtype="CURVECLIENT" and writes what
// it gets to a file: every event published after its subscription is there.
func TestRsyslogImczmqCurveClient(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd and libzmq peers")
	}
	l := newCurveKeyLayout(t, "rsyslog")
	r := startRelay(t, `
inputs:
  - name: in
    type: syslog
    listen: [tcp://127.0.0.1:0]
stream: {from: app-name, default: unknown}
outputs:
  - name: taps
    type: zmq
    socket: pub
    bind: tcp://127.0.0.1:0
    hwm: 100000
    curve: {key_file: `+filepath.Join(l.relayDir, "relay.key")+`, allow_dir: `+filepath.Join(l.relayDir, "clients")+`}
http:
  listen: 127.0.0.1:0
`)
	out := filepath.Join(t.TempDir(), "tap.log")
	rs := startRsyslogd(t, l.curveModule("imczmq", "rsyslog")+`
input(type="imczmq" endpoints=">`+outputEndpoint(t, r, "taps")+`" socktype="SUB" topics="click" ruleset="tap")
ruleset(name="tap") {
  if not ($rawmsg contains " ") then stop
  action(type="omfile" file="`+out+`" template="RSYSLOG_FileFormat")
}
`)
	addr := inputAddr(t, r, "in", "tcp")
	probe := 0
	testpeer.Eventually(t, 30*time.Second, curveWhy(t, r, "output", "taps", rs, "no probe event reached imczmq through the CURVE PUB"), func() bool {
		sendTCP(t, addr, true, []string{fmt.Sprintf("<14>1 2026-11-22T05:00:00Z h click - - - probe %d", probe)})
		probe++
		time.Sleep(50 * time.Millisecond)
		b, _ := os.ReadFile(out)
		return strings.Contains(string(b), "probe")
	})
	const n = 1000
	var msgs []string
	for i := range n {
		app := "click"
		if i%2 == 1 {
			app = "impression" // not subscribed
		}
		msgs = append(msgs, fmt.Sprintf("<14>1 2026-11-22T05:00:00Z h %s - - - %s", app, testpeer.Seq(i)))
	}
	sendTCP(t, addr, true, msgs)
	got := map[int]int{}
	testpeer.Eventually(t, 60*time.Second, func() string {
		return curveWhy(t, r, "output", "taps", rs, fmt.Sprintf("%d of %d click events in imczmq's file", len(got), n/2))()
	}, func() bool {
		b, _ := os.ReadFile(out)
		clear(got)
		for _, line := range strings.Split(string(b), "\n") {
			if s := testpeer.SeqOf(line); s >= 0 {
				got[s]++
			}
		}
		return len(got) >= n/2
	})
	for s, c := range got {
		if s%2 == 1 || c != 1 {
			t.Fatalf("event %d arrived %d times (odd ones are impressions, not subscribed)", s, c)
		}
	}
	if d := metric(t, r, "relay_output_socket_drops_total", "output=taps", "reason=pub_queue_full"); d != 0 {
		t.Fatalf("%v dropped", d)
	}
	// A subscriber whose key is not in allow_dir is refused and counted.
	stranger, err := zmq.NewCurveKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	sub := zmq.NewSub(zmq.Options{Security: zmq.CurveClient(stranger, l.relayPub)})
	defer sub.Close()
	sub.Subscribe("")
	sub.Dial(outputEndpoint(t, r, "taps"))
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the unlisted subscriber refused and counted"), func() bool {
		return metric(t, r, "relay_output_curve_refused_total", "output=taps", "reason=unknown_key") >= 1 &&
			sub.Stats().Curve[zmq.CurveRefused] >= 1
	})
	if p := metric(t, r, "relay_output_peers", "output=taps"); p != 1 {
		t.Fatalf("%v subscribers connected, want only imczmq", p)
	}
}

// TestCurveKeysReload: a reload re-reads the CURVE key files, as it does
// TLS keys and PLAIN users: after the relay's key pair is replaced on disk
// and the config reloaded (unchanged, so the input keeps running), new
// clients must use the new server key; the old one is refused.
func TestCurveKeysReload(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "relay.key")
	a, _ := zmq.NewCurveKeyPair()
	client, _ := zmq.NewCurveKeyPair()
	if err := zmq.WriteCurveCerts(keyFile, a, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	yaml := `
inputs:
  - name: secure
    type: zmq
    bind: tcp://127.0.0.1:0
    curve: {key_file: ` + keyFile + `, allow: ["` + client.Public.Z85() + `"]}
outputs:
  - name: taps
    socket: pub
    bind: tcp://127.0.0.1:0
http:
  listen: 127.0.0.1:0
`
	r := startRelay(t, yaml)
	ep := "tcp://" + inputAddr(t, r, "secure", "tcp")
	send := func(server zmq.CurveKey, text string) *zmq.Push {
		p := zmq.NewPush(zmq.Options{Security: zmq.CurveClient(client, server), ReconnectMin: 20 * time.Millisecond, ReconnectMax: 50 * time.Millisecond})
		t.Cleanup(func() { p.Close() })
		p.Dial(ep)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		p.Send(ctx, zmq.Msg{[]byte("<14>1 2026-11-22T05:00:00Z h " + text + " - - - x")})
		return p
	}
	first := send(a.Public, "before")
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("an event with the first key"), func() bool {
		return metric(t, r, "relay_stream_events_total", "stream=before") == 1
	})
	// Replace the key pair on disk and reload the same config.
	os.Remove(keyFile)
	os.Remove(keyFile + "_secret")
	b, _ := zmq.NewCurveKeyPair()
	if err := zmq.WriteCurveCerts(keyFile, b, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(yaml), filepath.Join(dir, "relay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	send(b.Public, "after")
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("an event with the new key"), func() bool {
		return metric(t, r, "relay_stream_events_total", "stream=after") == 1
	})
	if st := first.Stats(); st.Peers != 1 || st.Disconnects != 0 {
		t.Fatalf("the connection made with the old key did not survive the reload: %+v", st)
	}
	old := send(a.Public, "stale")
	testpeer.Eventually(t, 10*time.Second, testpeer.Text("the old server key refused on both sides"), func() bool {
		return metric(t, r, "relay_input_curve_refused_total", "input=secure", "reason=bad_box") >= 1 &&
			old.Stats().Curve[zmq.CurveNoWelcome] >= 1
	})
	if v := metric(t, r, "relay_stream_events_total", "stream=stale"); v != 0 {
		t.Fatalf("%v events with the replaced key got through", v)
	}
}
