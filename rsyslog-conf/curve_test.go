package rsyslogconf

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// curveKeys is the layout the CURVE snippets describe, with keys written
// as `relay keygen` writes them: the relay's pair and admitted clients'
// public certificates on the relay's side; rsyslog's pair and the relay's
// public certificate on rsyslog's side (what /etc/rsyslog.d/curve/ holds).
type curveKeys struct {
	relay      zmq.CurveKeyPair
	allow      *zmq.CurveAllowDir
	rsyslogDir string // holds rsyslog.key(+_secret), relay.key, stranger.key(+_secret)
}

func newCurveKeys(t *testing.T) curveKeys {
	t.Helper()
	base := t.TempDir()
	k := curveKeys{rsyslogDir: filepath.Join(base, "rsyslog.d-curve")}
	clients := filepath.Join(base, "relay-clients")
	for _, d := range []string{k.rsyslogDir, clients} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	keygen := func(path string) zmq.CurveKeyPair {
		kp, err := zmq.NewCurveKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		if err := zmq.WriteCurveCerts(path+".key", kp, map[string]string{"name": filepath.Base(path)}, time.Now()); err != nil {
			t.Fatal(err)
		}
		return kp
	}
	relayDir := filepath.Join(base, "relay")
	if err := os.MkdirAll(relayDir, 0o755); err != nil {
		t.Fatal(err)
	}
	k.relay = keygen(filepath.Join(relayDir, "relay"))
	copyFile(t, filepath.Join(relayDir, "relay.key"), filepath.Join(k.rsyslogDir, "relay.key"))
	keygen(filepath.Join(k.rsyslogDir, "rsyslog"))
	keygen(filepath.Join(k.rsyslogDir, "stranger"))
	copyFile(t, filepath.Join(k.rsyslogDir, "rsyslog.key"), filepath.Join(clients, "rsyslog.key"))
	var err error
	if k.allow, err = zmq.NewCurveAllowDir(clients, nil); err != nil {
		t.Fatal(err)
	}
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

// omczmq-push-curve.conf: rsyslog's omczmq, a CURVE client with keys from
// `relay keygen`, PUSHes to a CURVE PULL server built like the relay's ZMQ
// input (its key pair, allow_dir): every message arrives once, in one
// frame. The same snippet with a key not in allow_dir gets nothing through
// and is counted as unknown_key.
func TestOmczmqPushCurveEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	k := newCurveKeys(t)
	pull := zmq.NewPull(zmq.Options{Security: zmq.CurveServer(k.relay, k.allow)})
	defer pull.Close()
	if err := pull.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ep := ">tcp://" + pull.Addrs()[0].String()
	var texts []string
	done := make(chan struct{})
	recv := make(chan string, 10000)
	go func() {
		defer close(done)
		for {
			m, err := pull.Recv(context.Background())
			if err != nil {
				return
			}
			if len(m) != 1 {
				recv <- fmt.Sprintf("BAD %d frames: %q", len(m), m)
				continue
			}
			recv <- string(m[0])
		}
	}()
	conf := k.snippetFor(t, "omczmq-push-curve.conf", ">tcp://relay.example.net:5555", ep, "rsyslog")
	r := testpeer.StartRsyslogd(t, t.TempDir(), onlyTestMessages(conf))
	const n = 2000
	r.SendNumbered(t, "impression", 0, n)
	testpeer.Eventually(t, 60*time.Second, func() string {
		return fmt.Sprintf("%d of %d messages over CURVE (relay side refusals %v); rsyslogd:\n%s", len(texts), n, pull.Stats().Curve, r.Output())
	}, func() bool {
		for {
			select {
			case s := <-recv:
				if strings.HasPrefix(s, "BAD ") {
					t.Fatal(s)
				}
				texts = append(texts, s)
				continue
			default:
			}
			return len(texts) >= n
		}
	})
	missing, dups, strays := testpeer.Tally(texts, n)
	if len(missing) > 0 || dups > 0 || strays > 0 {
		t.Fatalf("missing %d, duplicates %d, strays %d", len(missing), dups, strays)
	}

	// The same snippet with a pair the relay does not list.
	conf = k.snippetFor(t, "omczmq-push-curve.conf", ">tcp://relay.example.net:5555", ep, "stranger")
	s := testpeer.StartRsyslogd(t, t.TempDir(), onlyTestMessages(conf))
	s.SendNumbered(t, "stranger", n, 10)
	testpeer.Eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("the unlisted key refused as unknown_key (refusals %v); rsyslogd:\n%s", pull.Stats().Curve, s.Output())
	}, func() bool { return pull.Stats().Curve[zmq.CurveUnknownKey] >= 1 })
	time.Sleep(300 * time.Millisecond)
	select {
	case m := <-recv:
		t.Fatalf("a message from an unlisted key got through: %q", m)
	default:
	}
}

// imczmq-sub-curve.conf: rsyslog's imczmq, a CURVE client, subscribes to a
// CURVE PUB server built like the relay's PUB output and writes the chosen
// streams to the file, topic frames dropped; an unlisted key is refused.
func TestImczmqSubCurveEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs rsyslogd")
	}
	k := newCurveKeys(t)
	pub := zmq.NewPub(zmq.Options{Security: zmq.CurveServer(k.relay, k.allow)})
	defer pub.Close()
	if err := pub.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ep := ">tcp://" + pub.Addrs()[0].String()
	dir := t.TempDir()
	tap := filepath.Join(dir, "tap.log")
	conf := k.snippetFor(t, "imczmq-sub-curve.conf", ">tcp://relay.example.net:5556", ep, "rsyslog", "/var/log/relay-tap.log", tap)
	r := testpeer.StartRsyslogd(t, dir, conf)
	i := 0
	testpeer.Eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("events in the tap file (refusals %v); rsyslogd:\n%s", pub.Stats().Curve, r.Output())
	}, func() bool {
		// PUB drops until the subscription arrives, so keep publishing.
		pub.Send(zmq.Msg{[]byte("impression"), fmt.Appendf(nil, "<14>1 2026-01-01T00:00:00Z h impression - - - msgnum:%08d", i)})
		pub.Send(zmq.Msg{[]byte("other"), []byte("<14>1 2026-01-01T00:00:00Z h other - - - msgnum:99999999")})
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
	if p := pub.Stats().Peers; p != 1 {
		t.Fatalf("%d subscribers, want imczmq", p)
	}

	// The same snippet with a pair the relay does not list.
	dir2 := t.TempDir()
	conf = k.snippetFor(t, "imczmq-sub-curve.conf", ">tcp://relay.example.net:5556", ep, "stranger", "/var/log/relay-tap.log", filepath.Join(dir2, "tap.log"))
	s := testpeer.StartRsyslogd(t, dir2, conf)
	testpeer.Eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("the unlisted key refused as unknown_key (refusals %v); rsyslogd:\n%s", pub.Stats().Curve, s.Output())
	}, func() bool { return pub.Stats().Curve[zmq.CurveUnknownKey] >= 1 })
	if p := pub.Stats().Peers; p != 1 {
		t.Fatalf("%d subscribers, want only the listed imczmq", p)
	}
}
