package event

import (
	"fmt"
	"regexp"
	"strings"
)

// Field extracts one value from an event, e.g. to derive its stream.
type Field interface {
	// Get returns the value and whether the event has it. Header fields
	// (app-name, msgid, hostname, facility, severity) do not allocate:
	// their strings are interned.
	Get(e *Event) (string, bool)
}

const fieldHelp = "use app-name, msgid, hostname, facility, severity, " +
	"sd:ID.param (e.g. sd:origin@32473.ip), json:path (e.g. json:user.name) or regex:EXPR with one capture group"

// ParseField parses a field spec:
//
//	app-name        rsyslog's %app-name%: APP-NAME, or the programname for RFC 3164
//	msgid           MSGID (RFC 5424)
//	hostname        HOSTNAME
//	facility        facility name as rsyslog spells it: kern, user, …, local7
//	severity        severity name: emerg, alert, crit, err, warning, notice, info, debug
//	sd:ID.param     a structured data parameter; the ID ends at the last '.'
//	json:path       a member of a JSON message body (an "@cee:" prefix is
//	                allowed); dots separate nested object keys
//	regex:EXPR      the first capture group of EXPR (RE2 syntax) in the raw message
func ParseField(spec string) (Field, error) {
	kind, arg, hasArg := strings.Cut(spec, ":")
	if !hasArg {
		switch spec {
		case "app-name":
			return headerField{spec, (*Header).AppName}, nil
		case "msgid":
			return headerField{spec, (*Header).MsgID}, nil
		case "hostname":
			return headerField{spec, (*Header).Hostname}, nil
		case "facility":
			return facilityField{}, nil
		case "severity":
			return severityField{}, nil
		}
		return nil, fmt.Errorf("%w %q: unknown field; %s", ErrBadField, spec, fieldHelp)
	}
	switch kind {
	case "sd":
		dot := strings.LastIndexByte(arg, '.')
		if dot <= 0 || dot == len(arg)-1 {
			return nil, fmt.Errorf("%w %q: want sd:ID.param, e.g. sd:origin@32473.ip", ErrBadField, spec)
		}
		id, param := arg[:dot], arg[dot+1:]
		if !validSDName(id) || !validSDName(param) {
			return nil, fmt.Errorf("%w %q: an SD-ID or param name is printable ASCII without space, '=', ']' or '\"'", ErrBadField, spec)
		}
		return sdField{spec: spec, id: []byte(id), param: []byte(param)}, nil
	case "json":
		if arg == "" {
			return nil, fmt.Errorf("%w %q: want json:path, e.g. json:user.name", ErrBadField, spec)
		}
		path := strings.Split(arg, ".")
		for _, p := range path {
			if p == "" {
				return nil, fmt.Errorf("%w %q: empty key in path; want json:key or json:outer.inner", ErrBadField, spec)
			}
		}
		return jsonField{spec: spec, path: path}, nil
	case "regex":
		re, err := regexp.Compile(arg)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrBadField, spec, err)
		}
		if re.NumSubexp() < 1 {
			return nil, fmt.Errorf("%w %q: no capture group; wrap the part to extract in (...), e.g. regex:user=(\\w+)", ErrBadField, spec)
		}
		return regexField{spec: spec, re: re}, nil
	}
	return nil, fmt.Errorf("%w %q: unknown field; %s", ErrBadField, spec, fieldHelp)
}

func validSDName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '=' || c == ']' || c == '"' {
			return false
		}
	}
	return s != ""
}

type headerField struct {
	spec string
	get  func(*Header) []byte
}

func (f headerField) Get(e *Event) (string, bool) {
	v := f.get(e.Header())
	return Intern(v), len(v) > 0
}

func (f headerField) String() string { return f.spec }

// facilityNames are rsyslog's %syslogfacility-text% names.
var facilityNames = [...]string{
	"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "ntp", "audit", "alert", "clock",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
}

// severityNames are rsyslog's %syslogseverity-text% names.
var severityNames = [...]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// FacilityName returns rsyslog's name of facility f (e.g. "local0"), or
// "invld" like rsyslog for numbers out of range.
func FacilityName(f uint8) string {
	if int(f) < len(facilityNames) {
		return facilityNames[f]
	}
	return "invld"
}

// SeverityName returns rsyslog's name of severity s (e.g. "warning").
func SeverityName(s uint8) string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return "invld"
}

type facilityField struct{}

func (facilityField) Get(e *Event) (string, bool) {
	h := e.Header()
	if !h.HasPRI {
		return "", false
	}
	return FacilityName(h.Facility()), true
}

func (facilityField) String() string { return "facility" }

type severityField struct{}

func (severityField) Get(e *Event) (string, bool) {
	h := e.Header()
	if !h.HasPRI {
		return "", false
	}
	return SeverityName(h.Severity()), true
}

func (severityField) String() string { return "severity" }

type sdField struct {
	spec      string
	id, param []byte
}

func (f sdField) Get(e *Event) (string, bool) {
	v, ok := sdLookup(e.Header().SD(), f.id, f.param)
	if !ok {
		return "", false
	}
	return Intern(sdUnescape(v)), true
}

func (f sdField) String() string { return f.spec }

type jsonField struct {
	spec string
	path []string
}

func (f jsonField) Get(e *Event) (string, bool) {
	return jsonLookup(e.Header().Msg(), f.path)
}

func (f jsonField) String() string { return f.spec }

type regexField struct {
	spec string
	re   *regexp.Regexp
}

func (f regexField) Get(e *Event) (string, bool) {
	m := f.re.FindSubmatchIndex(e.Raw)
	if m == nil || m[2] < 0 {
		return "", false
	}
	return Intern(e.Raw[m[2]:m[3]]), true
}

func (f regexField) String() string { return f.spec }
