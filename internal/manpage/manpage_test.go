package manpage

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoffText(t *testing.T) {
	for in, want := range map[string]string{
		`--flag`:        `\-\-flag`,
		`a\b`:           `a\eb`,
		`.starts`:       `\&.starts`,
		`'quote`:        `\&'quote`,
		"rsyslog → zmq": `rsyslog \[u2192] zmq`,
	} {
		if got := roffText(in); got != want {
			t.Errorf("roffText(%q) = %q, want %q", in, got, want)
		}
	}
}

const sampleHelp = `demo: do a thing.

Usage:
  demo [-x N] FILE

Some prose
that fills.

Signals:
  SIGHUP  reloads

Environment:
  DEMO_HOME   where it lives

Flags:
  -long-flag string
    	what it does (default "x")
  -x	short flag text
  --gnu ARG      gnu style
                 continued
`

func TestPageSections(t *testing.T) {
	out := string(Page{Name: "demo", Section: "1", Help: sampleHelp, SeeAlso: []string{"relay(8)"}}.Roff())
	for _, want := range []string{
		".TH DEMO 1 ",
		".SH NAME\ndemo \\- do a thing\n",
		".SH SYNOPSIS\n.nf\n\\fBdemo\\fR [\\-x N] FILE\n.fi\n",
		".SH DESCRIPTION\n.PP\nSome prose\nthat fills.\n",
		".SS Signals\n.RS 4\n.nf\nSIGHUP  reloads\n",
		".SH ENVIRONMENT\n.TP\n\\fBDEMO_HOME\\fR\nwhere it lives\n",
		".SH OPTIONS\n.TP\n\\fB\\-long\\-flag\\fR \\fIstring\\fR\nwhat it does (default \"x\")\n",
		".TP\n\\fB\\-x\\fR\nshort flag text\n",
		".TP\n\\fB\\-\\-gnu\\fR \\fIARG\\fR\ngnu style\ncontinued\n",
		".SH SEE ALSO\n.BR relay (8)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q:\n%s", want, out)
		}
	}
}

func TestConfigPage(t *testing.T) {
	yaml := "# header line\n# more\n\n# Where from.\ninputs:\n  - name: a\n\n  # - name: b\n\n# Routing.\nstream:\n  from: app-name\n\n# drain_timeout: 5s\n# log: {level: info}\n"
	out := string(ConfigPage([]byte(yaml), nil))
	for _, want := range []string{
		".SH DESCRIPTION\n.PP\nheader line\nmore\n",
		".SS inputs\n.PP\nWhere from.\n.RS 4\n.nf\ninputs:\n  \\- name: a\n\n  # \\- name: b\n.fi\n",
		".SS stream\n.PP\nRouting.\n",
		".SS Other settings\n.RS 4\n.nf\ndrain_timeout: 5s\nlog: {level: info}\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("relay.yaml(5) lacks %q:\n%s", want, out)
		}
	}
}

func TestSpliceReadme(t *testing.T) {
	in := "a\n" + ReadmeBegin + "\nold\n" + ReadmeEnd + "\nb\n"
	out, err := SpliceReadme([]byte(in), ReadmeBegin+"\nnew\n"+ReadmeEnd)
	if err != nil || string(out) != "a\n"+ReadmeBegin+"\nnew\n"+ReadmeEnd+"\nb\n" {
		t.Errorf("SpliceReadme = %q, %v", out, err)
	}
	if _, err := SpliceReadme([]byte("no markers"), "x"); err == nil {
		t.Error("a README without the markers was accepted")
	}
}

// TestNoDrift builds the three commands, makes the man pages and the
// README block from their --help and default config, and fails if the
// committed files differ: change the help text, then run make man.
// Each page must also render without a groff warning (man-db's man -l).
func TestNoDrift(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "./relay", "./tap", "./omzmq-bridge")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s, err := FromBinaries(bin)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := Drift(root, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("out of date with the commands' --help (run make man): %v", stale)
	}
	if _, err := exec.LookPath("man"); err != nil {
		t.Fatal("man is missing: install the Debian package man-db (make deps)")
	}
	for path, page := range Files(s) {
		f := filepath.Join(t.TempDir(), filepath.Base(path))
		if err := os.WriteFile(f, page, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("man", "--warnings", "-l", f)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MAN_KEEP_FORMATTING=", "LC_ALL=C.UTF-8")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 || stdout.Len() == 0 {
			t.Errorf("man -l %s: %v, warnings:\n%s", path, err, stderr.String())
		}
		name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		if !strings.Contains(stdout.String(), name) {
			t.Errorf("man -l %s does not show %s", path, name)
		}
	}
}

// knownRequests are the roff requests and macros the generator writes.
var knownRequests = []string{`.\"`, ".TH ", ".SH ", ".SS ", ".PP", ".TP", ".RS ", ".RE", ".nf", ".fi", ".nh", ".ad ", ".BR ", ".B "}

// FuzzRoff: whatever a help text holds, the page is made without a panic
// and no line of it is a roff request the generator did not mean (a
// help line starting with a dot or an apostrophe must come out escaped).
func FuzzRoff(f *testing.F) {
	f.Add(sampleHelp)
	f.Add("x: y\n\n.TH injected\n'also\nUsage:\n  .evil\n")
	f.Add("Flags:\n  -a\tb\n  --c D   e\n\t.f\n")
	f.Add("  a body line before any key\nkey: v\n:\n  x\n")
	f.Fuzz(func(t *testing.T, help string) {
		for _, out := range []string{
			string(Page{Name: "demo", Section: "1", Help: help, SeeAlso: []string{"x(1)"}}.Roff()),
			string(ConfigPage([]byte(help), nil)),
		} {
			for _, l := range strings.Split(out, "\n") {
				if !strings.HasPrefix(l, ".") && !strings.HasPrefix(l, "'") {
					continue
				}
				ok := false
				for _, r := range knownRequests {
					ok = ok || strings.HasPrefix(l, r) || l == strings.TrimSpace(r)
				}
				if !ok {
					t.Fatalf("help %q gave the roff line %q", help, l)
				}
			}
		}
	})
}
