package config

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Limits on files read while validating: a path pointing at /dev/zero or
// a huge log must not hang or exhaust the relay.
const (
	maxTokenFile = 4 << 10
	maxUsersFile = 1 << 20
	maxPEMFile   = 1 << 20
)

// checkFile reports whether path names a readable regular file.
func checkFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case os.IsNotExist(err):
		return fmt.Errorf("%q does not exist; fix the path (relative paths are relative to the config file's directory)", path)
	case err != nil:
		return fmt.Errorf("%q: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%q is not a regular file; point at the file itself", path)
	}
	return nil
}

// readSmall reads a regular file of at most limit bytes.
func readSmall(path string, limit int64) ([]byte, error) {
	if err := checkFile(path); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%q is larger than %d bytes; is it the right file?", path, limit)
	}
	return data, nil
}

// ServerConfig loads the certificate, key and client CA into a TLS server
// configuration (TLS 1.2 or later).
func (t *TLS) ServerConfig() (*tls.Config, error) {
	certPEM, err := readSmall(t.Cert, maxPEMFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readSmall(t.Key, maxPEMFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load %q and %q: %w; both must be PEM and the key must match the certificate", t.Cert, t.Key, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCA != "" {
		caPEM, err := readSmall(t.ClientCA, maxPEMFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%q holds no PEM certificate; client_ca must be the CA certificate that signs clients", t.ClientCA)
		}
		cfg.ClientCAs = pool
	}
	switch t.ClientAuth {
	case ClientAuthRequest:
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Users returns the PLAIN credentials a binding socket accepts: Username
// with Password, plus each "user:password" line of UsersFile (blank lines
// and lines starting with # are skipped).
func (p *Plain) Users() (map[string]string, error) {
	users := map[string]string{}
	if p.Username != "" {
		users[p.Username] = p.Password
	}
	if p.UsersFile == "" {
		return users, nil
	}
	data, err := readSmall(p.UsersFile, maxUsersFile)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, pass, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: want user:password", p.UsersFile, n)
		}
		if len(user) > 255 || len(pass) > 255 {
			return nil, fmt.Errorf("%s:%d: PLAIN user and password are limited to 255 bytes each", p.UsersFile, n)
		}
		users[user] = pass
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %q: %w", p.UsersFile, err)
	}
	return users, nil
}

// TapToken reads the bearer token from TapTokenFile, trimmed of
// surrounding whitespace; "" with a nil error when no file is set.
func (h *HTTP) TapToken() (string, error) {
	if h.TapTokenFile == "" {
		return "", nil
	}
	data, err := readSmall(h.TapTokenFile, maxTokenFile)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("%q is empty; put the token /v1/tap clients must send in it", h.TapTokenFile)
	}
	return tok, nil
}

// SlogLevel returns the slog level of Level (info if unset).
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Handler returns an slog handler writing to w in Format at Level.
func (l Log) Handler(w io.Writer) slog.Handler {
	o := &slog.HandlerOptions{Level: l.SlogLevel()}
	if l.Format == "json" {
		return slog.NewJSONHandler(w, o)
	}
	return slog.NewTextHandler(w, o)
}
