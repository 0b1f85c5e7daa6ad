package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// curveDir lays out keys as an admin would: the relay's pair, a client's
// pair whose public certificate sits in clients/, and the config file.
func curveDir(t *testing.T) (dir string, relay, client zmq.CurveKeyPair) {
	t.Helper()
	dir = t.TempDir()
	var err error
	if relay, err = zmq.NewCurveKeyPair(); err != nil {
		t.Fatal(err)
	}
	if client, err = zmq.NewCurveKeyPair(); err != nil {
		t.Fatal(err)
	}
	if err := zmq.WriteCurveCerts(filepath.Join(dir, "relay.key"), relay, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "clients"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := zmq.WriteCurveCerts(filepath.Join(dir, "clients", "host1.key"), client, map[string]string{"host": "host1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir, relay, client
}

func parseIn(t *testing.T, dir, yaml string) (*Config, error) {
	t.Helper()
	p := filepath.Join(dir, "relay.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(p)
}

func TestCurveConfigGood(t *testing.T) {
	dir, relay, client := curveDir(t)
	c, err := parseIn(t, dir, `
inputs:
  - name: from-rsyslog
    type: zmq
    bind: tcp://127.0.0.1:5555
    curve: {key_file: relay.key, allow_dir: clients, allow: ["`+client.Public.Z85()+`"]}
outputs:
  - name: workers
    socket: push
    connect: tcp://10.0.0.1:5557
    curve: {key_file: relay.key_secret, server_key: "`+relay.Public.Z85()+`"}
  - name: taps
    socket: pub
    bind: tcp://127.0.0.1:5556
    curve: {key_file: relay.key, allow_any: true}
http:
  listen: ""
`)
	if err != nil {
		t.Fatal(err)
	}
	in := c.Inputs[0].Curve
	if in.KeyFile != filepath.Join(dir, "relay.key") || in.AllowDir != filepath.Join(dir, "clients") {
		t.Fatalf("paths not resolved against the config's directory: %+v", in)
	}
	if !c.Outputs[0].Curve.Client() || c.Outputs[1].Curve.Client() {
		t.Fatal("roles")
	}
	for _, s := range []zmq.CurveSettings{in.Settings(), c.Outputs[0].Curve.Settings(), c.Outputs[1].Curve.Settings()} {
		if _, err := s.Security(nil); err != nil {
			t.Fatalf("%+v: %v", s, err)
		}
	}
	sum := c.Summary()
	for _, want := range []string{"CURVE server admitting certificates in " + in.AllowDir + " and 1 listed keys", "CURVE client", "CURVE server admitting ANY client"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	roundTrip(t, c)
}

func TestCurveConfigBad(t *testing.T) {
	dir, relay, _ := curveDir(t)
	// A readable copy of the relay's secret certificate.
	b, _ := os.ReadFile(filepath.Join(dir, "relay.key_secret"))
	os.WriteFile(filepath.Join(dir, "open.key_secret"), b, 0o644)
	os.Chmod(filepath.Join(dir, "open.key_secret"), 0o644)
	pubOnly, _ := os.ReadFile(filepath.Join(dir, "clients", "host1.key"))
	os.WriteFile(filepath.Join(dir, "public.key"), pubOnly, 0o644)
	os.Mkdir(filepath.Join(dir, "junk"), 0o755)
	os.WriteFile(filepath.Join(dir, "junk", "README"), []byte("not a certificate\n"), 0o644)
	pub := relay.Public.Z85()
	cases := []struct {
		name, curve string
		path, msg   string
	}{
		{"server without keys", `{allow_any: true}`, "inputs[0].curve.key_file", "key_file is required"},
		{"secret readable by others", `{key_file: open.key, allow_any: true}`, "inputs[0].curve.key_file", "chmod 600"},
		{"allow_dir missing", `{key_file: relay.key, allow_dir: nowhere}`, "inputs[0].curve.allow_dir", "does not exist"},
		{"allow_dir with junk", `{key_file: relay.key, allow_dir: junk}`, "inputs[0].curve.allow_dir", "README"},
		{"server admitting nobody", `{key_file: relay.key}`, "inputs[0].curve", "allow_any: true admits anyone and must be explicit"},
		{"client with an allow-list", `{key_file: relay.key, server_key: "` + pub + `", allow_any: true}`, "inputs[0].curve", "apply to a CURVE server"},
		{"bad server key", `{key_file: relay.key, server_key: "tooshort"}`, "inputs[0].curve.server_key", "40 Z85"},
		{"both server keys", `{key_file: relay.key, server_key: "` + pub + `", server_key_file: relay.key}`, "inputs[0].curve.server_key", "not both"},
		{"missing server key file", `{key_file: relay.key, server_key_file: gone.key}`, "inputs[0].curve.server_key_file", "does not exist"},
		{"bad allow key", `{key_file: relay.key, allow: [nope]}`, "inputs[0].curve.allow[0]", "40 Z85"},
		{"public certificate as key_file", `{key_file: public.key, allow_any: true}`, "inputs[0].curve.key_file", "no secret-key"},
		{"unknown key", `{key_file: relay.key, allow_any: true, alow_dir: x}`, "inputs[0].curve.alow_dir", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseIn(t, dir, `
inputs:
  - name: in
    type: zmq
    bind: tcp://127.0.0.1:5555
    curve: `+c.curve+`
http:
  listen: ""
`)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("accepted, or not a config error: %v", err)
			}
			for _, p := range e.Problems {
				if p.Path == c.path && strings.Contains(p.Msg, c.msg) {
					return
				}
			}
			t.Fatalf("want a problem at %s saying %q; got:\n%v", c.path, c.msg, err)
		})
	}
	t.Run("plain and curve", func(t *testing.T) {
		_, err := parseIn(t, dir, `
outputs:
  - name: out
    socket: push
    bind: tcp://127.0.0.1:5557
    plain: {username: u, password: p}
    curve: {key_file: relay.key, allow_any: true}
http:
  listen: ""
`)
		if err == nil || !strings.Contains(err.Error(), "plain or curve, not both") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("curve on a syslog input", func(t *testing.T) {
		_, err := parseIn(t, dir, `
inputs:
  - name: in
    type: syslog
    listen: tcp://127.0.0.1:10514
    curve: {key_file: relay.key, allow_any: true}
http:
  listen: ""
`)
		if err == nil || !strings.Contains(err.Error(), "curve") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestLinkCurve: curve secures a link in place of tls, so a link on a
// non-loopback address with curve passes the insecure-address check; the
// input is the CURVE server and the output the client; tls and curve
// together are refused.
func TestLinkCurve(t *testing.T) {
	dir, relay, _ := curveDir(t)
	c, err := parseIn(t, dir, `
inputs:
  - name: from-dc1
    type: link
    bind: [tcp://0.0.0.0:6000]
    state_dir: state
    curve: {key_file: relay.key, allow_dir: clients}
outputs:
  - name: to-dc3
    type: link
    connect: [tcp://relay.dc3:6000]
    spool: {dir: spool}
    curve: {key_file: relay.key, server_key: "`+relay.Public.Z85()+`"}
http:
  listen: ""
`)
	if err != nil {
		t.Fatal(err)
	}
	sum := c.Summary()
	for _, want := range []string{"input from-dc1: link on tcp://0.0.0.0:6000, CURVE server admitting certificates in " + filepath.Join(dir, "clients"),
		"output to-dc3: link to tcp://relay.dc3:6000, CURVE client"} {
		if !strings.Contains(sum, want) {
			t.Errorf("summary lacks %q:\n%s", want, sum)
		}
	}
	bad := []struct{ name, yaml, want string }{
		{"input as client", `
inputs:
  - name: from-dc1
    type: link
    bind: [tcp://127.0.0.1:6000]
    state_dir: state
    curve: {key_file: relay.key, server_key: "` + relay.Public.Z85() + `"}
`, "a link input is the CURVE server"},
		{"output as server", `
outputs:
  - name: to-dc3
    type: link
    connect: [tcp://127.0.0.1:6000]
    spool: {dir: spool}
    curve: {key_file: relay.key, allow_any: true}
`, "a link output is the CURVE client"},
		{"output with tls and curve", `
outputs:
  - name: to-dc3
    type: link
    connect: [tcp://127.0.0.1:6000]
    spool: {dir: spool}
    tls: {cert: c.pem, key: c.key}
    curve: {key_file: relay.key, server_key: "` + relay.Public.Z85() + `"}
`, "a link uses tls or curve, not both"},
		{"input without an allow-list", `
inputs:
  - name: from-dc1
    type: link
    bind: [tcp://127.0.0.1:6000]
    state_dir: state
    curve: {key_file: relay.key}
`, "a CURVE server needs allow_dir"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			y := b.yaml
			if !strings.Contains(y, "outputs:") {
				y += "outputs:\n  - name: out\n    socket: pub\n    bind: tcp://127.0.0.1:5556\n"
			}
			_, err := parseIn(t, dir, y+"http:\n  listen: \"\"\n")
			if err == nil || !strings.Contains(err.Error(), b.want) {
				t.Fatalf("want %q, got %v", b.want, err)
			}
		})
	}
}
