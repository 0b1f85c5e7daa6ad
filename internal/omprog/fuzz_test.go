package omprog

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// FuzzServe feeds arbitrary input to the protocol and checks what rsyslog
// relies on: exactly one status per line after the ready OK, and every
// non-mark line handed to the sink once, in order.
func FuzzServe(f *testing.F) {
	f.Add("a\nb\n", false)
	f.Add("BEGIN TRANSACTION\nx\nCOMMIT TRANSACTION\n", false)
	f.Add("BEGIN TRANSACTION\nBEGIN TRANSACTION\nCOMMIT TRANSACTION\nCOMMIT TRANSACTION\n", false)
	f.Add("x\r\n\n\nlast", true)
	f.Fuzz(func(t *testing.T, input string, txOff bool) {
		o := Options{Confirm: true, MaxLine: 64}
		if txOff {
			o.Transactions = TxOff
		}
		sink := &fakeSink{}
		var out syncBuf
		s := NewServer(strings.NewReader(input), &out, sink, o)
		if err := s.Serve(context.Background()); err != nil {
			t.Fatalf("Serve: %v", err)
		}
		lines := strings.Split(input, "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		st := statuses(out.String())
		if len(st) != len(lines)+1 {
			t.Fatalf("%d statuses for %d lines: %q", len(st), len(lines), st)
		}
		tx := !txOff && len(lines) > 0 && lines[0] == DefaultBeginMark
		var want []string
		for i, l := range lines {
			status := st[i+1]
			switch {
			case tx && (l == DefaultBeginMark || l == DefaultCommitMark):
				if status != "OK" {
					t.Fatalf("mark %q answered %q", l, status)
				}
				continue
			case len(l) > 64:
				// discarded, and never confirmed
				if !strings.HasPrefix(status, "ERROR ") {
					t.Fatalf("oversize line answered %q, want an error", status)
				}
				continue
			default:
				want = append(want, l)
			}
			if wantSt := map[bool]string{true: "DEFER_COMMIT", false: "OK"}[tx]; status != wantSt {
				t.Fatalf("line %q answered %q, want %q", l, status, wantSt)
			}
		}
		if got := sink.got(); !slices.Equal(got, want) {
			t.Fatalf("sink got %q, want %q", got, want)
		}
	})
}
