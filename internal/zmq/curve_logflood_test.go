package zmq

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer for a logger several goroutines write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestCurveRefusalsLogOnceASecond: clients whose keys the server does not
// list are each counted, but logged at most once a second, the next line
// saying how many were held back: any client could otherwise flood the
// relay's journal with a "handshake failed" warning per connection.
func TestCurveRefusalsLogOnceASecond(t *testing.T) {
	ss, _, sk, _ := curvePair(t)
	var logBuf lockedBuffer
	pull := NewPull(Options{Security: ss, Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	defer pull.Close()
	ep := bound(t, pull)
	const n = 10
	start := time.Now()
	for range n {
		stranger, err := NewCurveKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		push := NewPush(Options{Security: CurveClient(stranger, sk.Public)})
		defer push.Close()
		push.Dial(ep)
	}
	deadline := time.Now().Add(20 * time.Second)
	for pull.Stats().Curve[CurveUnknownKey] < n {
		if time.Now().After(deadline) {
			t.Fatalf("refusals counted: %+v", pull.Stats().Curve)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	lines := strings.Count(logBuf.String(), "handshake failed")
	if max := int(took/time.Second) + 2; lines < 1 || lines > max {
		t.Fatalf("%d refusals in %v logged %d lines, want 1..%d:\n%s", pull.Stats().Curve[CurveUnknownKey], took, lines, max, logBuf.String())
	}
	t.Logf("%d refusals in %v: %d log lines", pull.Stats().Curve[CurveUnknownKey], took.Round(time.Millisecond), lines)
}
