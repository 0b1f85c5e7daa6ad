package link

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/spool"
)

// FuzzBatch feeds arbitrary header and payload frames to the receiver's
// decoders: they never panic, never return records outside the header's
// range or out of order, and what encodes decodes back the same.
func FuzzBatch(f *testing.F) {
	recs := []spool.Record{rec(1), rec(2), rec(5)}
	recs[2].Stream, recs[2].Peer = "click", ""
	raw := encodeRecords(nil, 0, recs)
	h := BatchHeader{First: 1, Last: 5, Count: 3, RawLen: uint32(len(raw))}
	f.Add(appendBatchHeader(nil, h), raw)
	hz := h
	hz.Flags = FlagZstd | FlagFirst
	f.Add(appendBatchHeader(nil, hz), compress(nil, raw))
	hs := h
	hs.Flags = FlagS2
	f.Add(appendBatchHeader(nil, hs), compressS2(nil, raw))
	f.Add(appendBatchHeader(nil, BatchHeader{First: 1, Last: 1, Count: 1, RawLen: 5}), []byte{0, 1, 0, 0, 0})
	f.Add([]byte("LXB"), []byte{})
	f.Fuzz(func(t *testing.T, hdrB, payload []byte) {
		h, err := ParseBatchHeader(hdrB, 1<<20)
		if err != nil {
			return
		}
		p, err := DecodePayload(h, payload)
		if err != nil {
			return
		}
		var got []Record
		prev := h.First - 1
		err = DecodeRecords(p, h, func(r *Record) {
			if r.Seq <= prev || r.Seq > h.Last {
				t.Fatalf("seq %d after %d, range %d..%d", r.Seq, prev, h.First, h.Last)
			}
			prev = r.Seq
			c := *r
			c.Raw = append([]byte(nil), r.Raw...)
			got = append(got, c)
		})
		if err != nil {
			return
		}
		if len(got) != int(h.Count) {
			t.Fatalf("%d records, header says %d", len(got), h.Count)
		}
		// Round trip: what decoded encodes back to the same records.
		var back []spool.Record
		for _, r := range got {
			back = append(back, spool.Record{Seq: r.Seq, Raw: r.Raw, Stream: r.Stream, Input: r.Input, Peer: r.Peer, Received: r.Received})
		}
		p2 := encodeRecords(nil, h.First-1, back)
		h2 := h
		h2.RawLen = uint32(len(p2))
		i := 0
		if err := DecodeRecords(p2, h2, func(r *Record) {
			o := got[i]
			if r.Seq != o.Seq || !bytes.Equal(r.Raw, o.Raw) || r.Stream != o.Stream || r.Input != o.Input || r.Peer != o.Peer || !r.Received.Equal(o.Received) {
				t.Fatalf("record %d: %+v after round trip, was %+v", i, r, o)
			}
			i++
		}); err != nil {
			t.Fatalf("re-encoded batch: %v", err)
		}
	})
}

// FuzzAck: the sender's decoder of the receiver's messages never panics,
// and a valid ACK round-trips.
func FuzzAck(f *testing.F) {
	f.Add(appendAck(nil, 42))
	f.Add(appendAck(nil, 0))
	w := appendWelcome(Welcome{Mark: 7, MaxBatch: 1 << 20, Name: "dc2"})
	f.Add(w[0])
	f.Add([]byte{'L', 2, 'A', 0, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseAck(b)
		if err != nil {
			return
		}
		if got := appendAck(nil, n); !bytes.Equal(got, b) {
			t.Fatalf("ACK %x decodes to %d, which encodes to %x", b, n, got)
		}
	})
}

// FuzzHandshake: HELLO, WELCOME and REFUSE decoders take any frames.
func FuzzHandshake(f *testing.F) {
	var id SenderID
	id[0] = 1
	h := appendHello(Hello{Sender: id, MaxBatch: 1 << 20, Flags: FlagZstd, Name: "to-dc2"})
	f.Add(h[0], h[1])
	w := appendWelcome(Welcome{Receiver: id, Mark: 9, Name: "from-dc1"})
	f.Add(w[0], w[1])
	r := appendRefuse(RefuseVersion, "versions differ")
	f.Add(r[0], r[1])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		m := [][]byte{a, b}
		if h, err := ParseHello(m); err == nil {
			if got := appendHello(h); !bytes.Equal(got[0], a) || !bytes.Equal(got[1], b) {
				t.Fatalf("HELLO does not round-trip")
			}
		}
		ParseAnswer(m)
		ParseAnswer(m[:1])
	})
}

