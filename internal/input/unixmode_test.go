package input

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/event"
)

// A unix socket is created with the umask's permissions: under umask 0 it
// was world-writable, so any local user could inject events. The input
// sets unix_mode (0660 by default) and unix_group before it reads.
func TestUnixSocketModeAndGroup(t *testing.T) {
	old := syscall.Umask(0) // the worst case: sockets created 0777
	defer syscall.Umask(old)
	gid := os.Getgid() // a group we may give files to
	if gs, _ := os.Getgroups(); len(gs) > 0 {
		gid = gs[len(gs)-1]
	}
	if os.Geteuid() == 0 {
		gid = 4242 // root may give any
	}
	for _, tc := range []struct {
		name string
		mode os.FileMode
		gid  int
		want os.FileMode
	}{
		{"default", 0, 0, 0o660},
		{"0600 with a group", 0o600, gid, 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "relay.sock")
			s, err := NewSyslog(SyslogConfig{Name: "ux", Listen: []string{"unix://" + path}, UnixMode: tc.mode, UnixGID: tc.gid}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Start(func([]*event.Event) {}); err != nil {
				t.Fatal(err)
			}
			defer s.Stop(context.Background())
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != tc.want {
				t.Errorf("socket mode %#o, want %#o (umask 0)", perm, tc.want)
			}
			if tc.gid > 0 {
				if g := int(fi.Sys().(*syscall.Stat_t).Gid); g != tc.gid {
					t.Errorf("socket group %d, want %d", g, tc.gid)
				}
			}
			t.Logf("measured: under umask 0 the socket is %v (a plain bind made it srwxrwxrwx)", fi.Mode())
		})
	}
}
