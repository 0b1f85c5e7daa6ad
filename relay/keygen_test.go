package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// TestKeygen: relay keygen writes a czmq certificate pair that the relay
// loads, that pyzmq's zmq.auth reads back to the same keys, and whose
// secret half nobody else can read; it never overwrites.
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "relay")
	code, out, errOut := runBin(t, "keygen", "-meta", "host=dc1", base)
	if code != 0 {
		t.Fatalf("keygen: exit %d: %s%s", code, out, errOut)
	}
	kp, err := zmq.LoadCurveKeyPair(base + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "public key "+kp.Public.Z85()) {
		t.Fatalf("output %q lacks the public key", out)
	}
	fi, err := os.Stat(base + ".key_secret")
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret certificate mode: %v %v", fi.Mode(), err)
	}
	c, err := zmq.ReadCurveCert(base + ".key")
	if err != nil || c.Secret != nil || c.Public != kp.Public || c.Metadata["host"] != "dc1" {
		t.Fatalf("public certificate: %+v %v", c, err)
	}
	testpeer.NeedPyzmq(t)
	py, err := exec.Command(testpeer.Python, "-c", `import sys, zmq.auth
p, s = zmq.auth.load_certificate(sys.argv[1] + "_secret")
q, n = zmq.auth.load_certificate(sys.argv[1])
assert n is None and p == q
print(p.decode(), s.decode())`, base+".key").CombinedOutput()
	if err != nil || strings.TrimSpace(string(py)) != kp.Public.Z85()+" "+kp.Secret.Z85() {
		t.Fatalf("pyzmq reads %q (%v), want our keys", py, err)
	}
	if code, _, errOut := runBin(t, "keygen", base); code == 0 || !strings.Contains(errOut, "exists") {
		t.Fatalf("keygen over existing files: exit %d, %q", code, errOut)
	}
	// A directory that does not exist yet (relay keygen /etc/relay/curve/relay
	// before any mkdir): said, with the command that makes it.
	missing := filepath.Join(dir, "curve")
	if code, _, errOut := runBin(t, "keygen", filepath.Join(missing, "relay")); code != 1 || !strings.Contains(errOut, "mkdir -p "+missing) {
		t.Fatalf("keygen into a missing directory: exit %d, %q, want 1 and mkdir -p %s", code, errOut, missing)
	}
	if code, _, _ := runBin(t, "keygen"); code != 2 {
		t.Fatalf("keygen without NAME: exit %d, want 2", code)
	}
}

// TestCheckCurve: relay check refuses a CURVE server whose secret
// certificate others can read, naming the fix.
func TestCheckCurve(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := runBin(t, "keygen", filepath.Join(dir, "relay")); code != 0 {
		t.Fatalf("keygen: %s%s", out, errOut)
	}
	conf := filepath.Join(dir, "relay.yaml")
	os.WriteFile(conf, []byte(`
inputs:
  - name: in
    type: zmq
    bind: tcp://127.0.0.1:5555
    curve: {key_file: relay.key, allow_any: true}
outputs:
  - name: out
    socket: pub
    bind: tcp://127.0.0.1:5556
`), 0o600)
	if code, out, errOut := runBin(t, "check", "-c", conf); code != 0 || !strings.Contains(out, "CURVE server admitting ANY client") {
		t.Fatalf("check: exit %d: %s%s", code, out, errOut)
	}
	os.Chmod(filepath.Join(dir, "relay.key_secret"), 0o644)
	code, out, errOut := runBin(t, "check", "-c", conf)
	if code != 2 || !strings.Contains(errOut, "chmod 600") {
		t.Fatalf("check with a readable secret: exit %d: %s%s", code, out, errOut)
	}
}
