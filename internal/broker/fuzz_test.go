package broker

import (
	"strings"
	"testing"
)

// FuzzParseReplaySource: no source URL makes it panic; an accepted one
// names a server without a path and a stream without a slash.
func FuzzParseReplaySource(f *testing.F) {
	for _, s := range []string{"nats://127.0.0.1:4222/EVENTS", "nats://u:p@h:4222/S", "tls://h/S", "nats://h", "tcp://h/S", "nats://h:4222/a/b", "nats://%zz/S", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		server, stream, err := ParseReplaySource(src)
		if err != nil {
			return
		}
		if stream == "" || strings.Contains(stream, "/") || server == "" {
			t.Fatalf("%q gave server %q stream %q", src, server, stream)
		}
		if !strings.HasPrefix(server, "nats://") && !strings.HasPrefix(server, "tls://") {
			t.Fatalf("%q gave server %q", src, server)
		}
	})
}
