package link

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/spool"
)

// The seed corpora under testdata/fuzz are made by the encoders here:
// valid-* files must decode, bad-* files (truncated or corrupt) must be
// refused. TestFuzzCorpus checks the committed files against that, and
// rewrites them with LINK_WRITE_SEEDS=1 after a format change.

type corpusSeed struct {
	target, name string
	args         [][]byte
}

// seedRecords makes n records as a sender batches them: several streams,
// inputs and peers, some repeated (the same-as-previous flags), one with
// the zero time, one empty.
func seedRecords(first uint64, n int) []spool.Record {
	recs := make([]spool.Record, n)
	for i := range recs {
		r := rec(int(first) + i)
		r.Seq = first + uint64(i)
		switch i % 9 {
		case 3:
			r.Stream = "click"
		case 5:
			r.Input, r.Peer = "syslog-tcp", ""
		case 7:
			r.Received = time.Time{}
		case 8:
			r.Raw = []byte{}
		}
		recs[i] = r
	}
	return recs
}

func batchSeed(name string, first uint64, n int, comp Compression, flags byte) corpusSeed {
	recs := seedRecords(first, n)
	raw := encodeRecords(nil, first-1, recs)
	h := BatchHeader{First: first, Last: recs[n-1].Seq, Count: uint32(n), RawLen: uint32(len(raw)), Flags: flags}
	switch comp {
	case CompressZstd:
		h.Flags |= FlagZstd
	case CompressS2:
		h.Flags |= FlagS2
	}
	return corpusSeed{"FuzzBatch", name, [][]byte{appendBatchHeader(nil, h), Compress(nil, raw, comp)}}
}

// withCRC returns b with its last 4 bytes replaced by the big-endian
// CRC-32C of the rest (the marks and ledger files' trailer).
func withCRC(b []byte) []byte {
	if len(b) < 4 {
		return b
	}
	c := bytes.Clone(b)
	binary.BigEndian.PutUint32(c[len(c)-4:], crc32.Checksum(c[:len(c)-4], castagnoli))
	return c
}

