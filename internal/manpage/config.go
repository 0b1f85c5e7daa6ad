package manpage

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

// ConfigPage renders relay.yaml(5) from the embedded default config, the
// commented reference of every key: its opening comment is the
// description; each top-level key, with the comment above it, is a
// subsection showing that part of the file; commented-out top-level keys
// at the end are "Other settings".
func ConfigPage(defaultYAML []byte, refs []string) []byte {
	type sect struct {
		name  string
		prose []string
		body  []string
	}
	lines := strings.Split(strings.TrimRight(string(defaultYAML), "\n"), "\n")
	var intro []string
	i := 0
	for ; i < len(lines) && strings.HasPrefix(lines[i], "#"); i++ {
		intro = append(intro, lines[i])
	}
	var ss []sect
	var pending []string // comment lines after a blank line: the next key's prose, or the current body
	flush := func() {
		if len(ss) > 0 {
			ss[len(ss)-1].body = append(ss[len(ss)-1].body, pending...)
		}
		pending = nil
	}
	afterBlank := true
	for ; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.TrimSpace(l) == "":
			flush()
			pending = append(pending, "")
			afterBlank = true
			continue
		case strings.HasPrefix(l, "#") && afterBlank:
			pending = append(pending, l)
			continue
		case topKeyRE.MatchString(l):
			key := topKeyRE.FindStringSubmatch(l)[1]
			ss = append(ss, sect{name: key, prose: trimBlank(pending), body: []string{l}})
			pending = nil
		default:
			if len(ss) == 0 {
				ss = append(ss, sect{}) // lines before any top-level key
			}
			flush()
			ss[len(ss)-1].body = append(ss[len(ss)-1].body, l)
		}
		afterBlank = false
	}
	var other []string
	for _, l := range trimBlank(pending) {
		if commentedKeyRE.MatchString(l) {
			other = append(other, strings.TrimPrefix(l, "# "))
		}
	}
	if len(other) != len(trimBlank(pending)) {
		flush() // not commented keys: leave them where they were
		other = nil
	}

	var b bytes.Buffer
	header(&b, "relay.yaml", "5", "configuration file of relay(8), the rsyslog to ZeroMQ relay")
	b.WriteString(".SH SYNOPSIS\n/etc/relay/relay.yaml\n.SH DESCRIPTION\n")
	comment(&b, intro)
	b.WriteString(".PP\nThe sections below are the embedded default configuration, as\n.B relay default\\-config\nprints it: every key with its default and meaning, commented out where the default applies.\n")
	for _, s := range ss {
		if s.name != "" {
			fmt.Fprintf(&b, ".SS %s\n", roffText(s.name))
		}
		comment(&b, s.prose)
		preformatted(&b, trimBlank(s.body), false)
	}
	if len(other) > 0 {
		b.WriteString(".SS Other settings\n")
		preformatted(&b, other, false)
	}
	b.WriteString(".SH FILES\n.TP\n\\fB/etc/relay/relay.yaml\\fR\nthe configuration relay.service runs with (a conffile of the Debian package); " +
		"check a change with \\fBrelay check \\-c /etc/relay/relay.yaml\\fR, then \\fBsystemctl reload relay\\fR.\n")
	seeAlso(&b, refs)
	return b.Bytes()
}

var (
	topKeyRE       = regexp.MustCompile(`^([a-z_]+):`)
	commentedKeyRE = regexp.MustCompile(`^# [a-z_]+:`)
)

// comment writes YAML comment lines as prose: "# text" lines are filled,
// lines indented past "# " are kept as they are.
func comment(b *bytes.Buffer, lines []string) {
	var text []string
	for _, l := range lines {
		l = strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ")
		if l == "" {
			if len(text) > 0 {
				prose(b, text)
				text = nil
			}
			continue
		}
		text = append(text, l)
	}
	if len(text) > 0 {
		prose(b, text)
	}
}

func trimBlank(lines []string) []string {
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}
