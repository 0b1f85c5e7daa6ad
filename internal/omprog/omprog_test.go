package omprog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// fakeSink records what it is given. block, when set, makes Send wait for
// a token (or ctx); flushes counts Flush calls and the messages seen by then.
type fakeSink struct {
	mu      sync.Mutex
	msgs    []string
	flushes []int
	block   chan struct{}
	waiting chan struct{} // gets a value each time Send starts waiting
}

func (f *fakeSink) Send(ctx context.Context, msg []byte) error {
	if f.block != nil {
		if f.waiting != nil && ctx.Err() == nil { // not the non-blocking try
			f.waiting <- struct{}{}
		}
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	f.msgs = append(f.msgs, string(msg))
	f.mu.Unlock()
	return nil
}

func (f *fakeSink) Flush(context.Context) error {
	f.mu.Lock()
	f.flushes = append(f.flushes, len(f.msgs))
	f.mu.Unlock()
	return nil
}

func (f *fakeSink) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.msgs...)
}

// syncBuf is a goroutine-safe bytes.Buffer for the status output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// statuses splits output the way omprog reads it: one line per status,
// leading keep-alive dots stripped.
func statuses(out string) []string {
	out = strings.TrimSuffix(out, "\n")
	if out == "" {
		return nil
	}
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimLeft(l, ".")
	}
	return lines
}

func serve(t *testing.T, input string, sink Sink, o Options) (string, *Server) {
	t.Helper()
	var out syncBuf
	s := NewServer(strings.NewReader(input), &out, sink, o)
	if err := s.Serve(context.Background()); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	return out.String(), s
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testpeer.Eventually(t, 10*time.Second, testpeer.Text(what), cond)
}

func TestProtocol(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		input    string
		statuses []string
		msgs     []string
		flushes  []int
	}{
		{
			name:  "fire and forget answers nothing",
			input: "a\nb\nc\n",
			msgs:  []string{"a", "b", "c"}, flushes: []int{3},
		},
		{
			name:     "confirm answers ready then one OK per message",
			opts:     Options{Confirm: true},
			input:    "a\nb\n",
			statuses: []string{"OK", "OK", "OK"},
			msgs:     []string{"a", "b"}, flushes: []int{2},
		},
		{
			name:     "transactions detected from the first line",
			opts:     Options{Confirm: true},
			input:    "BEGIN TRANSACTION\na\nb\nCOMMIT TRANSACTION\nBEGIN TRANSACTION\nc\nCOMMIT TRANSACTION\n",
			statuses: []string{"OK", "OK", "DEFER_COMMIT", "DEFER_COMMIT", "OK", "OK", "DEFER_COMMIT", "OK"},
			msgs:     []string{"a", "b", "c"}, flushes: []int{2, 3, 3},
		},
		{
			name:     "custom marks",
			opts:     Options{Confirm: true, BeginMark: "B", CommitMark: "C"},
			input:    "B\nx\nC\n",
			statuses: []string{"OK", "OK", "DEFER_COMMIT", "OK"},
			msgs:     []string{"x"}, flushes: []int{1, 1},
		},
		{
			name:     "transactions off sends marks as messages",
			opts:     Options{Confirm: true, Transactions: TxOff},
			input:    "BEGIN TRANSACTION\nCOMMIT TRANSACTION\n",
			statuses: []string{"OK", "OK", "OK"},
			msgs:     []string{"BEGIN TRANSACTION", "COMMIT TRANSACTION"}, flushes: []int{2},
		},
		{
			name:     "marks are messages when the first line is not a mark",
			opts:     Options{Confirm: true},
			input:    "x\nBEGIN TRANSACTION\n",
			statuses: []string{"OK", "OK", "OK"},
			msgs:     []string{"x", "BEGIN TRANSACTION"}, flushes: []int{2},
		},
		{
			name:  "transactions without confirmation",
			input: "BEGIN TRANSACTION\na\nCOMMIT TRANSACTION\n",
			msgs:  []string{"a"}, flushes: []int{1, 1},
		},
		{
			name:     "last line without LF is a message",
			opts:     Options{Confirm: true},
			input:    "a\nb",
			statuses: []string{"OK", "OK", "OK"},
			msgs:     []string{"a", "b"}, flushes: []int{2},
		},
		{
			name:     "empty lines are messages",
			opts:     Options{Confirm: true},
			input:    "\n\n",
			statuses: []string{"OK", "OK", "OK"},
			msgs:     []string{"", ""}, flushes: []int{2},
		},
		{
			name:     "oversize line is discarded and answered with an error, never OK",
			opts:     Options{Confirm: true, MaxLine: 4, BeginMark: "B", CommitMark: "C"},
			input:    "1234\n12345\nok\n",
			statuses: []string{"OK", "OK", tooLong(4), "OK"},
			msgs:     []string{"1234", "ok"}, flushes: []int{2},
		},
		{
			name:     "oversize line beyond the read buffer",
			opts:     Options{Confirm: true, MaxLine: 100 << 10},
			input:    "a\n" + strings.Repeat("x", 300<<10) + "\n" + strings.Repeat("y", 90<<10) + "\n",
			statuses: []string{"OK", "OK", tooLong(100 << 10), "OK"},
			msgs:     []string{"a", strings.Repeat("y", 90<<10)}, flushes: []int{2},
		},
		{
			name:     "oversize line in a transaction is answered with an error",
			opts:     Options{Confirm: true, MaxLine: 3, BeginMark: "B", CommitMark: "C"},
			input:    "B\nabcd\nabc\nC\n",
			statuses: []string{"OK", "OK", tooLong(3), "DEFER_COMMIT", "OK"},
			msgs:     []string{"abc"}, flushes: []int{1, 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &fakeSink{}
			out, _ := serve(t, tc.input, sink, tc.opts)
			if got := statuses(out); !slices.Equal(got, tc.statuses) {
				t.Errorf("statuses = %q, want %q", got, tc.statuses)
			}
			if got := sink.got(); !slices.Equal(got, tc.msgs) {
				t.Errorf("messages = %q, want %q", trunc(got), trunc(tc.msgs))
			}
			if len(sink.flushes) != len(tc.flushes) {
				t.Fatalf("flushes = %v, want %v", sink.flushes, tc.flushes)
			}
			for i := range tc.flushes {
				if sink.flushes[i] != tc.flushes[i] {
					t.Fatalf("flushes = %v, want %v", sink.flushes, tc.flushes)
				}
			}
		})
	}
}