func corpusSeeds() []corpusSeed {
	var s []corpusSeed
	// Batches: sizes 1..300, the three compressions, gaps in seqs.
	s = append(s,
		batchSeed("valid-1-none", 1, 1, CompressNone, FlagFirst),
		batchSeed("valid-9-none", 1000, 9, CompressNone, 0),
		batchSeed("valid-64-none", 77, 64, CompressNone, 0),
		batchSeed("valid-9-zstd", 5, 9, CompressZstd, FlagFirst),
		batchSeed("valid-300-zstd", 1<<40, 300, CompressZstd, 0),
		batchSeed("valid-9-s2", 12, 9, CompressS2, 0),
		batchSeed("valid-300-s2", 3, 300, CompressS2, FlagFirst),
	)
	gap := seedRecords(10, 5)
	gap[2].Seq, gap[3].Seq, gap[4].Seq = 20, 21, 400
	raw := encodeRecords(nil, 9, gap)
	s = append(s, corpusSeed{"FuzzBatch", "valid-gaps-none", [][]byte{
		appendBatchHeader(nil, BatchHeader{First: 10, Last: 400, Count: 5, RawLen: uint32(len(raw))}), raw}})
	// Broken batches: torn payloads, a flipped compressed byte, a count
	// the payload does not hold, a payload longer than its header says.
	for _, b := range []corpusSeed{batchSeed("", 1, 9, CompressNone, 0), batchSeed("", 1, 9, CompressZstd, 0), batchSeed("", 1, 9, CompressS2, 0)} {
		kind := map[byte]string{0: "none", FlagZstd: "zstd", FlagS2: "s2"}[b.args[0][3]]
		p := b.args[1]
		s = append(s, corpusSeed{"FuzzBatch", "bad-torn-" + kind, [][]byte{b.args[0], p[:len(p)*2/3]}})
		// The payload has no checksum of its own (TLS or CURVE guard the
		// wire): a byte flipped inside a message's text still decodes.
		flip := bytes.Clone(p)
		flip[len(flip)/2] ^= 0x5a
		s = append(s, corpusSeed{"FuzzBatch", "valid-flipped-mid-" + kind, [][]byte{b.args[0], flip}})
		flip = bytes.Clone(p)
		flip[0] ^= 0x5a
		s = append(s, corpusSeed{"FuzzBatch", "bad-flipped-head-" + kind, [][]byte{b.args[0], flip}})
	}
	b := batchSeed("", 1, 9, CompressNone, 0)
	h, _ := ParseBatchHeader(b.args[0], 1<<20)
	h.Count, h.Last = 10, 10
	s = append(s, corpusSeed{"FuzzBatch", "bad-count", [][]byte{appendBatchHeader(nil, h), b.args[1]}})
	h, _ = ParseBatchHeader(b.args[0], 1<<20)
	h.RawLen--
	s = append(s, corpusSeed{"FuzzBatch", "bad-rawlen", [][]byte{appendBatchHeader(nil, h), b.args[1]}})
	s = append(s, corpusSeed{"FuzzBatch", "bad-header-torn", [][]byte{b.args[0][:17], b.args[1]}})

	// ACKs.
	for _, n := range []uint64{0, 1, 4242, 1<<63 + 5} {
		s = append(s, corpusSeed{"FuzzAck", fmt.Sprintf("valid-%d", n), [][]byte{appendAck(nil, n)}})
	}
	a := appendAck(nil, 9)
	s = append(s,
		corpusSeed{"FuzzAck", "bad-torn", [][]byte{a[:7]}},
		corpusSeed{"FuzzAck", "bad-flags", [][]byte{append([]byte{a[0], a[1], a[2], 1}, a[4:]...)}},
		corpusSeed{"FuzzAck", "bad-version", [][]byte{append([]byte{a[0], 9}, a[2:]...)}},
		corpusSeed{"FuzzAck", "bad-welcome", [][]byte{appendWelcome(Welcome{Mark: 7, MaxBatch: 1 << 20, Name: "dc2"})[0]}},
	)

	// Marks files, as marksStore writes them.
	var id1, id2, id3 SenderID
	copy(id1[:], "sender-one......")
	copy(id2[:], "sender-two......")
	id3[15] = 0xff
	e1 := markEntry{id: id1, mark: 100, name: "dc1/to-dc2"}
	e1.done.add(rng{105, 110})
	e1.done.add(rng{200, 200})
	e2 := markEntry{id: id2, mark: 1 << 50, name: ""}
	e3 := markEntry{id: id3, mark: 0, name: strings.Repeat("n", maxName)}
	for i := uint64(0); i < 40; i++ {
		e3.done.add(rng{10 + 7*i, 12 + 7*i})
	}
	full := encodeMarks(17, []markEntry{e1, e2, e3})
	s = append(s,
		corpusSeed{"FuzzMarks", "valid-empty", [][]byte{encodeMarks(1, nil)}},
		corpusSeed{"FuzzMarks", "valid-one", [][]byte{encodeMarks(2, []markEntry{e1})}},
		corpusSeed{"FuzzMarks", "valid-three", [][]byte{full}},
		corpusSeed{"FuzzMarks", "bad-torn", [][]byte{full[:len(full)-30]}},
		corpusSeed{"FuzzMarks", "bad-torn-crc-fixed", [][]byte{withCRC(full[:len(full)-30])}},
	)
	flip := bytes.Clone(full)
	flip[40] ^= 1
	s = append(s, corpusSeed{"FuzzMarks", "bad-flipped", [][]byte{flip}})
	// A done range at or below its mark: refused even with a good CRC.
	low := encodeMarks(3, []markEntry{e1})
	binary.BigEndian.PutUint64(low[24+16+8+2:], 100)
	s = append(s, corpusSeed{"FuzzMarks", "bad-range-below-mark", [][]byte{withCRC(low)}})
	// Overlapping ranges at the top of the uint64 range: rangeSet.add
	// once wrapped last+1 to 0 here and kept them overlapping.
	top := markEntry{id: id1, mark: 1, done: rangeSet{{5, ^uint64(0)}, {6, 7}}}
	s = append(s, corpusSeed{"FuzzMarks", "valid-overlap-at-top", [][]byte{encodeMarks(4, []markEntry{top})}})

	// Ledger files, as Ledger.Save writes them.
	s = append(s,
		corpusSeed{"FuzzLedger", "valid-empty", [][]byte{encodeLedger(nil)}},
		corpusSeed{"FuzzLedger", "valid-one", [][]byte{encodeLedger(map[SenderID]uint64{id1: 4242})}},
	)
	three := encodeLedgerSorted(map[SenderID]uint64{id1: 1, id2: 1 << 40, id3: ^uint64(0)})
	s = append(s,
		corpusSeed{"FuzzLedger", "valid-three", [][]byte{three}},
		corpusSeed{"FuzzLedger", "bad-torn", [][]byte{three[:len(three)-10]}},
		corpusSeed{"FuzzLedger", "bad-torn-entry", [][]byte{withCRC(append(bytes.Clone(three[:30]), 0, 0, 0, 0))}},
		corpusSeed{"FuzzLedger", "bad-zeros", [][]byte{make([]byte, 52)}},
	)
	flip = bytes.Clone(three)
	flip[20] ^= 0x80
	s = append(s, corpusSeed{"FuzzLedger", "bad-flipped", [][]byte{flip}})
	return s
}

