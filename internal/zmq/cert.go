package zmq

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// CURVE certificates in czmq's format (zcert), which rsyslog's omczmq and
// imczmq load and pyzmq's zmq.auth writes: a ZPL file (ZeroMQ RFC 4) with
// a "metadata" section of name = value lines and a "curve" section holding
// public-key and, in the secret certificate, secret-key, both Z85. czmq
// saves a pair as FILE (public) and FILE_secret; pyzmq names them
// NAME.key and NAME.key_secret.

// maxCertFile bounds a certificate file read: they are a few hundred bytes.
const maxCertFile = 64 << 10

// maxAllowFiles bounds the certificates read from an allow-list directory.
const maxAllowFiles = 100000

// CurveCert is one certificate.
type CurveCert struct {
	Public   CurveKey
	Secret   *CurveKey // nil in a public certificate
	Metadata map[string]string
}

// ParseCurveCert parses a certificate's text.
func ParseCurveCert(data []byte) (CurveCert, error) {
	var c CurveCert
	props, err := parseZPL(data)
	if err != nil {
		return c, err
	}
	pub, ok := props["curve/public-key"]
	if !ok {
		return c, fmt.Errorf("no curve/public-key: %w", ErrCurveCert)
	}
	if c.Public, err = ParseCurveKey(pub); err != nil {
		return c, fmt.Errorf("curve/public-key: %w", err)
	}
	if sec, ok := props["curve/secret-key"]; ok {
		k, err := ParseCurveKey(sec)
		if err != nil {
			return c, fmt.Errorf("curve/secret-key: %w", err)
		}
		derived, err := CurvePublicKey(k)
		if err != nil || derived != c.Public {
			return c, fmt.Errorf("secret-key does not belong to public-key %s: %w", c.Public.Z85(), ErrCurveCert)
		}
		c.Secret = &k
	}
	for path, v := range props {
		if name, ok := strings.CutPrefix(path, "metadata/"); ok && !strings.Contains(name, "/") {
			if c.Metadata == nil {
				c.Metadata = map[string]string{}
			}
			c.Metadata[name] = v
		}
	}
	return c, nil
}

// parseZPL reads ZPL into "section/name" → value (every level joined by
// "/"): lines indented by multiples of 4 spaces, "name = value" with the
// value quoted ("…" or '…') or bare up to a # comment, "#" comment lines.
func parseZPL(data []byte) (map[string]string, error) {
	props := map[string]string{}
	var stack []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxCertFile)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimRight(sc.Text(), " \t\r\f\v")
		if line == "" || line[0] == '#' {
			continue
		}
		rest := strings.TrimLeft(line, " ")
		indent := len(line) - len(rest)
		if indent%4 != 0 {
			return nil, fmt.Errorf("line %d: indent by multiples of 4 spaces: %w", ln, ErrCurveCert)
		}
		level := indent / 4
		n := 0
		for n < len(rest) && zplNameChar(rest[n]) {
			n++
		}
		name := rest[:n]
		rest = strings.TrimLeft(rest[n:], " \t")
		if name == "" {
			if rest != "" && rest[0] != '#' {
				return nil, fmt.Errorf("line %d: %q is not a ZPL name: %w", ln, rest, ErrCurveCert)
			}
			continue
		}
		if name[0] == '/' || name[len(name)-1] == '/' {
			return nil, fmt.Errorf("line %d: a name must not start or end with '/': %w", ln, ErrCurveCert)
		}
		if level > len(stack) {
			return nil, fmt.Errorf("line %d: indented deeper than its section: %w", ln, ErrCurveCert)
		}
		stack = append(stack[:level], name)
		value := ""
		switch {
		case rest == "" || rest[0] == '#':
		case rest[0] == '=':
			v := strings.TrimLeft(rest[1:], " \t")
			if v != "" && (v[0] == '"' || v[0] == '\'') {
				end := strings.IndexByte(v[1:], v[0])
				if end < 0 {
					return nil, fmt.Errorf("line %d: missing closing %c: %w", ln, v[0], ErrCurveCert)
				}
				value = v[1 : 1+end]
				if after := strings.TrimLeft(v[2+end:], " \t"); after != "" && after[0] != '#' {
					return nil, fmt.Errorf("line %d: %q after the value: %w", ln, after, ErrCurveCert)
				}
			} else {
				if i := strings.IndexByte(v, '#'); i >= 0 {
					v = v[:i]
				}
				value = strings.TrimRight(v, " \t")
			}
		default:
			return nil, fmt.Errorf("line %d: %q after the name: %w", ln, rest, ErrCurveCert)
		}
		props[strings.Join(stack, "/")] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrCurveCert)
	}
	return props, nil
}

func zplNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("$-_@.&+/", c) >= 0
}

// ReadCurveCert reads and parses one certificate file.
func ReadCurveCert(path string) (CurveCert, error) {
	f, err := os.Open(path)
	if err != nil {
		return CurveCert{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCertFile+1))
	if err != nil {
		return CurveCert{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxCertFile {
		return CurveCert{}, fmt.Errorf("%s is over %d bytes, not a certificate: %w", path, maxCertFile, ErrCurveCert)
	}
	c, err := ParseCurveCert(data)
	if err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// SecretCertPath is the file holding path's secret key: path when it is
// a secret certificate, else path+"_secret" when that exists (czmq's
// zcert_load looks there first; pyzmq writes NAME.key and
// NAME.key_secret), else path.
func SecretCertPath(path string) string {
	if strings.HasSuffix(path, "_secret") {
		return path
	}
	if _, err := os.Stat(path + "_secret"); err == nil {
		return path + "_secret"
	}
	return path
}

// LoadCurveKeyPair reads a long-term key pair from a secret certificate
// (see SecretCertPath).
func LoadCurveKeyPair(path string) (CurveKeyPair, error) {
	sp := SecretCertPath(path)
	c, err := ReadCurveCert(sp)
	if err != nil {
		return CurveKeyPair{}, err
	}
	if c.Secret == nil {
		return CurveKeyPair{}, fmt.Errorf("%s holds no secret-key: name the secret certificate (NAME.key_secret), not the public one: %w", sp, ErrCurveCert)
	}
	return CurveKeyPair{Public: c.Public, Secret: *c.Secret}, nil
}

// LoadCurvePublicKey reads the public key of a certificate file, public
// or secret.
func LoadCurvePublicKey(path string) (CurveKey, error) {
	c, err := ReadCurveCert(path)
	return c.Public, err
}

// WriteCurveCerts writes kp as a pair of certificates: public to
// pubPath (mode 0644) and the secret to pubPath+"_secret" (mode 0600,
// created so: never readable by others, not even for a moment). It
// refuses to replace existing files.
func WriteCurveCerts(pubPath string, kp CurveKeyPair, meta map[string]string, now time.Time) error {
	var m bytes.Buffer
	names := make([]string, 0, len(meta))
	for k := range meta {
		names = append(names, k)
	}
	sort.Strings(names)
	m.WriteString("metadata\n")
	for _, k := range names {
		v := meta[k]
		if k == "" || strings.IndexFunc(k, func(r rune) bool { return r > 127 || !zplNameChar(byte(r)) || r == '/' }) >= 0 {
			return fmt.Errorf("metadata name %q: use letters, digits and $-_@.&+: %w", k, ErrCurveCert)
		}
		if strings.ContainsAny(v, "\"\n\r") {
			return fmt.Errorf("metadata %s: a value must not hold a double quote or a line break: %w", k, ErrCurveCert)
		}
		fmt.Fprintf(&m, "    %s = \"%s\"\n", k, v)
	}
	stamp := now.Format("2006-01-02 15:04:05")
	pub := fmt.Sprintf("#   ZeroMQ CURVE public certificate (czmq format), by relay keygen, %s\n"+
		"#   Give it to the peers that must know this key.\n\n%scurve\n    public-key = \"%s\"\n",
		stamp, m.String(), kp.Public.Z85())
	sec := fmt.Sprintf("#   ZeroMQ CURVE **secret** certificate (czmq format), by relay keygen, %s\n"+
		"#   Keep it private (mode 0600): whoever reads it can pose as this key.\n\n%scurve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
		stamp, m.String(), kp.Public.Z85(), kp.Secret.Z85())
	for _, p := range []string{pubPath, pubPath + "_secret"} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s exists; remove it or choose another name: %w", p, os.ErrExist)
		}
	}
	if err := writeNew(pubPath+"_secret", []byte(sec), 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, []byte(pub), 0o644); err != nil {
		os.Remove(pubPath + "_secret")
		return err
	}
	return nil
}

// writeNew creates path (failing if it exists) with mode, writes data and
// syncs it and its directory.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// CurveAllowDir admits the clients whose public certificates are in a
// directory, like czmq's certificate store: every regular file not named
// *_secret nor starting with ".". The directory is re-read when a file in
// it changes (checked at most once a second, on a handshake), so adding
// or removing a certificate takes effect without a restart; if the
// directory disappears, nobody is admitted.
type CurveAllowDir struct {
	dir string
	log *slog.Logger

	mu      sync.Mutex
	keys    CurveKeySet
	sig     string // names, sizes and times of the files last read
	checked time.Time
}

// NewCurveAllowDir reads dir; it fails when dir cannot be read or holds
// a file that is not a certificate, so a typo is caught at start.
func NewCurveAllowDir(dir string, log *slog.Logger) (*CurveAllowDir, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &CurveAllowDir{dir: dir, log: log}
	keys, sig, bad, err := readAllowDir(dir)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, bad[0]
	}
	d.keys, d.sig, d.checked = keys, sig, time.Now()
	return d, nil
}

