package input

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// LoadTLS builds a server TLS configuration for tls:// listeners from PEM
// files. clientAuth is "none" (or ""), "request" (verify a client
// certificate if one is sent) or "require" (reject clients without a
// certificate signed by clientCA); "request" and "require" need clientCA.
func LoadTLS(cert, key, clientCA, clientAuth string) (*tls.Config, error) {
	if cert == "" || key == "" {
		return nil, fmt.Errorf("%w: set both cert and key (PEM files)", ErrTLS)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("%w: load cert %q and key %q: %w", ErrTLS, cert, key, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{pair},
		MinVersion:   tls.VersionTLS12,
	}
	switch clientAuth {
	case "", "none":
		cfg.ClientAuth = tls.NoClientCert
	case "request":
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("%w: client_auth %q: want none, request or require", ErrTLS, clientAuth)
	}
	if cfg.ClientAuth == tls.NoClientCert {
		return cfg, nil
	}
	if clientCA == "" {
		return nil, fmt.Errorf("%w: client_auth %q needs client_ca, the PEM file of the CA that signs client certificates", ErrTLS, clientAuth)
	}
	pem, err := os.ReadFile(clientCA)
	if err != nil {
		return nil, fmt.Errorf("%w: read client_ca: %w", ErrTLS, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%w: client_ca %q holds no PEM certificate", ErrTLS, clientCA)
	}
	cfg.ClientCAs = pool
	return cfg, nil
}