// encodeLedgerSorted is encodeLedger with the entries in id order, so
// that the seed files do not change from run to run.
func encodeLedgerSorted(m map[SenderID]uint64) []byte {
	ids := make([]SenderID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	var b []byte
	for _, id := range ids {
		b = append(b, id[:]...)
		b = binary.BigEndian.AppendUint64(b, m[id])
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// seedAccepted reports whether the target's decoder takes args.
func seedAccepted(target string, args [][]byte) bool {
	switch target {
	case "FuzzBatch":
		h, err := ParseBatchHeader(args[0], 1<<20)
		if err != nil {
			return false
		}
		p, err := DecodePayload(h, args[1])
		if err != nil {
			return false
		}
		return DecodeRecords(p, h, func(*Record) {}) == nil
	case "FuzzAck":
		_, err := ParseAck(args[0])
		return err == nil
	case "FuzzMarks":
		_, _, err := decodeMarks(args[0])
		return err == nil
	case "FuzzLedger":
		_, err := decodeLedger(args[0])
		return err == nil
	}
	panic(target)
}

func corpusFile(args [][]byte) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		b.WriteString("[]byte(" + strconv.Quote(string(a)) + ")\n")
	}
	return []byte(b.String())
}

func parseCorpusFile(b []byte) ([][]byte, error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 1 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("not a corpus file")
	}
	var args [][]byte
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "[]byte(") || !strings.HasSuffix(l, ")") {
			return nil, fmt.Errorf("line %q", l)
		}
		s, err := strconv.Unquote(l[len("[]byte(") : len(l)-1])
		if err != nil {
			return nil, err
		}
		args = append(args, []byte(s))
	}
	return args, nil
}

func TestFuzzCorpus(t *testing.T) {
	write := os.Getenv("LINK_WRITE_SEEDS") != ""
	for _, s := range corpusSeeds() {
		want := strings.HasPrefix(s.name, "valid-")
		if got := seedAccepted(s.target, s.args); got != want {
			t.Errorf("%s/%s: accepted %v", s.target, s.name, got)
		}
		path := filepath.Join("testdata", "fuzz", s.target, s.name)
		if write {
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, corpusFile(s.args), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed corpus file missing (LINK_WRITE_SEEDS=1 go test -run TestFuzzCorpus writes it): %v", err)
			continue
		}
		args, err := parseCorpusFile(b)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if got := seedAccepted(s.target, args); got != want {
			t.Errorf("%s: committed seed accepted %v", path, got)
		}
	}
}

func TestRangeSetTop(t *testing.T) {
	for _, c := range []struct {
		add  []rng
		want rangeSet
	}{
		{[]rng{{5, ^uint64(0)}, {6, 7}}, rangeSet{{5, ^uint64(0)}}},
		{[]rng{{10, 12}, {3, ^uint64(0)}}, rangeSet{{3, ^uint64(0)}}},
		{[]rng{{^uint64(0), ^uint64(0)}, {^uint64(0) - 2, ^uint64(0) - 1}}, rangeSet{{^uint64(0) - 2, ^uint64(0)}}},
		{[]rng{{1, 2}, {4, 5}, {3, 3}}, rangeSet{{1, 5}}},
		{[]rng{{0, 0}, {2, 2}, {1, 1}}, rangeSet{{0, 2}}},
	} {
		var s rangeSet
		for _, r := range c.add {
			s.add(r)
		}
		if !slices.Equal(s, c.want) {
			t.Errorf("adding %v gave %v, want %v", c.add, s, c.want)
		}
	}
}
