package config

import (
	"errors"
	"fmt"
	"os"

	"go.yaml.in/yaml/v3"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// Curve holds ZeroMQ CURVE settings (RFC 25/26): encryption and key-based
// authentication, compatible with libzmq and rsyslog's omczmq/imczmq.
// Key files are czmq certificates (`relay keygen` writes a pair); paths
// are relative to the config file. Naming the server's key
// (server_key_file or server_key) makes the socket the CURVE client;
// otherwise it is the CURVE server. The role does not depend on bind or
// connect.
type Curve struct {
	// KeyFile is this socket's secret certificate (NAME.key_secret; NAME.key
	// is read as NAME.key_secret beside it, as czmq does). Required.
	KeyFile string `yaml:"key_file,omitempty"`
	// ServerKeyFile is the server's certificate (client side).
	ServerKeyFile string `yaml:"server_key_file,omitempty"`
	// ServerKey is the server's public key in Z85, instead of ServerKeyFile.
	ServerKey string `yaml:"server_key,omitempty"`
	// AllowDir is a directory of the public certificates of the clients a
	// server admits, re-read when it changes (server side).
	AllowDir string `yaml:"allow_dir,omitempty"`
	// Allow lists admitted clients' public keys in Z85 (server side).
	Allow []string `yaml:"allow,omitempty"`
	// AllowAny admits every client: encrypted, but not authenticated.
	AllowAny bool `yaml:"allow_any,omitempty"`
}

// Client reports whether the settings make the socket the CURVE client.
func (c *Curve) Client() bool { return c.ServerKeyFile != "" || c.ServerKey != "" }

// Settings converts c for internal/zmq.
func (c *Curve) Settings() zmq.CurveSettings {
	return zmq.CurveSettings{
		KeyFile:       c.KeyFile,
		ServerKeyFile: c.ServerKeyFile,
		ServerKey:     c.ServerKey,
		AllowDir:      c.AllowDir,
		Allow:         c.Allow,
		AllowAny:      c.AllowAny,
	}
}

func (d *decoder) curve(v *yaml.Node, path string, c *Curve) {
	d.fields(v, path, fieldSet{
		"key_file":        func(v *yaml.Node, p string) { d.str(v, p, &c.KeyFile) },
		"server_key_file": func(v *yaml.Node, p string) { d.str(v, p, &c.ServerKeyFile) },
		"server_key":      func(v *yaml.Node, p string) { d.str(v, p, &c.ServerKey) },
		"allow_dir":       func(v *yaml.Node, p string) { d.str(v, p, &c.AllowDir) },
		"allow":           func(v *yaml.Node, p string) { d.strs(v, p, &c.Allow) },
		"allow_any":       func(v *yaml.Node, p string) { d.boolean(v, p, &c.AllowAny) },
	}, nil)
}

func (c *Curve) resolvePaths(abs func(*string)) {
	if c == nil {
		return
	}
	abs(&c.KeyFile)
	abs(&c.ServerKeyFile)
	abs(&c.AllowDir)
}

// curve checks a socket's CURVE settings: the keys load, a secret
// certificate is private, a server says whom it admits and its allow_dir
// exists and holds certificates only.
func (k *checker) curve(p string, c *Curve, plain *Plain) {
	if plain != nil {
		k.add(p, ErrInvalid, "a socket uses plain or curve, not both; remove one")
	}
	client := c.Client()
	if c.KeyFile == "" {
		role := "server: the key clients know it by"
		if client {
			role = "client: the key the server's allow-list names"
		}
		k.add(p+".key_file", ErrRequired, "key_file is required: the secret certificate of this CURVE %s (relay keygen writes a pair)", role)
	} else {
		secret := zmq.SecretCertPath(c.KeyFile)
		if err := checkFile(secret); err != nil {
			k.add(p+".key_file", ErrFile, "%v", err)
		} else if _, err := zmq.LoadCurveKeyPair(c.KeyFile); err != nil {
			k.add(p+".key_file", ErrFile, "%v", err)
		} else if err := checkPrivate(secret); err != nil {
			k.add(p+".key_file", ErrFile, "%v", err)
		}
	}
	if client {
		if c.AllowDir != "" || len(c.Allow) > 0 || c.AllowAny {
			k.add(p, ErrInvalid, "allow_dir, allow and allow_any apply to a CURVE server, but server_key(_file) makes this socket the client; remove one or the other")
		}
		switch {
		case c.ServerKey != "" && c.ServerKeyFile != "":
			k.add(p+".server_key", ErrInvalid, "set server_key or server_key_file, not both")
		case c.ServerKey != "":
			if _, err := zmq.ParseCurveKey(c.ServerKey); err != nil {
				k.add(p+".server_key", ErrInvalid, "%v; a public key is 40 Z85 characters, as in the server's certificate", err)
			}
		default:
			if err := checkFile(c.ServerKeyFile); err != nil {
				k.add(p+".server_key_file", ErrFile, "%v", err)
			} else if _, err := zmq.LoadCurvePublicKey(c.ServerKeyFile); err != nil {
				k.add(p+".server_key_file", ErrFile, "%v", err)
			}
		}
		return
	}
	if c.AllowDir == "" && len(c.Allow) == 0 && !c.AllowAny {
		k.add(p, ErrRequired, "a CURVE server needs allow_dir (a directory of client certificates) or allow (client public keys); allow_any: true admits anyone and must be explicit")
	}
	if c.AllowDir != "" {
		fi, err := os.Stat(c.AllowDir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			k.add(p+".allow_dir", ErrFile, "%q does not exist; create it and put the clients' public certificates in it", c.AllowDir)
		case err != nil:
			k.add(p+".allow_dir", ErrFile, "%q: %v", c.AllowDir, err)
		case !fi.IsDir():
			k.add(p+".allow_dir", ErrFile, "%q is not a directory; allow_dir names a directory of client certificates", c.AllowDir)
		default:
			if _, err := zmq.NewCurveAllowDir(c.AllowDir, nil); err != nil {
				k.add(p+".allow_dir", ErrFile, "%v", err)
			}
		}
	}
	for i, key := range c.Allow {
		if _, err := zmq.ParseCurveKey(key); err != nil {
			k.add(k.item(p+".allow", i, len(c.Allow)), ErrInvalid, "%v; a public key is 40 Z85 characters", err)
		}
	}
}

// checkPrivate refuses a secret file others can read or write: whoever
// reads it can pose as this relay. Group read is allowed (a group the
// relay runs in).
func checkPrivate(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if m := fi.Mode().Perm(); m&0o027 != 0 {
		return fmt.Errorf("%q has mode %04o: it holds a secret key that others can read or change; chmod 600 %s (or 640 with a group the relay runs in)", path, m, path)
	}
	return nil
}

// linkCurve checks the CURVE settings of a link input (the CURVE server:
// it needs an allow-list of senders) or output (the client: it names the
// receiver's key). A link secured by CURVE needs no tls; both at once
// would encrypt everything twice.
func (k *checker) linkCurve(p string, c *Curve, hasTLS, input bool) {
	if c == nil {
		return
	}
	k.curve(p+".curve", c, nil)
	if hasTLS {
		k.add(p+".curve", ErrInvalid, "a link uses tls or curve, not both: each encrypts the link and authenticates both ends; remove one")
	}
	switch {
	case input && c.Client():
		k.add(p+".curve", ErrInvalid, "a link input is the CURVE server: remove server_key(_file) and list the senders it admits in allow_dir or allow")
	case !input && !c.Client():
		k.add(p+".curve", ErrRequired, "a link output is the CURVE client: set server_key_file (or server_key) to the receiving relay's public certificate")
	}
}