// tooLong is the error line a line over max gets.
func tooLong(max int) string {
	return fmt.Sprintf("ERROR omprog: line too long: longer than %d bytes; lower rsyslog's maxMessageSize or raise --max-line (and the receiver's limit)", max)
}

func trunc(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		if len(v) > 20 {
			v = v[:20] + "…"
		}
		out[i] = v
	}
	return out
}

func TestStats(t *testing.T) {
	_, s := serve(t, "BEGIN TRANSACTION\na\n"+strings.Repeat("x", 20)+"\nCOMMIT TRANSACTION\n", &fakeSink{}, Options{Confirm: true, MaxLine: 18})
	want := Stats{Lines: 4, Messages: 1, Oversize: 1, Transactions: 1}
	if got := s.Stats(); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

// A message waiting for a peer keeps omprog's confirmTimeout from firing
// with dots, and the status follows the dots on the same line.
func TestKeepAliveWhileWaiting(t *testing.T) {
	sink := &fakeSink{block: make(chan struct{}), waiting: make(chan struct{}, 1)}
	pr, pw := io.Pipe()
	var out syncBuf
	s := NewServer(pr, &out, sink, Options{Confirm: true, KeepAlive: 20 * time.Millisecond, MaxWait: -1})
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()

	go func() { _, _ = io.WriteString(pw, "a\n") }()
	<-sink.waiting
	eventually(t, "keep-alive dots", func() bool { return strings.Count(out.String(), ".") >= 2 })
	if got := out.String(); strings.Contains(got[len("OK\n"):], "OK") {
		t.Fatalf("confirmed before the hand-off: %q", got)
	}
	sink.block <- struct{}{}
	eventually(t, "the confirmation", func() bool { return strings.HasSuffix(out.String(), "OK\n") && len(statuses(out.String())) == 2 })
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out1 := out.String()
	if got := statuses(out1); !slices.Equal(got, []string{"OK", "OK"}) {
		t.Fatalf("statuses = %q", got)
	}
	if !strings.HasPrefix(out1, "OK\n..") {
		t.Fatalf("output = %q, want dots before the second OK", out1)
	}
	if s.Stats().KeepAlives < 2 {
		t.Fatalf("KeepAlives = %d", s.Stats().KeepAlives)
	}
}

// After MaxWait the message is answered with an error line so rsyslog
// suspends the action and retries it; the next message goes through.
func TestMaxWaitAnswersError(t *testing.T) {
	sink := &fakeSink{block: make(chan struct{})}
	pr, pw := io.Pipe()
	var out syncBuf
	s := NewServer(pr, &out, sink, Options{Confirm: true, MaxWait: 30 * time.Millisecond, KeepAlive: time.Hour})
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	_, _ = io.WriteString(pw, "lost\n")
	eventually(t, "the error line", func() bool { return len(statuses(out.String())) == 2 })
	st := statuses(out.String())[1]
	if !strings.HasPrefix(st, "ERROR ") || !strings.Contains(st, ErrNotHandedOff.Error()) {
		t.Fatalf("status = %q, want an ERROR line naming %v", st, ErrNotHandedOff)
	}
	close(sink.block) // the peer is back
	_, _ = io.WriteString(pw, "retried\n")
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := statuses(out.String()); !slices.Equal(got[2:], []string{"OK"}) {
		t.Fatalf("statuses = %q", got)
	}
	if got := sink.got(); !slices.Equal(got, []string{"retried"}) {
		t.Fatalf("messages = %q: the failed one must not be handed off", got)
	}
	if st := s.Stats(); st.Failed != 1 || st.Messages != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}

// Cancelling leaves the in-flight message unconfirmed: rsyslog retries it.
func TestCancelLeavesMessageUnconfirmed(t *testing.T) {
	sink := &fakeSink{block: make(chan struct{}), waiting: make(chan struct{}, 1)}
	pr, pw := io.Pipe()
	defer pw.Close()
	var out syncBuf
	s := NewServer(pr, &out, sink, Options{Confirm: true, MaxWait: -1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	go func() { _, _ = io.WriteString(pw, "a\n") }()
	<-sink.waiting
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v, want context.Canceled", err)
	}
	if got := out.String(); got != "OK\n" {
		t.Fatalf("output = %q, want only the ready OK", got)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteErrorEndsServe(t *testing.T) {
	s := NewServer(strings.NewReader("a\n"), failWriter{}, &fakeSink{}, Options{Confirm: true})
	if err := s.Serve(context.Background()); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Serve = %v, want the write error", err)
	}
}

func TestErrorLineIsOneLine(t *testing.T) {
	l := errorLine(errors.New("a\nb\rc" + strings.Repeat("x", 5000)))
	if strings.Count(l, "\n") != 1 || !strings.HasSuffix(l, "\n") || strings.Contains(l, "\r") || len(l) > 1100 {
		t.Fatalf("errorLine = %q…", l[:40])
	}
}

func TestDetectConfirm(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(dir + "/out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	same, err := DetectConfirm(f, f)
	if err != nil || same {
		t.Fatalf("same file: confirm = %v, %v; want false", same, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	got, err := DetectConfirm(w, f)
	if err != nil || !got {
		t.Fatalf("pipe vs file: confirm = %v, %v; want true", got, err)
	}
}

// deadlineSink records whether each call's ctx carried a deadline.
type deadlineSink struct{ sends, flushes []bool }

func (d *deadlineSink) Send(ctx context.Context, _ []byte) error {
	if err := ctx.Err(); err != nil {
		return err // refuse the non-blocking try, to see the real call
	}
	_, ok := ctx.Deadline()
	d.sends = append(d.sends, ok)
	return nil
}

func (d *deadlineSink) Flush(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, ok := ctx.Deadline()
	d.flushes = append(d.flushes, ok)
	return nil
}

// MaxWait bounds every message (rsyslog re-submits a transaction from the
// failing message on) but a commit only while nothing of its transaction
// is out (a failed commit makes rsyslog resend the whole transaction).
func TestMaxWaitOnlyWhereFailingIsSafe(t *testing.T) {
	d := &deadlineSink{}
	serve(t, "BEGIN TRANSACTION\na\nb\nCOMMIT TRANSACTION\nBEGIN TRANSACTION\nCOMMIT TRANSACTION\n", d, Options{Confirm: true, MaxWait: time.Minute})
	if want := []bool{true, true}; !slices.Equal(d.sends, want) {
		t.Errorf("send deadlines = %v, want %v", d.sends, want)
	}
	// commit after handed-off messages: unbounded; empty commit: bounded;
	// the flush at EOF has the close timeout.
	if want := []bool{false, true, true}; !slices.Equal(d.flushes, want) {
		t.Errorf("flush deadlines = %v, want %v", d.flushes, want)
	}
	d = &deadlineSink{}
	serve(t, "a\nb\n", d, Options{Confirm: true, MaxWait: time.Minute})
	if want := []bool{true, true}; !slices.Equal(d.sends, want) {
		t.Errorf("without transactions: send deadlines = %v, want %v", d.sends, want)
	}
	d = &deadlineSink{}
	serve(t, "a\n", d, Options{MaxWait: time.Minute})
	if want := []bool{false}; !slices.Equal(d.sends, want) {
		t.Errorf("fire-and-forget: send deadlines = %v, want %v", d.sends, want)
	}
}

func TestFlushEach(t *testing.T) {
	sink := &fakeSink{}
	out, _ := serve(t, "BEGIN TRANSACTION\na\nb\nCOMMIT TRANSACTION\n", sink, Options{Confirm: true, FlushEach: true})
	if got := statuses(out); !slices.Equal(got, []string{"OK", "OK", "DEFER_COMMIT", "DEFER_COMMIT", "OK"}) {
		t.Fatalf("statuses %q", got)
	}
	// one flush after each message (seeing it), one at commit, one at EOF
	if want := []int{1, 2, 2, 2}; len(sink.flushes) != len(want) || sink.flushes[0] != 1 || sink.flushes[1] != 2 {
		t.Fatalf("flushes = %v, want %v", sink.flushes, want)
	}
	d := &deadlineSink{}
	serve(t, "a\n", d, Options{Confirm: true, FlushEach: true, MaxWait: time.Minute})
	if want := []bool{false, true}; !slices.Equal(d.flushes, want) {
		t.Fatalf("flush deadlines = %v, want %v: the flush after a hand-off is unbounded", d.flushes, want)
	}
}
