package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Files of credentials every user may write are refused: anyone could put
// their own key or user in. Ones every user may read are warned about,
// with the chmod that fixes them.
func TestSecretFilePermissions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	conf := func(users, token string) string {
		return `
inputs:
  - name: z
    type: zmq
    bind: tcp://127.0.0.1:0
    plain: {users_file: ` + users + `}
http:
  listen: 127.0.0.1:0
  tap_token_file: ` + token + `
`
	}
	users := write("users.txt", "u:p\n", 0o666)
	token := write("tap.token", "tok\n", 0o644)
	_, err := Parse([]byte(conf(users, token)), filepath.Join(dir, "relay.yaml"))
	if err == nil || !errors.Is(err, ErrFile) || !strings.Contains(err.Error(), "inputs[0].plain.users_file: \""+users+"\" is writable by every user (mode 0666)") {
		t.Fatalf("a world-writable users file must be refused; got:\n%v", err)
	}

	os.Chmod(users, 0o640)
	c, err := Parse([]byte(conf(users, token)), filepath.Join(dir, "relay.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ws := c.Warnings()
	if len(ws) != 1 || ws[0].Path != "http.tap_token_file" || !strings.Contains(ws[0].String(), "relay.yaml:9:3: http.tap_token_file: \""+token+"\" holds credentials and every user may read it (mode 0644); run chmod o-r on it") {
		t.Fatalf("want one warning about the tap token file; got %v", ws)
	}
	os.Chmod(token, 0o600)
	if ws := c.Warnings(); len(ws) != 0 {
		t.Fatalf("no warning expected once both files are private; got %v", ws)
	}
	if got := c.SecretFiles(); len(got) != 2 || got[0].File != users || got[1].File != token {
		t.Errorf("SecretFiles = %+v", got)
	}
}

// The unsafe settings that are allowed are warned about.
func TestSecurityWarnings(t *testing.T) {
	c, err := Parse([]byte(`
inputs:
  - name: u
    type: syslog
    listen: unix:///tmp/relay-warn.sock
    unix_mode: 0666
http:
  listen: 127.0.0.1:0
  allowed_origins: ["*"]
  allowed_hosts: [relay.example.com, "*"]
`), "w.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range c.Warnings() {
		got = append(got, w.String())
	}
	want := []string{
		"w.yaml:6:5: inputs[0].unix_mode: 0666 lets every local user send events",
		"w.yaml:9:21: http.allowed_origins[0]: every web page may read the tap",
		"w.yaml:10:38: http.allowed_hosts[1]: any Host name is answered",
	}
	if len(got) != len(want) {
		t.Fatalf("warnings:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d = %q, want it to start %q", i, got[i], want[i])
		}
	}
}

// unix_mode takes octal with or without quotes; the default is 0660
// wherever a unix:// socket is listened on, and nothing elsewhere.
func TestUnixMode(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want FileMode
	}{
		{`unix_mode: 0600`, 0o600},
		{`unix_mode: "0640"`, 0o640},
		{`unix_mode: 620`, 0o620},
		{``, DefaultUnixMode},
	} {
		c, err := Parse([]byte(`
inputs:
  - name: u
    type: syslog
    listen: [unix:///tmp/relay-mode.sock, udp://127.0.0.1:0]
    `+tc.yaml+`
  - name: t
    type: syslog
    listen: tcp://127.0.0.1:0
http: {listen: ""}
outputs: [{name: o, socket: pub, bind: "tcp://127.0.0.1:0"}]
`), "m.yaml")
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if c.Inputs[0].UnixMode != tc.want || c.Inputs[1].UnixMode != 0 {
			t.Errorf("%q: unix_mode %s / %s, want %s / none", tc.yaml, c.Inputs[0].UnixMode, c.Inputs[1].UnixMode, tc.want)
		}
		roundTrip(t, c)
	}
}