// Len is how many keys are admitted now.
func (d *CurveAllowDir) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys)
}

// CurveAllowed implements CurveAuthorizer.
func (d *CurveAllowDir) CurveAllowed(k CurveKey) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now := time.Now(); now.Sub(d.checked) >= time.Second {
		d.checked = now
		d.refresh()
	}
	_, ok := d.keys[k]
	return ok
}

// refresh re-reads the directory if it changed (d.mu held).
func (d *CurveAllowDir) refresh() {
	files, sig, err := allowDirStat(d.dir)
	if err != nil {
		if len(d.keys) > 0 {
			d.log.Error("CURVE allow-list directory unreadable: admitting nobody", "dir", d.dir, "err", err)
		}
		d.keys, d.sig = CurveKeySet{}, ""
		return
	}
	if sig == d.sig {
		return
	}
	keys, bad := readCerts(files)
	for _, e := range bad {
		d.log.Warn("CURVE allow-list: file skipped", "err", e)
	}
	d.log.Info("CURVE allow-list re-read", "dir", d.dir, "keys", len(keys))
	d.keys, d.sig = keys, sig
}

// allowDirFiles lists the certificate candidates of dir.
func allowDirFiles(dir string) ([]os.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := ents[:0]
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") || strings.HasSuffix(n, "_secret") {
			continue
		}
		out = append(out, e)
	}
	if len(out) > maxAllowFiles {
		return nil, fmt.Errorf("%s holds over %d files", dir, maxAllowFiles)
	}
	return out, nil
}

// allowDirStat returns the regular files among dir's certificate
// candidates and the signature (names, sizes, times and modes of all)
// refresh compares to see a change.
func allowDirStat(dir string) (files []string, sig string, err error) {
	ents, err := allowDirFiles(dir)
	if err != nil {
		return nil, "", err
	}
	var b strings.Builder
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "%s\x00%d\x00%d\x00%v\n", e.Name(), fi.Size(), fi.ModTime().UnixNano(), fi.Mode())
		if fi.Mode().IsRegular() {
			files = append(files, p)
		}
	}
	return files, b.String(), nil
}

// readAllowDir reads every certificate of dir; bad lists the files that
// are not certificates (skipped).
func readAllowDir(dir string) (keys CurveKeySet, sig string, bad []error, err error) {
	files, sig, err := allowDirStat(dir)
	if err != nil {
		return nil, "", nil, fmt.Errorf("CURVE allow-list directory: %w", err)
	}
	keys, bad = readCerts(files)
	return keys, sig, bad, nil
}

// readCerts reads the public keys of files; bad lists those that are not
// certificates. No file at all is not an error: the operator may add
// certificates later.
func readCerts(files []string) (keys CurveKeySet, bad []error) {
	keys = CurveKeySet{}
	for _, p := range files {
		c, err := ReadCurveCert(p)
		if err != nil {
			bad = append(bad, fmt.Errorf("%w; the allow-list directory must hold only public certificates", err))
			continue
		}
		keys[c.Public] = struct{}{}
	}
	return keys, bad
}

// CurveSettings are the CURVE settings as the relay's config, the tap
// CLI and omzmq-bridge name them. Naming the server's key makes this side
// the client; otherwise it is the server.
type CurveSettings struct {
	KeyFile       string   // our secret certificate (see SecretCertPath)
	ServerKeyFile string   // client: the server's certificate (public or secret)
	ServerKey     string   // client: the server's public key in Z85, instead of ServerKeyFile
	AllowDir      string   // server: directory of the admitted clients' certificates
	Allow         []string // server: admitted clients' public keys in Z85
	AllowAny      bool     // server: admit every client (encryption without authentication)
}

// SetServerKey takes a command-line value naming the server's key: a Z85
// public key (40 characters, when no file has that name) or a
// certificate file.
func (c *CurveSettings) SetServerKey(v string) {
	if _, err := ParseCurveKey(v); err == nil {
		if _, err := os.Stat(v); err != nil {
			c.ServerKey, c.ServerKeyFile = v, ""
			return
		}
	}
	c.ServerKeyFile, c.ServerKey = v, ""
}

