package relay

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// The README's path "omrelp → relay → acknowledged PUSH (ack:)" end to
// end: rsyslogd's omrelp sends to the relay's RELP input, whose only
// output is acknowledged; Go ackworkers pass the events on to a sink and
// acknowledge what they have written; one worker is killed with SIGKILL
// while it holds batches it has not acknowledged.

// feedRsyslogPadded sends events msgnum first..first+n-1, each with pad
// bytes of filler, to rsyslogd's imtcp, octet-counted, in a few
// connections.
func feedRsyslogPadded(t testing.TB, rs *testpeer.Rsyslogd, app string, first, n, pad int) {
	t.Helper()
	const chunk = 5000
	filler := strings.Repeat("x", pad)
	addr := fmt.Sprintf("127.0.0.1:%d", rs.Port)
	for i := first; i < first+n; i += chunk {
		msgs := make([]string, 0, chunk)
		for j := i; j < min(i+chunk, first+n); j++ {
			msgs = append(msgs, fmt.Sprintf("<14>1 2026-12-07T12:00:00.000000Z e2ehost %s 42 ID7 - %s %s", app, testpeer.Numbered(j), filler))
		}
		sendTCP(t, addr, true, msgs)
	}
}

// omrelpTrouble matches what rsyslogd prints when omrelp's session
// breaks or its action is suspended.
var omrelpTrouble = regexp.MustCompile(`(?i)omrelp|librelp|suspended|error`)

// TestRELPAckPushKillWorker: omrelp (windowSize 1024, LinkedList queue,
// resumeRetryCount -1) → relay RELP → acknowledged PUSH (batch 100, window
// 8, timeout 3s) → two Go ackworkers → a sink that records every copy.
// The sink is held so the pipeline backs up; then the worker that, by its
// report, took batches it has not acknowledged is killed with SIGKILL.
//
// Proves: every event reaches the sink (0 lost); the batches the dead
// worker held arrive resent; omrelp saw no error (one session, every
// frame sent once and answered, nothing printed by rsyslogd).
//
// Duplicates against relay_output_ack_events_resent_total (R): the
// counter is an upper bound. Each event's first copy is sent once (the
// test checks no event has two unflagged copies), and every extra copy at
// the sink is a resent copy, so duplicates = r - o, where r is the resent
// copies that reached the sink and o the events whose only copies are
// resent ones (their first copy died with the worker, unpassed). R - r is
// the resent copies that never reached the sink (sent to the dying
// worker). The test asserts r <= R and duplicates = r - o, and logs all.
// Rounds: RELP_ACK_KILL_ROUNDS (default 1).
func TestRELPAckPushKillWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("real rsyslogd and Go ackworkers")
	}
	rounds := envPositive(t, "RELP_ACK_KILL_ROUNDS", 1)
	goBin := buildPipeline(t)
	for round := 1; round <= rounds; round++ {
		t.Run(fmt.Sprintf("round=%d", round), func(t *testing.T) { relpAckKillWorker(t, goBin) })
	}
}

