package omprog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
)

// batchSink keeps the slices it is given (as a ZeroMQ queue does), so a
// reader that reused its buffer would show up as changed messages.
type batchSink struct {
	fakeSink
	kept    [][]byte
	batches int
	fail    error // returned after taking half of each batch
}

func (b *batchSink) SendBatch(_ context.Context, msgs [][]byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches++
	n := len(msgs)
	if b.fail != nil {
		n /= 2
	}
	b.kept = append(b.kept, msgs[:n]...)
	if b.fail != nil {
		return n, b.fail
	}
	return n, nil
}

func (b *batchSink) keptStrings() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, len(b.kept))
	for i, m := range b.kept {
		out[i] = string(m)
	}
	return out
}

// Fire-and-forget hands lines over in batches, without copies, across
// chunk boundaries (input far larger than one chunk, read in odd sizes),
// and the last line may lack its LF.
func TestBatchesKeepEveryLine(t *testing.T) {
	var in strings.Builder
	var want []string
	for i := range 20000 {
		l := fmt.Sprintf("impression <14>1 host app - - - msgnum:%08d %s", i, strings.Repeat("x", i%97))
		want = append(want, l)
		in.WriteString(l + "\n")
	}
	want = append(want, "last without LF")
	in.WriteString("last without LF")
	sink := &batchSink{}
	s := NewServer(iotest.HalfReader(strings.NewReader(in.String())), io.Discard, sink, Options{})
	if err := s.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := sink.keptStrings()
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d: got %q, want %q", i, got[i], want[i])
		}
	}
	if sink.batches < 2 || sink.batches > len(want)/10 {
		t.Fatalf("%d batches for %d lines: not batched", sink.batches, len(want))
	}
	st := s.Stats()
	if st.Lines != uint64(len(want)) || st.Messages != uint64(len(want)) {
		t.Fatalf("stats %+v", st)
	}
	if len(sink.got()) != 0 {
		t.Fatal("Send was used instead of SendBatch")
	}
}

// Transaction marks are dropped (nothing to answer), oversize lines are
// discarded and counted, also when they span chunks.
func TestBatchesMarksAndOversize(t *testing.T) {
	long := strings.Repeat("y", 600<<10) // over two chunks
	input := "BEGIN TRANSACTION\na\n" + long + "\nb\nCOMMIT TRANSACTION\nBEGIN TRANSACTION\n" +
		strings.Repeat("z", 100) + "\nc\nCOMMIT TRANSACTION\n"
	sink := &batchSink{}
	s := NewServer(strings.NewReader(input), io.Discard, sink, Options{MaxLine: 64})
	if err := s.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := sink.keptStrings(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("got %q", got)
	}
	if st := s.Stats(); st.Oversize != 2 || st.Lines != 9 || st.Messages != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// A sink error is logged and counted, and reading goes on.
func TestBatchesSinkError(t *testing.T) {
	sink := &batchSink{fail: errors.New("no peer")}
	s := NewServer(strings.NewReader("a\nb\nc\nd\n"), io.Discard, sink, Options{})
	if err := s.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Messages != 2 || st.Failed != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// finalSink fails its first Send with an error that is not "would block".
type finalSink struct {
	mu    sync.Mutex
	sends int
}

func (f *finalSink) Send(context.Context, []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sends++
	if f.sends == 1 {
		return errors.New("write to peer: connection reset")
	}
	return nil
}

func (f *finalSink) Flush(context.Context) error { return nil }

// A Send that fails for a reason other than its done context is not tried
// again: rsyslog gets the error line and retries the message itself.
func TestFinalErrorNotRetried(t *testing.T) {
	f := &finalSink{}
	out, s := serve(t, "a\nb\n", f, Options{Confirm: true})
	got := statuses(out)
	if len(got) != 3 || got[0] != "OK" || !strings.HasPrefix(got[1], "ERROR ") || got[2] != "OK" {
		t.Fatalf("statuses %q", got)
	}
	if f.sends != 2 || s.Stats().Failed != 1 {
		t.Fatalf("%d sends, %d failed; want 2, 1", f.sends, s.Stats().Failed)
	}
}
