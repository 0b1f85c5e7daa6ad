package config_test

import (
	"testing"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/event"
)

// streamSpecs are stream.from values on both sides of every rule.
var streamSpecs = []string{
	"app-name", "msgid", "hostname", "facility", "severity", "programname", "", "app-name:",
	"sd:origin@32473.ip", "sd:meta.sequenceId", "sd:a.b.c", "sd:origin", "sd:.x", "sd:x.", "sd:a b.c", `sd:a"b.c`,
	"json:type", "json:event.kind", "json:", "json:a..b", "json:.a", "json:a.",
	`regex:type=(\w+)`, "regex:(a)(b)", "regex:(?:a)b", "regex:(", "regex:", "regex:()",
	"unknown:x",
}

// TestStreamFromAgreesWithEvent: the config accepts exactly the stream
// fields internal/event can build, so a valid config never fails at start.
func TestStreamFromAgreesWithEvent(t *testing.T) {
	for _, spec := range streamSpecs {
		cfgErr := config.CheckStreamFrom(spec)
		_, evErr := event.ParseField(spec)
		if (cfgErr == nil) != (evErr == nil) {
			t.Errorf("stream.from %q: config says %v, event.ParseField says %v", spec, cfgErr, evErr)
		}
	}
}

func FuzzStreamFrom(f *testing.F) {
	for _, s := range streamSpecs {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		cfgErr := config.CheckStreamFrom(spec)
		_, evErr := event.ParseField(spec)
		if (cfgErr == nil) != (evErr == nil) {
			t.Fatalf("stream.from %q: config says %v, event.ParseField says %v", spec, cfgErr, evErr)
		}
	})
}
