package rsyslogconf

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/relay"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// curveKeys is the layout the CURVE snippets describe, with every pair
// written as `relay keygen` writes it: on the relay's side (what
// /etc/relay/curve/ holds) its pair and clients/ with the admitted hosts'
// public certificates; on rsyslog's side (/etc/rsyslog.d/curve/) its own
// pair and the relay's public certificate. "stranger" is a pair the relay
// does not list.
type curveKeys struct {
	relayDir, rsyslogDir string
}

func newCurveKeys(t *testing.T) curveKeys {
	t.Helper()
	base := t.TempDir()
	k := curveKeys{relayDir: filepath.Join(base, "relay-curve"), rsyslogDir: filepath.Join(base, "rsyslog-curve")}
	for _, d := range []string{filepath.Join(k.relayDir, "clients"), k.rsyslogDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	keygen := func(name string) {
		kp, err := zmq.NewCurveKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		if err := zmq.WriteCurveCerts(name+".key", kp, map[string]string{"name": filepath.Base(name)}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	keygen(filepath.Join(k.relayDir, "relay"))
	keygen(filepath.Join(k.rsyslogDir, "rsyslog"))
	keygen(filepath.Join(k.rsyslogDir, "stranger"))
	copyFile(t, filepath.Join(k.relayDir, "relay.key"), filepath.Join(k.rsyslogDir, "relay.key"))
	copyFile(t, filepath.Join(k.rsyslogDir, "rsyslog.key"), filepath.Join(k.relayDir, "clients", "rsyslog.key"))
	return k
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snippetFor fills a CURVE snippet for client name (rsyslog or stranger)
// and endpoint ep.
func (k curveKeys) snippetFor(t *testing.T, file, oldEP, ep, name string, more ...string) string {
	return snippet(t, file, append([]string{
		strconv.Quote(oldEP), strconv.Quote(ep),
		`"/etc/rsyslog.d/curve/rsyslog.key"`, strconv.Quote(filepath.Join(k.rsyslogDir, name+".key")),
		`"/etc/rsyslog.d/curve/relay.key"`, strconv.Quote(filepath.Join(k.rsyslogDir, "relay.key")),
	}, more...)...)
}

// relayFromComment starts a relay on the relay.yaml excerpt a snippet's
// comment shows (the "#   " lines after "(relay.yaml):"), its
// /etc/relay/curve/ files at k.relayDir and bind addresses on a free port,
// plus rest (the parts of the config the excerpt leaves out). So the
// comment an admin copies is the config the test runs.
func (k curveKeys) relayFromComment(t *testing.T, file, rest string) *relay.Relay {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var excerpt []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.Contains(l, "(relay.yaml):"):
			in = true
		case in && strings.HasPrefix(l, "#   "):
			excerpt = append(excerpt, strings.TrimPrefix(l, "#   "))
		case in:
			in = false
		}
	}
	if len(excerpt) == 0 {
		t.Fatalf("%s no longer shows the relay's config after \"(relay.yaml):\"", file)
	}
	yaml := strings.Join(excerpt, "\n")
	if !strings.Contains(yaml, "/etc/relay/curve/") {
		t.Fatalf("%s's relay config no longer keeps its keys in /etc/relay/curve/:\n%s", file, yaml)
	}
	yaml = strings.NewReplacer("/etc/relay/curve/", k.relayDir+"/",
		"tcp://0.0.0.0:5555", "tcp://127.0.0.1:0", "tcp://0.0.0.0:5556", "tcp://127.0.0.1:0").Replace(yaml)
	yaml += "\n" + rest + "\nhttp: {listen: \"\"}\n"
	conf := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatalf("the relay config in %s's comment:\n%s\n%v", file, yaml, err)
	}
	r, err := relay.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("relay shutdown: %v", err)
		}
	})
	return r
}

