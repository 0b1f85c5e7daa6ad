package link

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/spool"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// curvePair returns a receiver (CURVE server admitting one sender key)
// and a sender (CURVE client of that server), and the keys.
func curvePair(t testing.TB) (server, client linkSec, srv, cli zmq.CurveKeyPair) {
	t.Helper()
	var err error
	if srv, err = zmq.NewCurveKeyPair(); err != nil {
		t.Fatal(err)
	}
	if cli, err = zmq.NewCurveKeyPair(); err != nil {
		t.Fatal(err)
	}
	server = linkSec{zmq: zmq.CurveServer(srv, zmq.CurveKeySet{cli.Public: {}})}
	client = linkSec{zmq: zmq.CurveClient(cli, srv.Public)}
	return server, client, srv, cli
}

// TestCurveExactlyOnceThroughResets: the link over CURVE (no TLS) through
// a proxy that resets it twice and a receiver restart: every record
// reaches the receiver's handler exactly once, each new session runs a
// new CURVE handshake, and the spool is fully acknowledged.
func TestCurveExactlyOnceThroughResets(t *testing.T) {
	const n = 30000
	server, client, _, _ := curvePair(t)
	sdir, rdir := t.TempDir(), t.TempDir()
	sp, err := spool.Open(spool.Options{Dir: sdir, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	id, err := LoadID(sdir)
	if err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	col.delay = 2 * time.Millisecond // acks trail the data, so resets catch batches in flight
	raddr := freeAddr(t)
	rcv := startReceiverSec(t, rdir, raddr, server, col.handle)
	px, err := testpeer.NewProxy(raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	snd, stop := startSenderSec(t, sp, id, client, px.Addr())
	defer stop()

	var appended atomic.Int64
	go func() {
		for i := 1; i <= n; i += 1000 {
			appendN(t, sp, i, min(n, i+999))
			appended.Store(int64(min(n, i+999)))
			time.Sleep(40 * time.Millisecond)
		}
	}()
	progress := func(k int) {
		eventually(t, 30*time.Second, func() string { return fmt.Sprintf("collector has %d of %d", col.count(), k) },
			func() bool { return col.count() >= k })
	}
	// cut resets the link while the collector holds the hand-offs of
	// what reaches it, so at least one batch is surely unacknowledged at
	// the cut: the 2 ms delay alone caught nothing in flight on a quiet
	// machine (the acks had all come back between the feeder's chunks).
	cut := func(k int) {
		hold := make(chan struct{})
		col.mu.Lock()
		col.hold = hold
		col.mu.Unlock()
		progress(max(k, col.count()+1))
		px.Reset()
		col.mu.Lock()
		col.hold = nil
		col.mu.Unlock()
		close(hold)
	}
	cut(5000)
	cut(12000)
	progress(18000)
	stopReceiver(t, rcv)
	suppressed := rcv.Stats().Suppressed
	rcv = startReceiverSec(t, rdir, raddr, server, col.handle)
	defer stopReceiver(t, rcv)
	progress(n)
	eventually(t, 10*time.Second, func() string { return fmt.Sprintf("spool still holds %d records", sp.Stats().Records) },
		func() bool { return sp.Stats().Records == 0 })
	missing, dups := col.tally(n)
	st, rs := snd.Stats(), rcv.Stats()
	suppressed += rs.Suppressed
	t.Logf("sender: sessions %d, resent %d records, skipped %d; receivers suppressed %d duplicates; refusals %v / %v",
		st.Sessions, st.ResentRecords, st.SkippedRecords, suppressed, st.Refused, rs.Refused)
	if missing != 0 || dups != 0 {
		t.Fatalf("%d missing, %d duplicated", missing, dups)
	}
	if st.Sessions < 4 {
		t.Errorf("only %d sessions: the resets did not cut", st.Sessions)
	}
	if st.ResentRecords+st.SkippedRecords == 0 {
		t.Errorf("the cuts caught nothing in flight")
	}
	if len(st.Refused) != 0 || len(rs.Refused) != 0 {
		t.Errorf("refusals on a good key pair: sender %v, receiver %v", st.Refused, rs.Refused)
	}
}

// TestCurveRefusals: a sender whose key the receiver does not list, and a
// sender that names the wrong server key, are refused; each end counts
// the refusal by its reason and no session starts. A NULL sender is
// refused by a CURVE receiver. Then the right keys get through.
func TestCurveRefusals(t *testing.T) {
	server, client, srv, _ := curvePair(t)
	stranger, _ := zmq.NewCurveKeyPair()
	otherServer, _ := zmq.NewCurveKeyPair()
	cases := []struct {
		name     string
		sender   linkSec
		sReason  string // counted by the sender
		rReason  string // counted by the receiver
		insecure bool
	}{
		{"unlisted sender key", linkSec{zmq: zmq.CurveClient(stranger, srv.Public)}, CurveReasonPrefix + zmq.CurveRefused, CurveReasonPrefix + zmq.CurveUnknownKey, false},
		{"wrong server key", linkSec{zmq: zmq.CurveClient(stranger, otherServer.Public)}, CurveReasonPrefix + zmq.CurveNoWelcome, CurveReasonPrefix + zmq.CurveBadBox, false},
		{"NULL sender", linkSec{}, ReasonMechanism, CurveReasonPrefix + zmq.CurveMalformed, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			col := newCollector()
			raddr := freeAddr(t)
			rcv := startReceiverSec(t, t.TempDir(), raddr, server, col.handle)
			defer stopReceiver(t, rcv)
			var id SenderID
			id[0] = 1
			s, err := NewSender(SenderConfig{Name: "t", Connect: []string{"tcp://" + raddr}, Security: c.sender.zmq, ID: id, AllowInsecure: c.insecure,
				ReconnectMin: 50 * time.Millisecond, ReconnectMax: 50 * time.Millisecond, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(context.Background())
			eventually(t, 10*time.Second, func() string {
				return fmt.Sprintf("sender refusals %v, receiver %v", s.Stats().Refused, rcv.Stats().Refused)
			}, func() bool {
				return s.Stats().Refused[c.sReason] >= 2 && rcv.Stats().Refused[c.rReason] >= 2
			})
			if st := s.Stats(); st.Sessions != 0 || rcv.Stats().SessionsTotal != 0 || col.count() != 0 {
				t.Fatalf("a session started: sender %d, receiver %d", st.Sessions, rcv.Stats().SessionsTotal)
			}
			if e := s.Stats().Endpoints[0].LastError; e == "" {
				t.Fatal("the endpoint shows no error")
			} else {
				t.Logf("sender's last error: %s", e)
			}
		})
	}
	// The right keys get through.
	col := newCollector()
	raddr := freeAddr(t)
	rcv := startReceiverSec(t, t.TempDir(), raddr, server, col.handle)
	defer stopReceiver(t, rcv)
	sp := spool.NewMemory(spool.Options{})
	var id SenderID
	id[0] = 2
	_, stop := startSenderSec(t, sp, id, client, raddr)
	defer stop()
	appendN(t, sp, 1, 100)
	eventually(t, 10*time.Second, func() string { return fmt.Sprint(col.count()) }, func() bool { return col.count() == 100 })
}

// TestCurveCountsAsSecure: CURVE passes the check that refuses a link
// without TLS on a non-loopback address, on both ends; NULL does not.
func TestCurveCountsAsSecure(t *testing.T) {
	server, client, _, _ := curvePair(t)
	var id SenderID
	id[0] = 3
	s, err := NewSender(SenderConfig{Name: "t", Connect: []string{"tcp://192.0.2.1:6000"}, Security: client.zmq, ID: id, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("a CURVE sender to a non-loopback address: %v", err)
	}
	s.Close(context.Background())
	if _, err := NewReceiver(ReceiverConfig{Name: "r", Listen: []string{"tcp://0.0.0.0:0"}, Security: server.zmq, StateDir: t.TempDir()}); err != nil {
		t.Fatalf("a CURVE receiver on 0.0.0.0: %v", err)
	}
	if _, err := NewSender(SenderConfig{Name: "t", Connect: []string{"tcp://192.0.2.1:6000"}, ID: id}); err == nil {
		t.Fatal("a NULL sender to a non-loopback address was accepted")
	}
}
