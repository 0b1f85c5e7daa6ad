package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestOneLineASecond: a burst logs its first line; the next line after
// the second is over carries how many were held back.
func TestOneLineASecond(t *testing.T) {
	var buf bytes.Buffer
	w := Warner{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); w.Warn("bad frame", "peer", "p") }()
	}
	wg.Wait()
	if n := strings.Count(buf.String(), "bad frame"); n != 1 {
		t.Fatalf("%d lines for a burst of 100, want 1:\n%s", n, buf.String())
	}
	w.last = time.Now().Add(-time.Second) // the second is over
	w.Warn("bad frame", "peer", "q")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "peer=q suppressed=99") || !strings.Contains(lines[1], "level=WARN") {
		t.Fatalf("second line %q, want the 99 held back", lines[len(lines)-1])
	}
}