func relpAckKillWorker(t *testing.T, goBin string) {
	// 2 KiB events: 40 MB, more than the sockets' kernel buffers and the
	// sink's queue hold, so the workers' own queues fill while the sink
	// is held. The ack window (8 x 100) is below omrelp's (1024), so it
	// is the relay's output that fills.
	const n, pad = 20_000, 2000
	ackEP := fmt.Sprintf("tcp://127.0.0.1:%d", testpeer.FreePort(t))
	r := startRelay(t, fmt.Sprintf(`
inputs:
  - {name: relp, type: relp, listen: "tcp://127.0.0.1:0"}
outputs:
  - name: workers
    socket: push
    bind: tcp://127.0.0.1:0
    ack: {bind: %q, batch: 100, window: 8, timeout: 3s}
http: {listen: ""}
drain_timeout: 5s
`, ackEP))
	data := outputEndpoint(t, r, "workers")
	sink, sinkEP := startAckSinkHWM(t, "", 1000)
	names := []string{"go1", "go2"}
	ws, reports := map[string]*worker{}, map[string]string{}
	for _, name := range names {
		reports[name] = filepath.Join(t.TempDir(), name+".report")
		ws[name] = startWorker(t, goBin, name, data, sinkEP, ackEP, "-report", reports[name])
	}
	testpeer.Eventually(t, 20*time.Second, testpeer.Text("2 workers connected"), func() bool {
		return metric(t, r, "relay_output_peers", "output=workers") == 2 && sink.pull.Stats().Peers == 2
	})
	sink.held.Store(true)
	rs := startRsyslogd(t, forwardConfWith(`module(load="omrelp")`, omrelpAction(relpPort(t, r), 1024, "")))
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		feedRsyslogPadded(t, rs, "relpack", 0, n, pad)
	}()
	// As TestAckPushKillPassOnWorker: once no ack came for 500 ms, freeze both workers and kill one that, by its
	// report, holds batches it has not acknowledged.
	// Not the ack window alone: omrelp's window (1024 frames) can fill
	// first, or the workers' full queues can stop the relay's writes before
	// the ack window is full; either way no ack comes.
	v := pickVictim(t, r, ws, names, reports, 60*time.Second, func(acked int) bool { return acked > 0 }, func() string {
		return fmt.Sprintf("; relay received %v%s", metric(t, r, "relay_input_received_total", "input=relp"), relpTrouble(t, r))
	})
	victim, heldEvents, held, frozen := v.name, v.heldEvents, v.held, v.frozen
	ackedAtKill := ackMetric(t, r, "events_acked_total")
	ws[victim].kill()
	for _, name := range names {
		ws[name].thaw()
	}
	sink.held.Store(false)
	<-fed
	testpeer.Eventually(t, 90*time.Second, func() string {
		c, d, _ := sink.counts()
		return fmt.Sprintf("every event acked: sink has %d copies of %d events, relay acked %d, resent %d batches, RELP answered %v%s",
			c, d, ackMetric(t, r, "events_acked_total"), ackMetric(t, r, "batches_resent_total"),
			metric(t, r, "relay_relp_acked_total", "input=relp"), relpTrouble(t, r))
	}, func() bool {
		return ackMetric(t, r, "events_acked_total") == n && metric(t, r, "relay_relp_acked_total", "input=relp") == n
	})
	waitSinkHas(t, sink, n)
	// Acked is not arrived: the copies of the last resends may still be on
	// their way. Wait until every batch the victim held arrived resent and
	// the sink stopped growing.
	missing := func() []uint64 {
		a := sink.account()
		var m []uint64
		for _, seq := range held[victim] {
			if !a.resentSeqs[seq] {
				m = append(m, seq)
			}
		}
		return m
	}
	testpeer.Eventually(t, 30*time.Second, func() string {
		return fmt.Sprintf("the batches the dead worker held to arrive resent: %v did not", missing())
	}, func() bool { return len(missing()) == 0 })
	lastCopies, stable := -1, time.Now()
	testpeer.Eventually(t, 30*time.Second, testpeer.Text("the sink to settle"), func() bool {
		c, _, _ := sink.counts()
		if c != lastCopies {
			lastCopies, stable = c, time.Now()
		}
		return time.Since(stable) > 300*time.Millisecond
	})

	// The accounting.
	sink.mu.Lock()
	firsts, resentCopies := map[int]int{}, map[int]int{}
	for _, rec := range sink.recs {
		if rec.resent {
			resentCopies[rec.id]++
		} else {
			firsts[rec.id]++
		}
	}
	copies, distinct, bad := len(sink.recs), len(sink.distinct), sink.bad
	sink.mu.Unlock()
	rCopies, onlyResent, twiceFirst := 0, 0, 0
	for id, k := range resentCopies {
		rCopies += k
		if firsts[id] == 0 {
			onlyResent++
		}
	}
	for _, k := range firsts {
		if k > 1 {
			twiceFirst++
		}
	}
	dups := copies - distinct
	R := ackMetric(t, r, "events_resent_total")
	t.Logf("killed %s holding %d events of batches %v unacknowledged (all held: %v; frozen %d times); acked %d before the kill; relay resent %d batches, %d events (R); at the sink: %d copies of %d events, %d duplicates, %d resent copies (r), %d events only as resent copies (o); R - r = %d resent copies that never reached the sink",
		victim, heldEvents[victim], held[victim], heldEvents, frozen, ackedAtKill,
		ackMetric(t, r, "batches_resent_total"), R, copies, distinct, dups, rCopies, onlyResent, R-rCopies)
	if distinct != n || bad != 0 {
		t.Fatalf("%d of %d events at the sink (%d bad): %d lost", distinct, n, bad, n-distinct)
	}
	if ackMetric(t, r, "batches_resent_total") == 0 {
		t.Fatal("nothing was resent, though the dead worker held unacknowledged batches")
	}
	if twiceFirst != 0 {
		t.Errorf("%d events arrived twice without the resent flag: a duplicate the relay did not count", twiceFirst)
	}
	if dups != rCopies-onlyResent {
		t.Errorf("%d duplicates, want the resent copies %d less the %d events that arrived only resent", dups, rCopies, onlyResent)
	}
	if rCopies > R || dups > R {
		t.Errorf("relay_output_ack_events_resent_total %d is below the %d resent copies (%d duplicates) at the sink", R, rCopies, dups)
	}
	// What the victim held and had not passed on arrived only resent.
	if lost := heldEvents[victim] - sinkPartial(held[victim], sink); onlyResent < lost {
		t.Errorf("%d events arrived only as resent copies, fewer than the %d the dead worker held unpassed", onlyResent, lost)
	}

	// omrelp got no error: one session, every frame sent once (no resend
	// after a broken session) and answered, nothing refused, and rsyslogd
	// printed nothing about it.
	if s := relpTrouble(t, r); s != "" {
		t.Errorf("RELP trouble:%s", s)
	}
	if got := metric(t, r, "relay_relp_frames_total", "input=relp", "command=syslog"); got != n {
		t.Errorf("omrelp sent %v syslog frames for %d events: it resent after an error", got, n)
	}
	if got := metric(t, r, "relay_relp_sessions_total", "input=relp"); got != 1 {
		t.Errorf("%v RELP sessions, want omrelp's one", got)
	}
	if got := metric(t, r, "relay_relp_error_answers_total", "input=relp"); got != 0 {
		t.Errorf("%v frames answered with an error", got)
	}
	for _, line := range strings.Split(rs.Output(), "\n") {
		if omrelpTrouble.MatchString(line) {
			t.Errorf("rsyslogd: %s", line)
		}
	}
}

// sinkPartial is how many events of batches seqs reached the sink as
// first copies (the victim had passed them on before it died).
func sinkPartial(seqs []uint64, sink *ackSink) int {
	in := map[uint64]bool{}
	for _, s := range seqs {
		in[s] = true
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	k := 0
	for _, rec := range sink.recs {
		if !rec.resent && in[rec.seq] {
			k++
		}
	}
	return k
}
