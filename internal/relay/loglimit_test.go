package relay

import (
	"testing"
	"time"
)

func TestLogLimiterOneLineASecond(t *testing.T) {
	var l logLimiter
	t0 := time.Unix(1000, 0)
	if n, ok := l.allow(t0); !ok || n != 0 {
		t.Fatalf("first line: %d, %v", n, ok)
	}
	for i := range 5 {
		if _, ok := l.allow(t0.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatalf("line %d within the second let through", i)
		}
	}
	if n, ok := l.allow(t0.Add(time.Second)); !ok || n != 5 {
		t.Fatalf("after a second: suppressed %d, ok %v; want 5, true", n, ok)
	}
}
