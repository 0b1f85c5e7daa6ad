package testpeer

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// rsyslogModulePackage names the Debian package that ships an rsyslog
// module; modules not listed come with the rsyslog package itself.
var rsyslogModulePackage = map[string]string{
	"omczmq":     "rsyslog-czmq",
	"imczmq":     "rsyslog-czmq",
	"omrelp":     "rsyslog-relp",
	"imrelp":     "rsyslog-relp",
	"lmnsd_gtls": "rsyslog-gnutls",
	"lmnsd_ossl": "rsyslog-openssl",
}

// rsyslogModuleDirs are where Debian's rsyslog looks for its modules.
var rsyslogModuleDirs = []string{"/usr/lib/*/rsyslog", "/usr/lib/rsyslog"}

var (
	reModuleLoad = regexp.MustCompile(`(?i)module\s*\(\s*load\s*=\s*"([^"]+)"`)
	reModLoad    = regexp.MustCompile(`(?im)^\s*\$ModLoad\s+(\S+)`)
	// A stream driver (omfwd's StreamDriver, the global
	// DefaultNetstreamDriver, imtcp's StreamDriver.Name) is a module too:
	// gtls is lmnsd_gtls. rsyslogd -N1 does not load it, so only a check
	// of the file catches a config that needs it on a machine without it.
	reDriver  = regexp.MustCompile(`(?i)(?:streamdriver(?:\.name)?|defaultnetstreamdriver)\s*=\s*"([a-z]+)"`)
	reInclude = regexp.MustCompile(`(?i)include\s*\(\s*file\s*=\s*"([^"]+)"`)
)

// RsyslogModules lists the loadable modules conf needs (module loads and
// stream drivers, through include(file=...) of files that exist).
func RsyslogModules(conf string) []string {
	seen := map[string]bool{}
	var walk func(conf string, depth int)
	walk = func(conf string, depth int) {
		for _, m := range reModuleLoad.FindAllStringSubmatch(conf, -1) {
			seen[strings.TrimSuffix(m[1], ".so")] = true
		}
		for _, m := range reModLoad.FindAllStringSubmatch(conf, -1) {
			seen[strings.TrimSuffix(m[1], ".so")] = true
		}
		for _, m := range reDriver.FindAllStringSubmatch(conf, -1) {
			if d := strings.ToLower(m[1]); d != "ptcp" {
				seen["lmnsd_"+d] = true
			}
		}
		if depth > 4 {
			return
		}
		for _, m := range reInclude.FindAllStringSubmatch(conf, -1) {
			if b, err := os.ReadFile(m[1]); err == nil {
				walk(string(b), depth+1)
			}
		}
	}
	walk(conf, 0)
	mods := make([]string, 0, len(seen))
	for m := range seen {
		mods = append(mods, m)
	}
	sort.Strings(mods)
	return mods
}

// NeedRsyslogModules fails the test at once, naming the Debian packages to
// install, when a module conf needs (RsyslogModules) is not installed.
// Without it a test would wait for its timeout: rsyslogd starts without a
// stream driver it cannot load, and `rsyslogd -N1` passes such a config.
func NeedRsyslogModules(t testing.TB, conf string) {
	t.Helper()
	var missing, pkgs []string
	for _, m := range RsyslogModules(conf) {
		if rsyslogModuleInstalled(m) {
			continue
		}
		missing = append(missing, m)
		pkg := rsyslogModulePackage[m]
		if pkg == "" {
			pkg = "rsyslog"
		}
		if !slices.Contains(pkgs, pkg) {
			pkgs = append(pkgs, pkg)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("rsyslog modules %v are not installed (looked in %v): apt-get install %s",
			missing, rsyslogModuleDirs, strings.Join(pkgs, " "))
	}
}

func rsyslogModuleInstalled(name string) bool {
	for _, dir := range rsyslogModuleDirs {
		if m, _ := filepath.Glob(filepath.Join(dir, name+".so")); len(m) > 0 {
			return true
		}
	}
	return false
}
