package broker

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The JetStream output publishes on core NATS with a reply subject of its
// own instead of through nats.go's jetstream publisher: one wildcard
// subscription takes every PubAck (inbox prefix + a token per attempt), a
// hand-written scanner decodes it (parsePubAck), and one goroutine times
// out unanswered attempts by batch instead of a timer per message. By
// profile, nats.go's asynchronous publisher spent 2.6 µs of CPU per event
// on decoding each PubAck with encoding/json, a header map per message and
// a timer per message; the behaviour is nats.go's (no-responders retried
// twice after 250 ms, attempts in flight failed when the connection
// drops, late PubAcks of a failed attempt ignored).

// jsMsg is one record on its way into the stream: on the wire (in
// flights under a token), waiting for a retry, or confirmed.
type jsMsg struct {
	seq     uint64    // the spool's seq
	first   time.Time // first attempt
	subject string
	data    []byte
	// Header values; input, peer and received may be empty.
	id, stream, input, peer, received string
	// noResp counts no-responders answers to this attempt: retried
	// inside, like nats.go, before failing as no_stream.
	noResp int
}

// jsBatch is a range of tokens published together, timed out together.
type jsBatch struct {
	first, last uint64
	deadline    time.Time // its last attempt's
	opened      time.Time // its first attempt's deadline
}

// noRespRetries and noRespWait are nats.go's DefaultPubRetryAttempts and
// DefaultPubRetryWait: a stream leader that is moving answers no
// responders for a moment.
const (
	noRespRetries = 2
	noRespWait    = 250 * time.Millisecond
)

// hdrBuf is a header map and its values, reused from publish to publish:
// nats.go copies the encoded headers before PublishMsg returns.
type hdrBuf struct {
	h    nats.Header
	vals [5][]string
	msg  nats.Msg
}

var hdrBufs = sync.Pool{New: func() any {
	b := &hdrBuf{h: make(nats.Header, 5)}
	for i := range b.vals {
		b.vals[i] = make([]string, 1)
	}
	return b
}}

func (b *hdrBuf) set(i int, key, v string) {
	if v == "" {
		delete(b.h, key)
		return
	}
	b.vals[i][0] = v
	b.h[key] = b.vals[i]
}

// startPublisher subscribes to the output's reply subjects and starts the
// timeout sweep.
func (s *JetStream) startPublisher() error {
	s.replyPrefix = s.nc.NewInbox() + "."
	sub, err := s.nc.Subscribe(s.replyPrefix+"*", s.onReply)
	if err != nil {
		return err
	}
	// A PubAck dropped as a slow consumer's is a timeout and a resend:
	// take as many as can be in flight.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return err
	}
	s.sub = sub
	s.wg.Add(1)
	go s.sweep()
	return nil
}

// send publishes msgs, each under a new token. counted is false for the
// no-responders retries nats.go also made without telling.
func (s *JetStream) send(msgs []*jsMsg, counted bool) {
	if len(msgs) == 0 {
		return
	}
	first := s.track(msgs, time.Now())
	if counted {
		s.published.Add(uint64(len(msgs)))
	}
	b := hdrBufs.Get().(*hdrBuf)
	for k, m := range msgs {
		tok := first + uint64(k)
		b.vals[0][0], b.vals[1][0] = m.id, m.stream
		b.h[nats.MsgIdHdr], b.h[HeaderStream] = b.vals[0], b.vals[1]
		b.set(2, HeaderInput, m.input)
		b.set(3, HeaderPeer, m.peer)
		b.set(4, HeaderReceived, m.received)
		b.msg = nats.Msg{Subject: m.subject, Reply: s.replyPrefix + strconv.FormatUint(tok, 36), Header: b.h, Data: m.data}
		if err := s.nc.PublishMsg(&b.msg); err != nil {
			if f := s.take(tok); f != nil {
				s.failed(f, err)
			}
		}
	}
	b.msg = nats.Msg{}
	hdrBufs.Put(b)
}

// track gives msgs their tokens, puts them in flights and their deadline
// in the sweep's list, and returns the first token.
func (s *JetStream) track(msgs []*jsMsg, now time.Time) uint64 {
	s.mu.Lock()
	first := s.token + 1
	for _, m := range msgs {
		s.token++
		s.flights[s.token] = m
	}
	last := s.token
	deadline := now.Add(s.cfg.AckTimeout)
	wake := len(s.batches) == 0
	// Attempts published within a hundredth of the timeout share one
	// batch and its last deadline (a timeout comes at most that much
	// late), so that the sweep's list stays short when the window frees
	// one slot at a time.
	if n := len(s.batches); n > 0 && deadline.Sub(s.batches[n-1].opened) < s.sweepGrain && s.batches[n-1].last+1 == first {
		s.batches[n-1].last = last
		s.batches[n-1].deadline = deadline
	} else {
		s.batches = append(s.batches, jsBatch{first: first, last: last, deadline: deadline, opened: deadline})
	}
	s.mu.Unlock()
	if wake {
		select {
		case s.sweepWake <- struct{}{}:
		default:
		}
	}
	return first
}

// take removes the attempt under tok from flights: whoever takes it
// handles it (PubAck, timeout, disconnect or publish error), once.
func (s *JetStream) take(tok uint64) *jsMsg {
	s.mu.Lock()
	m := s.flights[tok]
	if m != nil {
		delete(s.flights, tok)
	}
	s.mu.Unlock()
	return m
}

