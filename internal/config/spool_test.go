package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func spoolConfig(outputs string) []byte {
	return []byte("inputs: [{name: in, type: syslog, listen: tcp://127.0.0.1:0}]\noutputs:\n" + outputs + "http: {listen: \"\"}\n")
}

func TestSpoolDefaultsAndPaths(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "relay.yaml")
	os.WriteFile(f, spoolConfig("  - {name: w, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: spool/w}}\n"), 0o644)
	c, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Outputs[0].Spool
	if s.Dir != filepath.Join(dir, "spool/w") || s.MaxBytes != 1<<30 || s.Fsync != "always" || s.Full != "block" {
		t.Fatalf("spool %+v", s)
	}
	if !strings.Contains(c.Summary(), "spool "+s.Dir) {
		t.Fatalf("summary does not mention the spool:\n%s", c.Summary())
	}
}

func TestSpoolProblems(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct{ name, outputs, path, msg string }{
		{"pub", "  - {name: t, socket: pub, bind: tcp://127.0.0.1:0, spool: {dir: " + dir + "/t}}\n",
			"outputs[0].spool", "a pub output cannot be spooled"},
		{"no dir", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0, spool: {max_bytes: 1GiB}}\n",
			"outputs[0].spool.dir", "dir is required"},
		{"shared", "  - {name: a, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: " + dir + "/s}}\n" +
			"  - {name: b, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: " + dir + "/s/}}\n",
			"outputs[1].spool.dir", `already the spool of output "a"`},
		{"not a dir", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: " + file + "}}\n",
			"outputs[0].spool.dir", "is not a directory"},
		{"small", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: " + dir + "/w, max_bytes: 1000}}\n",
			"outputs[0].spool.max_bytes", "too small"},
		{"huge", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: " + dir + "/w, max_bytes: 4000000GiB}}\n",
			"outputs[0].spool.max_bytes", "larger than the file system"},
		{"fsync", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: " + dir + "/w, fsync: sometimes}}\n",
			"outputs[0].spool.fsync", "use always, never or an interval"},
		{"full", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: " + dir + "/w, full: wait}}\n",
			"outputs[0].spool.full", "use block, drop_oldest or drop_newest"},
		{"unknown key", "  - {name: w, socket: push, bind: tcp://127.0.0.1:0, spool: {dir: " + dir + "/w, maxbytes: 1}}\n",
			"outputs[0].spool.maxbytes", "unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(spoolConfig(tc.outputs), "relay.yaml")
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Fatalf("err %v", err)
			}
			for _, p := range cerr.Problems {
				if p.Path == tc.path && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Fatalf("no problem at %s containing %q in:\n%v", tc.path, tc.msg, err)
		})
	}
}

func TestSpoolDirNotWritable(t *testing.T) {
	if os.Geteuid() == 0 {
		// root writes anywhere; the check is exercised by non-root runs.
		dir := t.TempDir()
		if err := checkSpoolDir(filepath.Join(dir, "a/b")); err != nil {
			t.Fatal(err)
		}
		return
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if err := checkSpoolDir(filepath.Join(dir, "spool")); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("err %v", err)
	}
}