// curveRefused is relay_{kind}_curve_refused_total{kind=name,reason}.
func curveRefused(t *testing.T, r *relay.Relay, kind, name, reason string) float64 {
	t.Helper()
	mfs, err := r.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "relay_"+kind+"_curve_refused_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := 0
			for _, lp := range m.GetLabel() {
				if (lp.GetName() == kind && lp.GetValue() == name) || (lp.GetName() == "reason" && lp.GetValue() == reason) {
					ok++
				}
			}
			if ok == 2 {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// omczmq-push-curve.conf: rsyslog's omczmq, a CURVE client with keys from
// `relay keygen`, PUSHes to the relay started on the input the snippet's
// comment shows (CURVE server, allow_dir): every message reaches the
// relay's worker once. The same snippet with a key not in allow_dir gets
// nothing through and is counted as unknown_key.
func TestOmczmqPushCurveEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	const file = "omczmq-push-curve.conf"
	k := newCurveKeys(t)
	r := k.relayFromComment(t, file, `stream: {from: app-name, default: unknown}
outputs:
  - {name: workers, socket: push, bind: "tcp://127.0.0.1:0", format: raw, hwm: 10000}`)
	worker := zmq.NewPull(zmq.Options{RecvHWM: 10000})
	defer worker.Close()
	worker.Dial("tcp://" + r.OutputAddrs("workers")[0].String())
	var texts []string
	recv := func() {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
			m, err := worker.Recv(ctx)
			cancel()
			if err != nil {
				return
			}
			texts = append(texts, string(m[len(m)-1]))
		}
	}
	ep := ">tcp://" + r.Inputs()["from-rsyslog"].Addrs()[0].String()
	conf := k.snippetFor(t, file, ">tcp://relay.example.net:5555", ep, "rsyslog")
	rs := testpeer.StartRsyslogd(t, t.TempDir(), onlyTestMessages(conf))
	const n = 2000
	rs.SendNumbered(t, "impression", 0, n)
	testpeer.Eventually(t, 60*time.Second, func() string {
		return fmt.Sprintf("%d of %d messages through the CURVE input (bad_box %v, unknown_key %v); rsyslogd:\n%s", len(texts), n,
			curveRefused(t, r, "input", "from-rsyslog", "bad_box"), curveRefused(t, r, "input", "from-rsyslog", "unknown_key"), rs.Output())
	}, func() bool { recv(); return len(texts) >= n })
	missing, dups, strays := testpeer.Tally(texts, n)
	if len(missing) > 0 || dups > 0 || strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", len(missing), dups, strays)
	}

	// The same snippet with a pair the relay does not list.
	conf = k.snippetFor(t, file, ">tcp://relay.example.net:5555", ep, "stranger")
	s := testpeer.StartRsyslogd(t, t.TempDir(), onlyTestMessages(conf))
	s.SendNumbered(t, "stranger", n, 10)
	testpeer.Eventually(t, 30*time.Second, func() string {
		return "the unlisted key refused as unknown_key; rsyslogd:\n" + s.Output()
	}, func() bool { return curveRefused(t, r, "input", "from-rsyslog", "unknown_key") >= 1 })
	time.Sleep(300 * time.Millisecond)
	if recv(); len(texts) != n {
		t.Fatalf("%d messages from an unlisted key got through", len(texts)-n)
	}
}

// imczmq-sub-curve.conf: rsyslog's imczmq, a CURVE client, subscribes to
// the relay's PUB output as the snippet's comment configures it and
// writes the chosen streams to the file, topic frames dropped; an
// unlisted key is refused and counted.
func TestImczmqSubCurveEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	const file = "imczmq-sub-curve.conf"
	k := newCurveKeys(t)
	r := k.relayFromComment(t, file, `stream: {from: app-name, default: unknown}
inputs:
  - {name: in, type: syslog, listen: "tcp://127.0.0.1:0"}`)
	var addr string
	for _, a := range r.Inputs()["in"].Addrs() {
		if a.Network() == "tcp" {
			addr = a.String()
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ep := ">tcp://" + r.OutputAddrs("taps")[0].String()
	dir := t.TempDir()
	tap := filepath.Join(dir, "tap.log")
	conf := k.snippetFor(t, file, ">tcp://relay.example.net:5556", ep, "rsyslog", "/var/log/relay-tap.log", tap)
	rs := testpeer.StartRsyslogd(t, dir, conf)
	i := 0
	testpeer.Eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("events in the tap file (unknown_key %v); rsyslogd:\n%s", curveRefused(t, r, "output", "taps", "unknown_key"), rs.Output())
	}, func() bool {
		// PUB drops until the subscription arrives, so keep sending.
		fmt.Fprintf(c, "<14>1 2026-01-01T00:00:00Z h impression - - - msgnum:%08d\n<14>1 2026-01-01T00:00:00Z h other - - - msgnum:99999999\n", i)
		i++
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(tap)
		return strings.Count(string(b), "\n") >= 3
	})
	b, _ := os.ReadFile(tap)
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.Contains(l, "impression") || !strings.Contains(l, "msgnum:") || strings.Contains(l, "99999999") {
			t.Fatalf("tap file line %q: want only impression events, no topic frames", l)
		}
	}

	// The same snippet with a pair the relay does not list.
	dir2 := t.TempDir()
	conf = k.snippetFor(t, file, ">tcp://relay.example.net:5556", ep, "stranger", "/var/log/relay-tap.log", filepath.Join(dir2, "tap.log"))
	s := testpeer.StartRsyslogd(t, dir2, conf)
	testpeer.Eventually(t, 30*time.Second, func() string {
		return "the unlisted key refused as unknown_key; rsyslogd:\n" + s.Output()
	}, func() bool { return curveRefused(t, r, "output", "taps", "unknown_key") >= 1 })
}
