package output

import (
	"testing"

	"github.com/rsyslog-zmq/relay/internal/config"
)

// TestAckWindowDefault: the default window holds DefaultAckEvents events
// (at least 16 batches), and the relay's config fills in the same one.
func TestAckWindowDefault(t *testing.T) {
	for _, tc := range []struct{ batch, window int }{
		{0, 160}, {1, 4096}, {100, 160}, {1000, 16}, {50, 320}, {10, 1600}, {16000, 16}, {1 << 20, 16},
	} {
		if got := AckWindowFor(tc.batch); got != tc.window {
			t.Errorf("AckWindowFor(%d) = %d, want %d", tc.batch, got, tc.window)
		}
		if tc.batch > 0 && tc.batch <= config.MaxAckBatch && config.AckWindowFor(tc.batch) != tc.window {
			t.Errorf("config.AckWindowFor(%d) = %d, want %d", tc.batch, config.AckWindowFor(tc.batch), tc.window)
		}
	}
	if DefaultAckEvents != config.DefaultAckEvents || DefaultAckWindow != config.DefaultAckWindow {
		t.Errorf("output and config disagree on the default window")
	}
}
