package main

import (
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestUsageMatchesFlags: the hand-written Options list of --help (and so
// of omzmq-bridge(8), made from it) names exactly the flags the bridge
// takes, each with the default it really has, so the two cannot drift.
func TestUsageMatchesFlags(t *testing.T) {
	s := defaultSettings()
	fs := s.flagSet(io.Discard)
	_, opts, ok := strings.Cut(usage, "\nOptions:\n")
	if !ok {
		t.Fatal("usage has no Options: section")
	}
	documented := map[string]string{} // flag -> its line(s)
	entry := regexp.MustCompile(`^  --([a-z-]+)`)
	last := ""
	for _, l := range strings.Split(opts, "\n") {
		if m := entry.FindStringSubmatch(l); m != nil {
			last = m[1]
			documented[last] = l
		} else if last != "" {
			documented[last] += " " + strings.TrimSpace(l)
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "help" {
			return // -h/--help shows this text
		}
		line, ok := documented[f.Name]
		if !ok {
			t.Errorf("--%s is a flag but the usage's Options do not list it", f.Name)
			return
		}
		delete(documented, f.Name)
		def := f.DefValue
		if def == "" || def == "false" || def == "[]" {
			return
		}
		// The text ends with the default in parentheses: "(1000)", "(1ms; 0: off…)".
		m := regexp.MustCompile(`\(([^;()]+)[;)][^(]*$`).FindStringSubmatch(line)
		if m == nil || !sameValue(m[1], def) {
			t.Errorf("--%s defaults to %s, but the usage says: %s", f.Name, def, strings.Join(strings.Fields(line), " "))
		}
	})
	for name := range documented {
		t.Errorf("the usage lists --%s, which is not a flag", name)
	}
}

// sameValue compares a default as written in the usage with flag's DefValue
// ("5m" and "5m0s" are the same duration).
func sameValue(written, def string) bool {
	if written == def {
		return true
	}
	a, err1 := time.ParseDuration(written)
	b, err2 := time.ParseDuration(def)
	return err1 == nil && err2 == nil && a == b
}