// FuzzMarks: the marks file decoder never panics; what it accepts is
// sane (every sender's done ranges sorted, disjoint, above its mark) and
// encodes to a file that decodes to the same state. Each input is also
// tried with its CRC made valid, so the fuzzer reaches past the checksum.
func FuzzMarks(f *testing.F) {
	var id SenderID
	id[5] = 3
	e := markEntry{id: id, mark: 100, name: "dc1/to-dc2"}
	e.done.add(rng{105, 110})
	f.Add(encodeMarks(3, []markEntry{e}))
	f.Add(encodeMarks(1, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, withCRC(b)} {
			gen, es, err := decodeMarks(in)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) {
					t.Fatalf("error %v wraps neither ErrMalformed nor ErrVersion", err)
				}
				continue
			}
			for _, e := range es {
				checkRanges(t, e.done, e.mark)
			}
			gen2, es2, err := decodeMarks(encodeMarks(gen, es))
			if err != nil || gen2 != gen || len(es2) != len(es) {
				t.Fatalf("marks do not round-trip: gen %d→%d, %d→%d senders, %v", gen, gen2, len(es), len(es2), err)
			}
			for i, e := range es {
				want := e.done
				if len(want) > maxDoneRanges { // the encoder keeps the lowest
					want = want[:maxDoneRanges]
				}
				g := es2[i]
				if g.id != e.id || g.mark != e.mark || g.name != e.name || !slices.Equal(g.done, want) {
					t.Fatalf("sender %d: %+v after round trip, was %+v", i, g, e)
				}
			}
		}
	})
}

// checkRanges fails unless s is sorted, disjoint, non-adjacent and above
// mark.
func checkRanges(t *testing.T, s rangeSet, mark uint64) {
	t.Helper()
	for i, r := range s {
		if r.last < r.first || r.first <= mark || (i > 0 && r.first <= s[i-1].last+1) || (i > 0 && s[i-1].last == ^uint64(0)) {
			t.Fatalf("range set %v (mark %d) is not sorted, disjoint and above the mark", s, mark)
		}
	}
}

// FuzzLedger: the ledger file (read by OpenLedger after a crash) decoder
// never panics, refuses with ErrMalformed, and what it accepts encodes to
// a file that decodes to the same marks.
func FuzzLedger(f *testing.F) {
	var id SenderID
	id[0] = 9
	f.Add(encodeLedger(map[SenderID]uint64{id: 77}))
	f.Add(encodeLedger(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, withCRC(b)} {
			m, err := decodeLedger(in)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				continue
			}
			if len(m) > (len(in)-4)/24 {
				t.Fatalf("%d marks from %d bytes", len(m), len(in))
			}
			back, err := decodeLedger(encodeLedger(m))
			if err != nil || !maps.Equal(back, m) {
				t.Fatalf("ledger does not round-trip: %v, %v", m, back)
			}
		}
	})
}

func TestRecordsRoundTrip(t *testing.T) {
	recs := []spool.Record{rec(3), rec(4), rec(9), {Seq: 12, Raw: []byte{}, Received: time.Time{}}}
	for i := range recs[:3] {
		recs[i].Seq = uint64([]int{3, 4, 9}[i])
	}
	raw := encodeRecords(nil, 1, recs)
	h := BatchHeader{First: 2, Last: 12, Count: 4, RawLen: uint32(len(raw))}
	i := 0
	if err := DecodeRecords(raw, h, func(r *Record) {
		o := recs[i]
		if r.Seq != o.Seq || !bytes.Equal(r.Raw, o.Raw) || r.Stream != o.Stream || r.Input != o.Input || r.Peer != o.Peer || !r.Received.Equal(o.Received) {
			t.Fatalf("record %d: %+v, want %+v", i, r, o)
		}
		i++
	}); err != nil {
		t.Fatal(err)
	}
	if i != 4 {
		t.Fatalf("%d records", i)
	}
}
