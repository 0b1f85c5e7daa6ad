package relp

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTxnrWrapSession: a client whose transaction numbers cross
// 999,999,999 → 1 (librelp wraps there) is served across the wrap: every
// frame is accepted (none refused as out of sequence), its event handed
// on in order, and every frame answered 200 OK in transaction order, also
// when the hand-offs complete out of order around the wrap.
func TestTxnrWrapSession(t *testing.T) {
	defer func(old int) { firstTxnr = old }(firstTxnr)
	firstTxnr = MaxTxnr - 3 // the open, then 3 frames before the wrap

	h := &holder{hold: true}
	srv := NewServer(Config{}, h.handle)
	cl := serve(t, srv)
	cl.txnr = firstTxnr
	cl.open()

	// Pipelined as omrelp sends: one write, a window of 8 frames that
	// crosses the wrap.
	const n = 8
	var want []int
	var frames strings.Builder
	for i := range n {
		want = append(want, cl.txnr)
		frames.Write(AppendFrame(nil, cl.txnr, CmdSyslog, []byte(fmt.Sprintf("<13>1 - h app - - - wrap %d\n", i))))
		cl.txnr = NextTxnr(cl.txnr)
	}
	if want[2] != MaxTxnr || want[3] != 1 {
		t.Fatalf("the frames' txnrs %v do not cross the wrap", want)
	}
	cl.raw(frames.String())
	waitFor(t, "every event", func() bool { return h.count() == n })
	for i, raw := range h.raws() {
		if w := fmt.Sprintf("<13>1 - h app - - - wrap %d", i); raw != w {
			t.Fatalf("event %d is %q, want %q", i, raw, w)
		}
	}
	// Hand off the frames after the wrap first, then those before it:
	// nothing may be answered before the oldest.
	h.release(3, n, nil)
	cl.silent(100 * time.Millisecond)
	h.release(0, 3, nil)
	for _, txnr := range want {
		cl.expect(txnr, "200 OK")
	}
	// The session goes on after the wrap: another frame and close.
	h.mu.Lock()
	h.hold = false
	h.mu.Unlock()
	cl.expect(cl.send(CmdSyslog, "after"), "200 OK")
	cl.expect(cl.send(CmdClose, ""), "200 OK")
	cl.eof()
	if err := <-cl.done; err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
	st := srv.Stats()
	if st.Acked != n+1 || badTotal(st.BadFrames) != 0 || st.Frames[CmdSyslog] != n+1 {
		t.Fatalf("stats: acked %d, syslog frames %d, bad frames %v; want %d, %d, none", st.Acked, st.Frames[CmdSyslog], st.BadFrames, n+1, n+1)
	}
	t.Logf("txnrs %v answered in order; then %d", want, NextTxnr(want[n-1]))
}

func badTotal(m map[Reason]uint64) (n uint64) {
	for _, v := range m {
		n += v
	}
	return n
}
