package link

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// TLS refusal reasons, the label of the refusal counters on both ends.
const (
	ReasonUnknownCA    = "unknown_ca"     // the peer's certificate is not signed by a CA we trust
	ReasonExpired      = "expired"        // the peer's certificate is expired (or not yet valid)
	ReasonServerName   = "server_name"    // the receiver's certificate does not name server_name
	ReasonNoClientCert = "no_client_cert" // the sender presented no certificate
	ReasonBadCert      = "bad_certificate"
	ReasonPeerRefused  = "refused_by_peer" // the other end refused our certificate
	ReasonHandshake    = "handshake"       // any other TLS failure
)

// serverTLS returns the receiver's TLS configuration: when ClientCAs is
// set, a client certificate is required and verified here, so that every
// refusal is counted by its reason (and logged with it by the listener).
// A base that picks its configuration per handshake (GetConfigForClient:
// the relay's reloadable certificates) gets the same treatment per
// handshake.
func (r *Receiver) serverTLS(base *tls.Config) *tls.Config {
	if base.GetConfigForClient != nil {
		get := base.GetConfigForClient
		c := base.Clone()
		c.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			cur, err := get(hi)
			if err != nil || cur == nil {
				return cur, err
			}
			return r.verifying(cur), nil
		}
		return c
	}
	return r.verifying(base)
}

// verifying returns a clone of c that verifies client certificates
// against c.ClientCAs itself (none set: c as it is, TLS 1.2 at least).
func (r *Receiver) verifying(base *tls.Config) *tls.Config {
	c := base.Clone()
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	if c.ClientCAs == nil {
		return c
	}
	roots := c.ClientCAs
	// The CA list is not sent: a sender then presents the certificate it
	// has, and one signed by another CA is refused as unknown_ca here
	// rather than withheld by the sender and seen as no certificate.
	c.ClientCAs = nil
	c.ClientAuth = tls.RequestClientCert
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			r.refuse(ReasonNoClientCert)
			return errors.New("link: the sender presented no client certificate; give its link output tls.cert and tls.key")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		for _, ic := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(ic)
		}
		if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
			reason := classifyX509(err)
			r.refuse(reason)
			return fmt.Errorf("link: client certificate %q refused (%s): %w", cs.PeerCertificates[0].Subject.CommonName, reason, err)
		}
		return nil
	}
	return c
}

// classifyX509 names a certificate verification error.
func classifyX509(err error) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return ReasonUnknownCA
	case errors.As(err, &he):
		return ReasonServerName
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return ReasonExpired
	}
	return ReasonBadCert
}

// classifyDial names why a sender's TLS (or the ZMTP handshake right after
// it, where TLS 1.3 reports the receiver's refusal of our certificate)
// failed; "" if it is no TLS failure.
func classifyDial(err error) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var ce *tls.CertificateVerificationError
	switch {
	case errors.As(err, &ua):
		return ReasonUnknownCA
	case errors.As(err, &he):
		return ReasonServerName
	case errors.As(err, &ci):
		if ci.Reason == x509.Expired {
			return ReasonExpired
		}
		return ReasonBadCert
	case errors.As(err, &ce):
		return ReasonBadCert
	}
	s := err.Error()
	if strings.Contains(s, "remote error: tls:") {
		return ReasonPeerRefused
	}
	if strings.Contains(s, "tls:") {
		return ReasonHandshake
	}
	return ""
}
