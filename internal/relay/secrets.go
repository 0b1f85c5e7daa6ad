package relay

import (
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// secretSet is everything the relay reads from the files its config
// names: certificates and keys, client CAs, PLAIN users files and the tap
// token. loadSecrets builds a whole one before Start or Reload changes
// anything, so a reload applies every file or none.
type secretSet struct {
	token    string
	httpTLS  *tls.Config            // nil without http.tls
	inputTLS map[string]*tls.Config // syslog inputs with tls, by name
	linkTLS  map[string]*tls.Config // link outputs with tls (client side), by name
	users    map[string]map[string]string
	curve    map[string]*curveKeys // CURVE sockets' keys, by usersKey
}

// curveKeys are a CURVE socket's keys: its own pair and, for a client,
// the server's public key.
type curveKeys struct {
	own    zmq.CurveKeyPair
	server zmq.CurveKey
}

// usersKey names the PLAIN users of a binding socket in a secretSet.
func usersKey(kind, name string) string { return kind + " " + name }

// loadSecrets re-reads every file of credentials cfg names. The error
// names the key and the file that failed.
func loadSecrets(cfg *config.Config) (*secretSet, error) {
	set := &secretSet{inputTLS: map[string]*tls.Config{}, linkTLS: map[string]*tls.Config{}, users: map[string]map[string]string{}, curve: map[string]*curveKeys{}}
	tok, err := cfg.HTTP.TapToken()
	if err != nil {
		return nil, fmt.Errorf("http.tap_token_file: %w", err)
	}
	set.token = tok
	if cfg.HTTP.TLS != nil && cfg.HTTP.Listen != "" {
		if set.httpTLS, err = cfg.HTTP.TLS.ServerConfig(); err != nil {
			return nil, fmt.Errorf("http.tls: %w", err)
		}
	}
	for i, in := range cfg.Inputs {
		if in.TLS != nil {
			tc, err := in.TLS.ServerConfig()
			if err != nil {
				return nil, fmt.Errorf("inputs[%d] (%s).tls: %w", i, in.Name, err)
			}
			set.inputTLS[in.Name] = tc
		}
		if in.Curve != nil {
			own, server, err := in.Curve.Settings().Keys()
			if err != nil {
				return nil, fmt.Errorf("inputs[%d] (%s).curve: %w", i, in.Name, err)
			}
			set.curve[usersKey("input", in.Name)] = &curveKeys{own, server}
		}
		if in.Plain != nil && len(in.Bind) > 0 {
			u, err := in.Plain.Users()
			if err != nil {
				return nil, fmt.Errorf("inputs[%d] (%s).plain: %w", i, in.Name, err)
			}
			set.users[usersKey("input", in.Name)] = u
		}
	}
	for i, o := range cfg.Outputs {
		if o.LinkTLS != nil {
			tc, err := o.LinkTLS.ClientConfig()
			if err != nil {
				return nil, fmt.Errorf("outputs[%d] (%s).tls: %w", i, o.Name, err)
			}
			set.linkTLS[o.Name] = tc
		}
		if o.Curve != nil {
			own, server, err := o.Curve.Settings().Keys()
			if err != nil {
				return nil, fmt.Errorf("outputs[%d] (%s).curve: %w", i, o.Name, err)
			}
			set.curve[usersKey("output", o.Name)] = &curveKeys{own, server}
		}
		if o.Plain != nil && (len(o.Bind) > 0 || (o.Ack != nil && len(o.Ack.Bind) > 0)) {
			u, err := o.Plain.Users()
			if err != nil {
				return nil, fmt.Errorf("outputs[%d] (%s).plain: %w", i, o.Name, err)
			}
			set.users[usersKey("output", o.Name)] = u
		}
	}
	return set, nil
}

// secretStore holds the secrets the running inputs, outputs and HTTP
// server use. Each is read at the moment a connection is set up (a TLS
// handshake, a PLAIN HELLO), so applying a new secretSet takes effect for
// every new connection, including those of inputs and outputs a reload
// keeps running; established connections are not cut.
type secretStore struct {
	httpTLS tlsHolder

	mu       sync.Mutex
	inputTLS map[string]*tlsHolder
	linkTLS  map[string]*tlsHolder
	users    map[string]*usersHolder
	curve    map[string]*curveHolder
}

func newSecretStore() *secretStore {
	return &secretStore{inputTLS: map[string]*tlsHolder{}, linkTLS: map[string]*tlsHolder{}, users: map[string]*usersHolder{}, curve: map[string]*curveHolder{}}
}

// apply makes set current.
func (s *secretStore) apply(set *secretSet) {
	s.httpTLS.cur.Store(set.httpTLS)
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, tc := range set.inputTLS {
		s.tlsLocked(name).cur.Store(tc)
	}
	for name := range s.inputTLS {
		if _, ok := set.inputTLS[name]; !ok {
			delete(s.inputTLS, name)
		}
	}
	for name, tc := range set.linkTLS {
		holder(s.linkTLS, name).cur.Store(tc)
	}
	for name := range s.linkTLS {
		if _, ok := set.linkTLS[name]; !ok {
			delete(s.linkTLS, name)
		}
	}
	for key, u := range set.users {
		s.usersLocked(key).cur.Store(&u)
	}
	for key := range s.users {
		if _, ok := set.users[key]; !ok {
			delete(s.users, key)
		}
	}
	for key, k := range set.curve {
		s.curveLocked(key).cur.Store(k)
	}
	for key := range s.curve {
		if _, ok := set.curve[key]; !ok {
			delete(s.curve, key)
		}
	}
}

func (s *secretStore) curveLocked(key string) *curveHolder {
	h := s.curve[key]
	if h == nil {
		h = &curveHolder{}
		s.curve[key] = h
	}
	return h
}

// curveKeys returns where a CURVE socket takes its keys at each
// handshake: the files as last (re)loaded.
func (s *secretStore) curveKeys(kind, name string) zmq.CurveKeysFunc {
	s.mu.Lock()
	h := s.curveLocked(usersKey(kind, name))
	s.mu.Unlock()
	return func() (zmq.CurveKeyPair, zmq.CurveKey) {
		if k := h.cur.Load(); k != nil {
			return k.own, k.server
		}
		return zmq.CurveKeyPair{}, zmq.CurveKey{} // no keys loaded: zmq refuses every handshake
	}
}

// curveHolder is a CURVE socket's keys that a reload replaces.
type curveHolder struct{ cur atomic.Pointer[curveKeys] }

func (s *secretStore) tlsLocked(name string) *tlsHolder { return holder(s.inputTLS, name) }

// holder returns m's holder of name, made if missing. Called with s.mu held.
func holder(m map[string]*tlsHolder, name string) *tlsHolder {
	h := m[name]
	if h == nil {
		h = &tlsHolder{}
		m[name] = h
	}
	return h
}

// linkClientTLS returns where link output name takes its client TLS
// configuration at each connection: its certificate, key and CA as last
// (re)loaded, so a reload applies them to the next session.
func (s *secretStore) linkClientTLS(name string) func() (*tls.Config, error) {
	s.mu.Lock()
	h := holder(s.linkTLS, name)
	s.mu.Unlock()
	return func() (*tls.Config, error) {
		if c := h.cur.Load(); c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("no TLS certificate loaded for link output %q", name)
	}
}

func (s *secretStore) usersLocked(key string) *usersHolder {
	h := s.users[key]
	if h == nil {
		h = &usersHolder{}
		s.users[key] = h
	}
	return h
}

// inputTLSConfig returns the TLS configuration of input name: it
// takes the current certificate, key and client CA at each handshake.
func (s *secretStore) inputTLSConfig(name string) *tls.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tlsLocked(name).serverConfig()
}

// plainServer returns the PLAIN check of a binding socket: it looks up
// the current users at each handshake.
func (s *secretStore) plainServer(kind, name string) zmq.Security {
	s.mu.Lock()
	h := s.usersLocked(usersKey(kind, name))
	s.mu.Unlock()
	return zmq.PlainServer(func(user, pass string) bool {
		users := h.cur.Load()
		if users == nil {
			return false
		}
		want, ok := (*users)[user]
		return ok && subtle.ConstantTimeCompare([]byte(want), []byte(pass)) == 1
	})
}

// tlsHolder is a TLS server configuration that a reload replaces.
type tlsHolder struct{ cur atomic.Pointer[tls.Config] }

// serverConfig returns a configuration whose every handshake uses the
// holder's current one (certificate, key, client CA and auth mode).
func (h *tlsHolder) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			if c := h.cur.Load(); c != nil {
				return c, nil
			}
			return nil, fmt.Errorf("no TLS certificate loaded")
		},
	}
}

// usersHolder is a PLAIN users table that a reload replaces.
type usersHolder struct {
	cur atomic.Pointer[map[string]string]
}