// ServerKeyFlag is a flag.Value (String and Set) for the command line's
// --curve-server-key: Set is SetServerKey.
func (c *CurveSettings) ServerKeyFlag() interface {
	String() string
	Set(string) error
} {
	return serverKeyFlag{c}
}

type serverKeyFlag struct{ c *CurveSettings }

func (f serverKeyFlag) String() string {
	if f.c == nil {
		return ""
	}
	return f.c.ServerKeyFile + f.c.ServerKey
}

func (f serverKeyFlag) Set(v string) error { f.c.SetServerKey(v); return nil }

// Enabled reports whether any CURVE setting is made.
func (c CurveSettings) Enabled() bool {
	return c.KeyFile != "" || c.Client() || c.AllowDir != "" || len(c.Allow) > 0 || c.AllowAny
}

// Client reports whether the settings make this side the CURVE client.
func (c CurveSettings) Client() bool { return c.ServerKeyFile != "" || c.ServerKey != "" }

// Security loads the keys and returns the mechanism. A client without
// KeyFile uses a key pair drawn now (only servers with allow_any admit
// it); a server needs KeyFile and an allow-list or AllowAny.
func (c CurveSettings) Security(log *slog.Logger) (Security, error) {
	own, server, err := c.Keys()
	if err != nil {
		return nil, err
	}
	if c.Client() {
		return CurveClient(own, server), nil
	}
	allow, err := c.Authorizers(log)
	if err != nil {
		return nil, err
	}
	return CurveServer(own, allow...), nil
}

// Keys loads this side's key pair (drawn now for a client without
// KeyFile) and, for a client, the server's public key; it checks the
// settings agree with the role.
func (c CurveSettings) Keys() (own CurveKeyPair, server CurveKey, err error) {
	switch {
	case c.KeyFile != "":
		if own, err = LoadCurveKeyPair(c.KeyFile); err != nil {
			return own, server, fmt.Errorf("curve key_file: %w", err)
		}
	case c.Client():
		if own, err = NewCurveKeyPair(); err != nil {
			return own, server, err
		}
	default:
		return own, server, fmt.Errorf("a CURVE server needs its key pair: set key_file (--curve-key on the command line) to its secret certificate (relay keygen writes one): %w", ErrCurveCert)
	}
	if !c.Client() {
		return own, server, nil
	}
	if c.AllowDir != "" || len(c.Allow) > 0 || c.AllowAny {
		return own, server, fmt.Errorf("allow_dir, allow and allow_any apply to a CURVE server; a side naming the server's key is the client: %w", ErrCurveCert)
	}
	if c.ServerKey != "" {
		if c.ServerKeyFile != "" {
			return own, server, fmt.Errorf("set server_key or server_key_file, not both: %w", ErrCurveCert)
		}
		if server, err = ParseCurveKey(c.ServerKey); err != nil {
			return own, server, fmt.Errorf("curve server_key: %w", err)
		}
		return own, server, nil
	}
	if server, err = LoadCurvePublicKey(c.ServerKeyFile); err != nil {
		return own, server, fmt.Errorf("curve server_key_file: %w", err)
	}
	return own, server, nil
}

// Authorizers returns whom a server admits: AllowAny, the listed keys,
// the certificates of AllowDir (re-read when the directory changes).
func (c CurveSettings) Authorizers(log *slog.Logger) ([]CurveAuthorizer, error) {
	var allow []CurveAuthorizer
	if c.AllowAny {
		allow = append(allow, CurveAllowAny)
	}
	if len(c.Allow) > 0 {
		set := CurveKeySet{}
		for _, z := range c.Allow {
			k, err := ParseCurveKey(z)
			if err != nil {
				return nil, fmt.Errorf("curve allow %q: %w", z, err)
			}
			set[k] = struct{}{}
		}
		allow = append(allow, set)
	}
	if c.AllowDir != "" {
		d, err := NewCurveAllowDir(c.AllowDir, log)
		if err != nil {
			return nil, fmt.Errorf("curve allow_dir: %w", err)
		}
		allow = append(allow, d)
	}
	if len(allow) == 0 {
		return nil, fmt.Errorf("a CURVE server needs allow_dir or allow (the clients it admits), or allow_any: true to admit anyone (on the command line: --curve-allow-dir DIR or --curve-allow-any): %w", ErrCurveCert)
	}
	return allow, nil
}
