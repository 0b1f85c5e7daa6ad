package broker

import (
	"context"
	"crypto/sha512"
	"crypto/tls"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// natsAuthCase is one way the relay authenticates to nats-server, as the
// man page documents it (creds, nkey, token, tls).
type natsAuthCase struct {
	name string
	// conf is the server's config (appended to the JetStream block).
	conf string
	// good and bad are the relay's settings: bad holds a secret the
	// server does not take.
	good, bad natsClient
	// revoked, if set, is a config that no longer takes good's secret
	// (SIGHUP reload), to show refusals while running are counted.
	revoked string
}

type natsClient struct {
	auth NATSAuth
	tls  *config.ClientTLS
}

func (c natsClient) tlsConfig(t testing.TB) *tls.Config {
	t.Helper()
	if c.tls == nil {
		return nil
	}
	tc, err := c.tls.Config()
	if err != nil {
		t.Fatal(err)
	}
	return tc
}

func (c natsClient) connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	opts, err := NATSOptions("admin", c.auth, c.tlsConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// writeSeed writes a new user nkey's seed to dir/name.nk and returns the
// file and the public key.
func writeSeed(t testing.TB, dir, name string, kp nkeys.KeyPair) (file, pub string) {
	t.Helper()
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ = kp.PublicKey()
	file = filepath.Join(dir, name+".nk")
	if err := os.WriteFile(file, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, pub
}

func newUserKey(t testing.TB) nkeys.KeyPair {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// natsJWT encodes and signs claims as nats-server's JWTs (v2): header,
// claims and an ed25519 signature by issuer, base64url without padding.
func natsJWT(t testing.TB, issuer nkeys.KeyPair, sub, name string, nats map[string]any) string {
	t.Helper()
	iss, _ := issuer.PublicKey()
	claims := map[string]any{"iat": time.Now().Unix() - 60, "iss": iss, "sub": sub, "name": name, "jti": "", "nats": nats}
	b, _ := json.Marshal(claims)
	sum := sha512.Sum512_256(b)
	claims["jti"] = base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:])
	b, _ = json.Marshal(claims)
	enc := base64.RawURLEncoding
	msg := enc.EncodeToString([]byte(`{"typ":"JWT","alg":"ed25519-nkey"}`)) + "." + enc.EncodeToString(b)
	sig, err := issuer.Sign([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return msg + "." + enc.EncodeToString(sig)
}

// operatorSetup makes an operator, an account with JetStream and a user
// of it, and returns the server's config (operator mode, memory
// resolver) and a .creds file for the user. A second creds file holds a
// user signed by an account the server does not know.
func operatorSetup(t testing.TB, dir string) (conf, creds, stranger string) {
	t.Helper()
	op, _ := nkeys.CreateOperator()
	opPub, _ := op.PublicKey()
	opJWT := natsJWT(t, op, opPub, "OP", map[string]any{"type": "operator", "version": 2})
	account := func(name string, js bool) (nkeys.KeyPair, string, string) {
		acc, _ := nkeys.CreateAccount()
		pub, _ := acc.PublicKey()
		limits := map[string]any{"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true, "conn": -1, "leaf": -1}
		if js {
			for _, k := range []string{"mem_storage", "disk_storage", "streams", "consumer"} {
				limits[k] = -1
			}
		}
		return acc, pub, natsJWT(t, op, pub, name, map[string]any{"type": "account", "version": 2, "limits": limits})
	}
	acc, accPub, accJWT := account("RELAY", true)
	_, sysPub, sysJWT := account("SYS", false) // JetStream is not allowed in the system account
	userCreds := func(acc nkeys.KeyPair, file string) string {
		u := newUserKey(t)
		pub, _ := u.PublicKey()
		seed, _ := u.Seed()
		jwt := natsJWT(t, acc, pub, "relay", map[string]any{"type": "user", "version": 2, "pub": map[string]any{}, "sub": map[string]any{},
			"subs": -1, "data": -1, "payload": -1})
		body := fmt.Sprintf("-----BEGIN NATS USER JWT-----\n%s\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n", jwt, seed)
		file = filepath.Join(dir, file)
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	creds = userCreds(acc, "relay.creds")
	other, _ := nkeys.CreateAccount()
	stranger = userCreds(other, "stranger.creds")
	conf = fmt.Sprintf("operator: %q\nsystem_account: %q\nresolver: MEMORY\nresolver_preload: {\n  %s: %q\n  %s: %q\n}\n", opJWT, sysPub, accPub, accJWT, sysPub, sysJWT)
	return conf, creds, stranger
}

func natsAuthCases(t *testing.T) []natsAuthCase {
	dir := t.TempDir()
	goodSeed, goodPub := writeSeed(t, dir, "relay", newUserKey(t))
	badSeed, badPub := writeSeed(t, dir, "other", newUserKey(t))

	ca := testpeer.NewCA(t, dir)
	srvCert, srvKey := ca.Issue(t, "nats")
	cliCert, cliKey := ca.Issue(t, "relay")
	otherDir := filepath.Join(dir, "other")
	os.Mkdir(otherDir, 0o700)
	other := testpeer.NewCA(t, otherDir)
	badCert, badKey := other.Issue(t, "relay")
	tlsConf := func(caFile string) string {
		return fmt.Sprintf("tls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n  verify: true\n}\n", srvCert, srvKey, caFile)
	}
	serverOnlyTLS := fmt.Sprintf("tls {\n  cert_file: %q\n  key_file: %q\n}\n", srvCert, srvKey)

	opConf, creds, stranger := operatorSetup(t, dir)
	return []natsAuthCase{
		{name: "token", conf: `authorization { token: "s3cret-token" }`,
			good:    natsClient{auth: NATSAuth{Token: "s3cret-token"}},
			bad:     natsClient{auth: NATSAuth{Token: "wrong-token"}},
			revoked: `authorization { token: "rotated-token" }`},
		{name: "nkey", conf: fmt.Sprintf("authorization { users: [ {nkey: %s} ] }", goodPub),
			good:    natsClient{auth: NATSAuth{NKey: goodSeed}},
			bad:     natsClient{auth: NATSAuth{NKey: badSeed}},
			revoked: fmt.Sprintf("authorization { users: [ {nkey: %s} ] }", badPub)},
		{name: "tls client cert", conf: tlsConf(ca.File),
			good: natsClient{tls: &config.ClientTLS{CA: ca.File, Cert: cliCert, Key: cliKey, ServerName: "nats"}},
			bad:  natsClient{tls: &config.ClientTLS{CA: ca.File, Cert: badCert, Key: badKey, ServerName: "nats"}}},
		{name: "tls ca", conf: serverOnlyTLS,
			good: natsClient{tls: &config.ClientTLS{CA: ca.File, ServerName: "nats"}},
			bad:  natsClient{tls: &config.ClientTLS{CA: other.File, ServerName: "nats"}}},
		{name: "creds", conf: opConf,
			good: natsClient{auth: NATSAuth{Creds: creds}},
			bad:  natsClient{auth: NATSAuth{Creds: stranger}}},
	}
}

// TestJetStreamAuthMethods runs the JetStream output and input against a
// real nats-server with each documented way to authenticate: a token, an
// nkey, TLS with a client certificate the server verifies, and a JWT
// .creds file (operator mode). With the right secret, every event reaches
// the stream exactly once and the input reads each once; with a wrong
// one, the start of the output and of the input is refused with what to
// check. Where the server can take the secret back while the relay runs
// (a reload), the refusals are counted as cause auth, logged once, and
// the spool keeps the events until the secret is given back.
func TestJetStreamAuthMethods(t *testing.T) {
	for _, c := range natsAuthCases(t) {
		t.Run(c.name, func(t *testing.T) {
			srv := testpeer.StartNATS(t, testpeer.NATSOptions{Extra: c.conf})
			url := srv.URL()
			nc := c.good.connect(t, url)
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}, Duplicates: time.Hour})
			cancel()
			nc.Close()
			if err != nil {
				t.Fatalf("create stream: %v", err)
			}

			// The wrong secret: the output does not start.
			dir := t.TempDir()
			id, _ := SpoolID(dir)
			start := time.Now()
			_, err = NewJetStream(JetStreamConfig{Name: "to-nats", Servers: []string{url}, Subject: "events.{stream}", SpoolID: id,
				Auth: c.bad.auth, TLS: c.bad.tlsConfig(t), StartTimeout: 5 * time.Second, Logger: testLogger(t)})
			if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "check creds") {
				t.Fatalf("output with the wrong secret: err %v (after %v)", err, time.Since(start).Round(time.Millisecond))
			}
			in, err := NewJetStreamInput(JetStreamInputConfig{Name: "from-nats", Servers: []string{url}, Stream: "EVENTS",
				Auth: c.bad.auth, TLS: c.bad.tlsConfig(t), StartTimeout: 5 * time.Second, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			// The input starts anyway, and counts the refusals while it
			// retries (the operator may fix the server side).
			if err := in.Start(func([]*event.Event) {}); err != nil {
				t.Fatalf("input with the wrong secret: err %v", err)
			}
			eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", in.JetStreamStats()) }, func() bool {
				st := in.JetStreamStats()
				return st.Failed[CauseAuth] > 0 && st.Refused > 0 && !st.Connected
			})
			in.Stop(context.Background())

			// The right secret: delivered exactly once.
			sp := openSpool(t, dir)
			defer sp.Close()
			log, logs := captureLogger(t)
			s := newJS(t, dir, sp, []string{url}, func(cfg *JetStreamConfig) {
				cfg.Auth, cfg.TLS, cfg.Logger, cfg.AckTimeout = c.good.auth, c.good.tlsConfig(t), log, time.Second
			})
			appendN(t, sp, 0, 300)
			d := startDrain(sp, s)
			eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
			total := 300
			if c.revoked != "" {
				srv.Reconfigure(c.revoked)
				appendN(t, sp, 300, 300)
				eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v", s.Stats()) }, func() bool { return s.Stats().Failed[CauseAuth] > 0 })
				time.Sleep(2 * time.Second) // reconnects and retries run meanwhile
				if r := sp.Stats().Records; r != 300 {
					t.Fatalf("the spool holds %d, want the 300 events sent after the secret was revoked (stats %+v)", r, s.Stats())
				}
				if n := strings.Count(logs.String(), "cause=auth"); n != 1 {
					t.Fatalf("the refusal was logged %d times, want once:\n%s", n, logs.String())
				}
				t.Logf("refused while running: failed %v", s.Stats().Failed)
				srv.Reconfigure(c.conf)
				eventually(t, 30*time.Second, func() string { return fmt.Sprintf("%+v %+v", sp.Stats(), s.Stats()) }, func() bool { return sp.Stats().Records == 0 })
				total = 600
			}
			d.stop()
			s.Close(context.Background())
			counts := streamCountWith(t, c.good, url, "EVENTS")
			if missing, dups, strays := tally(counts, 0, total); missing+dups+strays > 0 {
				t.Fatalf("missing %d, duplicates %d, strays %d", missing, dups, strays)
			}

			// The input reads each event once with the right secret.
			in, err = NewJetStreamInput(JetStreamInputConfig{Name: "from-nats", Servers: []string{url}, Stream: "EVENTS",
				Auth: c.good.auth, TLS: c.good.tlsConfig(t), Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			h := &countingHandler{seen: map[int]int{}}
			if err := in.Start(h.handle); err != nil {
				t.Fatal(err)
			}
			defer in.Stop(context.Background())
			count := h.distinct
			eventually(t, 30*time.Second, func() string { return fmt.Sprint(count()) }, func() bool { return count() == total })
			missing, dups, strays := h.tally(0, total)
			if missing+strays > 0 || uint64(dups) > in.JetStreamStats().Redelivered {
				t.Fatalf("input: missing %d, duplicates %d, strays %d", missing, dups, strays)
			}
		})
	}
}

// streamCountWith reads stream name back with c's credentials and counts
// each seq:N in the bodies.
func streamCountWith(t testing.TB, c natsClient, url, name string) map[int]int {
	t.Helper()
	nc := c.connect(t, url)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	total := int(st.CachedInfo().State.Msgs)
	counts := map[int]int{}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for got := 0; got < total; {
		batch, err := cons.Fetch(total-got, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			counts[testpeer.SeqOf(string(m.Data()))]++
		}
		if n == 0 {
			t.Fatalf("read %d of %d messages: %v", got, total, batch.Error())
		}
		got += n
	}
	return counts
}