// onReply runs on the reply subscription's goroutine for every PubAck.
func (s *JetStream) onReply(r *nats.Msg) {
	if len(r.Subject) <= len(s.replyPrefix) {
		return
	}
	tok, err := strconv.ParseUint(r.Subject[len(s.replyPrefix):], 36, 64)
	if err != nil {
		return
	}
	m := s.take(tok)
	if m == nil {
		return // timed out or failed by a disconnect: it was or will be sent again
	}
	if len(r.Data) == 0 && r.Header.Get("Status") == "503" {
		if m.noResp < noRespRetries {
			m.noResp++
			time.AfterFunc(noRespWait, func() {
				if s.ctx.Err() != nil {
					s.mu.Lock()
					s.retry = append(s.retry, m)
					s.mu.Unlock()
					return
				}
				s.send([]*jsMsg{m}, false)
			})
			return
		}
		s.failed(m, jetstream.ErrNoStreamResponse)
		return
	}
	pa, err := parsePubAck(r.Data)
	switch {
	case err != nil:
		s.failed(m, jetstream.ErrInvalidJSAck)
		return
	case pa.Error != nil:
		s.failed(m, pa.Error)
		return
	case pa.Stream == "":
		s.failed(m, jetstream.ErrInvalidJSAck)
		return
	case pa.Duplicate && pa.Seq == 0:
		// A duplicate of an id the server staged but never stored (a
		// leader election dropped it: nats-server#6415): not a
		// confirmation, send it again.
		s.failed(m, errUnconfirmedDuplicate)
		return
	}
	s.mu.Lock()
	s.open--
	s.acks.add(m.seq)
	s.idleLocked()
	s.mu.Unlock()
	<-s.sem
	s.confirmed.Add(1)
	if pa.Duplicate {
		s.duplicates.Add(1)
	}
	if s.bo.current() != 0 {
		s.bo.reset()
	}
	// Also when no retry ran: connections refused while nothing was in
	// flight open an episode too, and an episode left open would keep the
	// next outage of that cause from being logged.
	s.causes.ok()
}

// failAll fails every attempt in flight: the connection dropped, and
// PubAcks of what it carried will not come (nats.go does the same).
func (s *JetStream) failAll(err error) {
	s.mu.Lock()
	var msgs []*jsMsg
	for tok, m := range s.flights {
		msgs = append(msgs, m)
		delete(s.flights, tok)
	}
	s.mu.Unlock()
	for _, m := range msgs {
		s.failed(m, err)
	}
}

// sweep times out attempts whose PubAck did not come within AckTimeout,
// one batch at a time.
func (s *JetStream) sweep() {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	t.Stop()
	var expired []*jsMsg
	for {
		now := time.Now()
		expired = expired[:0]
		s.mu.Lock()
		// Every token up to the last expired batch's is past its deadline
		// (earlier tokens were swept before).
		var from, to uint64
		for len(s.batches) > 0 && !now.Before(s.batches[0].deadline) {
			if from == 0 {
				from = s.batches[0].first
			}
			to = s.batches[0].last
			s.batches = s.batches[1:]
		}
		switch {
		case to == 0 || len(s.flights) == 0:
		case to-from+1 > uint64(len(s.flights)):
			// Most of the range was confirmed: the map is shorter.
			for tok, m := range s.flights {
				if tok <= to {
					delete(s.flights, tok)
					expired = append(expired, m)
				}
			}
		default:
			for tok := from; tok <= to; tok++ {
				if m, ok := s.flights[tok]; ok {
					delete(s.flights, tok)
					expired = append(expired, m)
				}
			}
		}
		wait := time.Duration(-1)
		if len(s.batches) > 0 {
			wait = s.batches[0].deadline.Sub(now)
		} else {
			s.batches = nil // let the backing array go
		}
		s.mu.Unlock()
		for _, m := range expired {
			s.failed(m, jetstream.ErrAsyncPublishTimeout)
		}
		if wait < 0 {
			select {
			case <-s.sweepWake:
			case <-s.ctx.Done():
				return
			}
			continue
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
}

// failed puts m, taken from flights, on the retry list and counts the
// failure by cause.
func (s *JetStream) failed(m *jsMsg, err error) {
	m.noResp = 0
	s.mu.Lock()
	s.retry = append(s.retry, m)
	s.mu.Unlock()
	cause, hint := classify(err, m.subject)
	if cause == CauseTimeout && time.Since(time.Unix(0, s.denied.Load())) < 2*s.cfg.AckTimeout {
		// The server refused publishes (permissions) since shortly before
		// this one was sent: its PubAck never came for that reason.
		cause, hint = CauseAuth, "check the output's permission to publish to "+m.subject
	}
	if errors.Is(err, nats.ErrHeadersNotSupported) {
		// Before the first connection nats.go cannot know the server's
		// features; after it, the server is too old for message ids.
		if s.nc.IsConnected() {
			hint = "the server does not support headers, which message ids need; upgrade it to 2.2 or later"
		} else {
			cause, hint = CauseDisconnected, ""
		}
	}
	s.causes.fail(cause, 1, err, hint)
	s.kick()
}
