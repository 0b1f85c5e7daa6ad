package config

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// SecretFile is a file of credentials the config names: a TLS private
// key, a PLAIN users file or the tap token file.
type SecretFile struct {
	Path string // the key naming it, e.g. "inputs[0].tls.key"
	File string
}

// SecretFiles lists the files of credentials the configuration names, in
// configuration order.
func (c *Config) SecretFiles() []SecretFile {
	var out []SecretFile
	add := func(p, f string) {
		if f != "" {
			out = append(out, SecretFile{p, f})
		}
	}
	for i, in := range c.Inputs {
		p := fmt.Sprintf("inputs[%d]", i)
		if in.TLS != nil {
			add(p+".tls.key", in.TLS.Key)
		}
		if in.Plain != nil {
			add(p+".plain.users_file", in.Plain.UsersFile)
		}
	}
	for i, o := range c.Outputs {
		if o.Plain != nil {
			add(fmt.Sprintf("outputs[%d].plain.users_file", i), o.Plain.UsersFile)
		}
	}
	if c.HTTP.TLS != nil {
		add("http.tls.key", c.HTTP.TLS.Key)
	}
	add("http.tap_token_file", c.HTTP.TapTokenFile)
	return out
}

// secret refuses a file of credentials that every user may write: anyone
// could replace the key or add themselves to the users.
func (k *checker) secret(p, path string) {
	fi, err := os.Stat(path)
	if err != nil {
		return // reported by the caller's read
	}
	if perm := fi.Mode().Perm(); perm&0o002 != 0 {
		k.add(p, ErrFile, "%q is writable by every user (mode %#o): anyone could replace it; run chmod o-w on it", path, perm)
	}
}

// Warnings lists what the configuration allows but an operator should
// know is unsafe: files of credentials every user may read, unix sockets
// every user may write to, taps open to every web origin or Host name.
// `relay check` prints them and the relay logs them at start.
func (c *Config) Warnings() []Problem {
	var out []Problem
	warn := func(p, format string, args ...any) {
		line, col := c.lookup(p)
		out = append(out, Problem{File: c.File, Line: line, Col: col, Path: p, Msg: fmt.Sprintf(format, args...)})
	}
	for _, s := range c.SecretFiles() {
		fi, err := os.Stat(s.File)
		if err != nil {
			continue
		}
		if perm := fi.Mode().Perm(); perm&0o004 != 0 {
			warn(s.Path, "%q holds credentials and every user may read it (mode %#o); run chmod o-r on it", s.File, perm)
		}
	}
	for i, in := range c.Inputs {
		if in.hasUnix() && in.UnixMode&0o002 != 0 {
			warn(fmt.Sprintf("inputs[%d].unix_mode", i), "%s lets every local user send events; prefer 0660 and unix_group", in.UnixMode)
		}
	}
	for i, o := range c.HTTP.AllowedOrigins {
		if o == "*" {
			warn(fmt.Sprintf("http.allowed_origins[%d]", i), "every web page may read the tap in its visitors' browsers; list the origins instead")
		}
	}
	for i, h := range c.HTTP.AllowedHosts {
		if h == "*" {
			warn(fmt.Sprintf("http.allowed_hosts[%d]", i), "any Host name is answered, so DNS rebinding can reach the relay from a web page; list the names instead")
		}
	}
	return out
}

// LookupGroup returns the id of a group given by name or number.
func LookupGroup(name string) (int, error) {
	if gid, err := strconv.Atoi(name); err == nil {
		if gid < 0 {
			return 0, fmt.Errorf("group id %d is negative", gid)
		}
		return gid, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		if _, ok := err.(user.UnknownGroupError); ok {
			return 0, fmt.Errorf("group %q does not exist; give an existing group name or a numeric id", name)
		}
		return 0, fmt.Errorf("group %q: %v; give an existing group name or a numeric id", name, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("group %q has id %q: not a number", name, g.Gid)
	}
	return gid, nil
}
