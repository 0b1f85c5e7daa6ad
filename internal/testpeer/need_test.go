package testpeer

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRsyslogModules(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "tls.conf")
	if err := os.WriteFile(inc, []byte(`action(type="omfwd" target="x" StreamDriver="gtls" StreamDriverMode="1")`), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`
module(load="imtcp")
module( load = "omczmq" )
$ModLoad imrelp.so
global(DefaultNetstreamDriver="ossl")
input(type="imtcp" port="0" StreamDriver.Name="ptcp")
include(file=%q)
include(file="/nonexistent/skipped.conf")
`, inc)
	want := []string{"imrelp", "imtcp", "lmnsd_gtls", "lmnsd_ossl", "omczmq"}
	if got := RsyslogModules(conf); !reflect.DeepEqual(got, want) {
		t.Fatalf("RsyslogModules = %v, want %v", got, want)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records instead of stopping.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

// A missing module fails with the package that installs it; forward-tls.conf
// needs the gtls driver, which rsyslogd -N1 would not notice is missing.
func TestNeedRsyslogModulesNamesThePackage(t *testing.T) {
	saved := rsyslogModuleDirs
	rsyslogModuleDirs = []string{t.TempDir()} // nothing installed
	defer func() { rsyslogModuleDirs = saved }()
	b, err := os.ReadFile("../../rsyslog-conf/forward-tls.conf")
	if err != nil {
		t.Fatal(err)
	}
	f := &fatalRecorder{TB: t}
	NeedRsyslogModules(f, string(b)+"\nmodule(load=\"omczmq\")\nmodule(load=\"imtcp\")\n")
	for _, want := range []string{"lmnsd_gtls", "apt-get install", "rsyslog-gnutls", "rsyslog-czmq", " rsyslog"} {
		if !strings.Contains(f.msg, want) {
			t.Errorf("failure %q does not mention %q", f.msg, want)
		}
	}
}

// On this machine (make deps), what the tests load is installed.
func TestRsyslogModulesInstalled(t *testing.T) {
	if testing.Short() {
		t.Skip("checks the installed peers")
	}
	NeedRsyslogModules(t, `module(load="omczmq") module(load="imczmq") module(load="omrelp") module(load="imrelp") module(load="omprog")
global(DefaultNetstreamDriver="gtls")`)
}
