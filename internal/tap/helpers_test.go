package tap

import (
	"fmt"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/event"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testpeer.Eventually(t, within, testpeer.Text(what), cond)
}

// testEvent builds an RFC 5424 event with the stream as app-name and a
// user id in structured data.
func testEvent(stream string, seq int, user string) *event.Event {
	raw := fmt.Sprintf(`<14>1 2026-11-22T05:00:00.000Z host1 %s 100 - [u@32473 id="%s"] message %d`, stream, user, seq)
	ev := event.New([]byte(raw))
	ev.Stream = stream
	return ev
}
