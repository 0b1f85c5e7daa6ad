package relp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// Errors of a client certificate refused by a PeerCheck; the TLS
// handshake fails with them (and a bad_certificate alert).
var (
	// ErrNoClientCert means the client sent no certificate.
	ErrNoClientCert = errors.New("relp tls: client sent no certificate")
	// ErrUntrustedCert means the client's certificate does not chain to
	// the configured client CA (or is expired).
	ErrUntrustedCert = errors.New("relp tls: client certificate not signed by client_ca")
	// ErrPeerNotPermitted means no name of the certificate matches a
	// permitted peer.
	ErrPeerNotPermitted = errors.New("relp tls: client certificate name not permitted")
	// ErrPeerPattern means a permitted peer pattern is malformed.
	ErrPeerPattern = errors.New("relp tls: bad permitted peer pattern")
)

// TLS refusal reasons (Stats.TLSRefused keys).
const (
	TLSNoCert    = "no_cert"
	TLSUntrusted = "untrusted"
	TLSName      = "name"
	TLSOther     = "handshake"
)

// PeerCheck verifies client certificates like librelp's
// tls.authMode="name": the certificate must chain to the client CA, and
// one of its names must match a permitted peer. The names are its
// subjectAltName dNSNames, then, if none matched, the common name of its
// subject. A permitted peer is a name, or a pattern with '*' standing for
// a whole domain component ("*.example.com") or its start or end
// ("relay*.example.com", "*-web.example.com"); components are compared one
// by one, so "*.example.com" does not match "a.b.example.com".
type PeerCheck struct {
	roots    *x509.CertPool
	patterns []peerPattern
}

type peerPattern struct {
	raw   string
	comps []string // nil: no wildcard, compare raw
}

// NewPeerCheck checks the patterns and returns a PeerCheck against roots.
func NewPeerCheck(roots *x509.CertPool, permitted []string) (*PeerCheck, error) {
	pc := &PeerCheck{roots: roots}
	for _, p := range permitted {
		pp, err := parsePeerPattern(p)
		if err != nil {
			return nil, err
		}
		pc.patterns = append(pc.patterns, pp)
	}
	return pc, nil
}

// WithRoots returns a PeerCheck of the same names against other roots
// (a client CA the relay has read again).
func (pc *PeerCheck) WithRoots(roots *x509.CertPool) *PeerCheck {
	c := *pc
	c.roots = roots
	return &c
}

// CheckPeerPattern reports whether p is a valid permitted peer pattern.
func CheckPeerPattern(p string) error {
	_, err := parsePeerPattern(p)
	return err
}

func parsePeerPattern(p string) (peerPattern, error) {
	if p == "" {
		return peerPattern{}, fmt.Errorf("%w: empty name; write a certificate name such as relay1.example.com or *.example.com", ErrPeerPattern)
	}
	if !strings.Contains(p, "*") {
		return peerPattern{raw: p}, nil
	}
	comps := strings.Split(p, ".")
	for _, c := range comps {
		if c == "*" {
			continue
		}
		if i := strings.IndexByte(c, '*'); i >= 0 {
			if strings.Count(c, "*") > 1 || (i != 0 && i != len(c)-1) {
				return peerPattern{}, fmt.Errorf("%w: %q: '*' may stand for a whole domain component or its start or end only, e.g. *.example.com or web*.example.com", ErrPeerPattern, p)
			}
		}
	}
	return peerPattern{raw: p, comps: comps}, nil
}

func (pp peerPattern) match(name string) bool {
	if pp.comps == nil {
		return name == pp.raw
	}
	names := strings.Split(strings.TrimSuffix(name, "."), ".")
	pat := pp.comps
	if n := len(pat); n > 0 && pat[n-1] == "" { // a rooted pattern "example.com."
		pat = pat[:n-1]
	}
	if len(names) != len(pat) {
		return false
	}
	for i, c := range pat {
		n := names[i]
		switch {
		case c == "*":
		case strings.HasPrefix(c, "*"):
			if !strings.HasSuffix(n, c[1:]) {
				return false
			}
		case strings.HasSuffix(c, "*"):
			if !strings.HasPrefix(n, c[:len(c)-1]) {
				return false
			}
		case c != n:
			return false
		}
	}
	return true
}

// Apply makes cfg ask for a client certificate and verify it with pc
// during the handshake (ClientAuth RequestClientCert, VerifyConnection),
// so each refusal says why.
func (pc *PeerCheck) Apply(cfg *tls.Config) {
	cfg.ClientAuth = tls.RequestClientCert
	cfg.ClientCAs = pc.roots
	cfg.VerifyConnection = pc.Verify
}

// Verify checks a handshake's client certificate.
func (pc *PeerCheck) Verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return ErrNoClientCert
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	// Any key usage: librelp does not require clientAuth, and rsyslog
	// admins often give hosts one certificate for both ends.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pc.roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("%w: %w", ErrUntrustedCert, err)
	}
	names := leaf.DNSNames
	for _, n := range names {
		if pc.permits(n) {
			return nil
		}
	}
	if cn := leaf.Subject.CommonName; cn != "" {
		if pc.permits(cn) {
			return nil
		}
		names = append(names, "CN="+cn)
	}
	return fmt.Errorf("%w: certificate names %v", ErrPeerNotPermitted, names)
}

func (pc *PeerCheck) permits(name string) bool {
	for _, p := range pc.patterns {
		if p.match(name) {
			return true
		}
	}
	return false
}

// TLSRefusal classifies a failed handshake for Stats.TLSRefused.
func TLSRefusal(err error) string {
	switch {
	case errors.Is(err, ErrNoClientCert):
		return TLSNoCert
	case errors.Is(err, ErrUntrustedCert):
		return TLSUntrusted
	case errors.Is(err, ErrPeerNotPermitted):
		return TLSName
	}
	return TLSOther
}
