package zmq

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The czmq certificates in testdata are laid out as zcert_save writes
// them (FILE and FILE_secret), holding libzmq's documented client keys.
func TestCzmqCertificates(t *testing.T) {
	kp, err := LoadCurveKeyPair("testdata/certs/czmq")
	if err != nil {
		t.Fatal(err)
	}
	if kp.Public.Z85() != docClientPublic || kp.Secret.Z85() != docClientSecret {
		t.Fatalf("keys %s %s", kp.Public.Z85(), kp.Secret.Z85())
	}
	c, err := ReadCurveCert("testdata/certs/czmq")
	if err != nil || c.Secret != nil || c.Public != kp.Public {
		t.Fatalf("public certificate: %+v %v", c, err)
	}
	if c.Metadata["name"] != "client" || c.Metadata["email"] != "client@example.net" {
		t.Fatalf("metadata %v", c.Metadata)
	}
	if p := SecretCertPath("testdata/certs/czmq"); p != "testdata/certs/czmq_secret" {
		t.Fatalf("SecretCertPath = %s", p)
	}
}

func TestCurveCertErrors(t *testing.T) {
	other, _ := NewCurveKeyPair()
	for _, c := range []struct{ name, text, want string }{
		{"no curve section", "metadata\n", "no curve/public-key"},
		{"bad key", "curve\n    public-key = \"short\"\n", "40 Z85"},
		{"odd indent", "curve\n  public-key = \"" + docClientPublic + "\"\n", "multiples of 4"},
		{"tab", "curve\n\tpublic-key = \"" + docClientPublic + "\"\n", "not a ZPL name"},
		{"unclosed quote", "curve\n    public-key = \"" + docClientPublic + "\n", "missing closing"},
		{"junk after value", "curve\n    public-key = \"" + docClientPublic + "\" x\n", "after the value"},
		{"too deep", "curve\n        public-key = x\n", "deeper"},
		{"mismatched pair", "curve\n    public-key = \"" + other.Public.Z85() + "\"\n    secret-key = \"" + docClientSecret + "\"\n", "does not belong"},
	} {
		if _, err := ParseCurveCert([]byte(c.text)); err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrCurveCert) && !errors.Is(err, ErrZ85) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := LoadCurveKeyPair("testdata/certs/nope"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestWriteCurveCerts(t *testing.T) {
	dir := t.TempDir()
	kp, _ := NewCurveKeyPair()
	p := filepath.Join(dir, "a.key")
	if err := WriteCurveCerts(p, kp, map[string]string{"name": "a b"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCurveKeyPair(p)
	if err != nil || got != kp {
		t.Fatalf("read back: %v", err)
	}
	if fi, err := os.Stat(p + "_secret"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret certificate: %v %v, want mode 0600", fi.Mode(), err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o022 != 0 {
		t.Errorf("public certificate: %v %v, want nobody else writing", fi.Mode(), err)
	}
	if err := WriteCurveCerts(p, kp, nil, time.Now()); !errors.Is(err, os.ErrExist) {
		t.Fatalf("overwrite: %v", err)
	}
	if err := WriteCurveCerts(filepath.Join(dir, "b.key"), kp, map[string]string{"bad name": "x"}, time.Now()); err == nil {
		t.Fatal("metadata name with a space accepted")
	}
}

// TestCurveAllowDir: the allow-list follows the directory: a certificate
// added is admitted, one removed is refused, a vanished directory admits
// nobody; secret certificates and dotfiles are not read.
func TestCurveAllowDir(t *testing.T) {
	dir := t.TempDir()
	a, _ := NewCurveKeyPair()
	b, _ := NewCurveKeyPair()
	if err := WriteCurveCerts(filepath.Join(dir, "a.key"), a, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".a.key.swp"), []byte("editor junk"), 0o644)
	d, err := NewCurveAllowDir(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !d.CurveAllowed(a.Public) || d.CurveAllowed(b.Public) || d.Len() != 1 {
		t.Fatalf("initial: a %v b %v len %d", d.CurveAllowed(a.Public), d.CurveAllowed(b.Public), d.Len())
	}
	if err := WriteCurveCerts(filepath.Join(dir, "b.key"), b, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b admitted after its certificate appeared", func() bool { return d.CurveAllowed(b.Public) })
	os.Remove(filepath.Join(dir, "a.key"))
	waitFor(t, 5*time.Second, "a refused after its certificate went", func() bool { return !d.CurveAllowed(a.Public) })
	os.RemoveAll(dir)
	waitFor(t, 5*time.Second, "nobody admitted once the directory is gone", func() bool { return !d.CurveAllowed(b.Public) })
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "README"), []byte("hello\n"), 0o644)
	if _, err := NewCurveAllowDir(dir, nil); err == nil || !strings.Contains(err.Error(), "README") {
		t.Fatalf("a directory with a non-certificate: %v", err)
	}
	if _, err := NewCurveAllowDir(filepath.Join(dir, "missing"), nil); err == nil {
		t.Fatal("a missing directory accepted")
	}
}

func TestCurveSettings(t *testing.T) {
	dir := t.TempDir()
	kp, _ := NewCurveKeyPair()
	key := filepath.Join(dir, "k.key")
	WriteCurveCerts(key, kp, nil, time.Now())
	for _, c := range []struct {
		name string
		s    CurveSettings
		ok   bool
		hint string // in the error: the flag to set, for the bridge's and tap's users
	}{
		{"server allow_any", CurveSettings{KeyFile: key, AllowAny: true}, true, ""},
		{"server allow", CurveSettings{KeyFile: key, Allow: []string{kp.Public.Z85()}}, true, ""},
		{"server allow_dir", CurveSettings{KeyFile: key, AllowDir: dir}, true, ""},
		{"server without keys", CurveSettings{AllowAny: true}, false, "--curve-key"},
		{"server admitting nobody", CurveSettings{KeyFile: key}, false, "--curve-allow-dir"},
		{"client with a drawn key", CurveSettings{ServerKey: kp.Public.Z85()}, true, ""},
		{"client from a file", CurveSettings{KeyFile: key, ServerKeyFile: key}, true, ""},
		{"client with allow", CurveSettings{ServerKey: kp.Public.Z85(), AllowAny: true}, false, ""},
		{"both server keys", CurveSettings{ServerKey: kp.Public.Z85(), ServerKeyFile: key}, false, ""},
	} {
		sec, err := c.s.Security(nil)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
		if err != nil && !strings.Contains(err.Error(), c.hint) {
			t.Errorf("%s: %v does not name %s", c.name, err, c.hint)
		}
		if err == nil && sec.AsServer() == c.s.Client() {
			t.Errorf("%s: server=%v", c.name, sec.AsServer())
		}
	}
	var s CurveSettings
	s.SetServerKey(kp.Public.Z85())
	if s.ServerKey == "" || s.ServerKeyFile != "" {
		t.Fatalf("Z85 flag value: %+v", s)
	}
	s.SetServerKey(key)
	if s.ServerKeyFile != key || s.ServerKey != "" {
		t.Fatalf("file flag value: %+v", s)
	}
}
