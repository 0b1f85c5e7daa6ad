package broker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// TestJetStreamStartFailureSaysWhatToChange: a start that fails (no stream
// takes the subjects; create_stream asks for more replicas than a server
// that is not in a cluster can hold) says what to change, and does not
// also log that a running output lost its connection, as it did when the
// failed start closed its own connection.
func TestJetStreamStartFailureSaysWhatToChange(t *testing.T) {
	srv := testpeer.StartNATS(t, testpeer.NATSOptions{})
	for _, c := range []struct {
		name   string
		create *StreamSpec
		want   []string
	}{
		{"no stream", nil, []string{"nats stream add EVENTS", "--replicas 1 on a single server", "create_stream"}},
		{"replicas on one server", &StreamSpec{Name: "EVENTS", Replicas: 3}, []string{"set create_stream.replicas to 1 (it is 3)", "cluster of at least 3 servers"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			id, err := SpoolID(dir)
			if err != nil {
				t.Fatal(err)
			}
			log, buf := captureLogger(t)
			_, err = NewJetStream(JetStreamConfig{Name: "x", Servers: []string{srv.URL()}, Subject: "events.{stream}", SpoolID: id, Create: c.create, Logger: log})
			if err == nil {
				t.Fatal("NewJetStream succeeded")
			}
			if c.create == nil && !errors.Is(err, ErrNoStream) {
				t.Errorf("err %v, want ErrNoStream", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q does not say %q", err, w)
				}
			}
			// nats.go runs the closed handler on its own goroutine.
			time.Sleep(300 * time.Millisecond)
			if strings.Contains(buf.String(), "closed while the output runs") {
				t.Errorf("a failed start logged that a running output lost its connection:\n%s", buf.String())
			}
		})
	}
}
