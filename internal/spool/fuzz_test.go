package spool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// segmentBytes builds a segment file: header, then frames of recs.
func segmentBytes(base uint64, recs []Record) []byte {
	b := encodeSegHeader(1, base)
	for i := range recs {
		recs[i].Seq = base + uint64(i)
		b = appendFrame(b, &recs[i])
	}
	return b
}

func fuzzSeeds() [][]byte {
	recs := []Record{rec(0, 50), rec(1, 10), {Raw: []byte("x"), Meta: []byte{1, 2, 3}}, rec(3, 300)}
	good := segmentBytes(1, recs)
	torn := good[:len(good)-7]
	flipped := bytes.Clone(good)
	flipped[segHeader+70] ^= 0xff
	zeros := append(bytes.Clone(good[:segHeader]), make([]byte, 200)...)
	return [][]byte{good, torn, flipped, zeros, good[:segHeader]}
}

// FuzzScanSegment feeds arbitrary bytes to the segment scanner Open and
// Verify use: it must never panic, and what it reports must be consistent.
func FuzzScanSegment(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		base := uint64(1)
		if len(b) >= segHeader {
			if _, hb, err := decodeSegHeader(b); err == nil && hb != 0 {
				base = hb
			}
		}
		var last uint64
		n := 0
		sc := scanSegment(bytes.NewReader(b), int64(len(b)), base, func(off int64, v *frameView) {
			if n > 0 && v.seq <= last {
				t.Fatalf("seq %d after %d", v.seq, last)
			}
			last = v.seq
			n++
		})
		if n != sc.records || sc.validEnd > int64(max(len(b), segHeader)) || sc.tail < 0 {
			t.Fatalf("inconsistent scan %+v (%d frames seen)", sc, n)
		}
		if sc.records > 0 && sc.last != last {
			t.Fatalf("last %d, saw %d", sc.last, last)
		}
	})
}

// FuzzDecodeFrame checks that a frame that decodes re-encodes to the same
// bytes, and that no input panics the decoder.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range fuzzSeeds() {
		if len(s) > segHeader {
			f.Add(s[segHeader:])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v frameView
		if len(b) < frameHeader || !decodeFrame(b, &v) {
			return
		}
		var slab []byte
		r := recordFrom(&v, &slab, nil)
		var w frameView
		if !decodeFrame(appendFrame(nil, &r), &w) || w.seq != v.seq || w.received != v.received ||
			!bytes.Equal(w.raw, v.raw) || !bytes.Equal(w.meta, v.meta) || string(w.stream) != string(v.stream) ||
			string(w.input) != string(v.input) || string(w.peer) != string(v.peer) {
			t.Fatalf("re-encoding %+v gave %+v", v, w)
		}
	})
}

// TestWriteFuzzSeeds writes the seed corpus under testdata/fuzz; run with
// SPOOL_WRITE_SEEDS=1 after changing the format.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("SPOOL_WRITE_SEEDS") == "" {
		t.Skip("set SPOOL_WRITE_SEEDS=1 to rewrite the seed corpus")
	}
	for i, s := range fuzzSeeds() {
		for _, target := range []string{"FuzzScanSegment", "FuzzDecodeFrame"} {
			b := s
			if target == "FuzzDecodeFrame" {
				if len(s) <= segHeader {
					continue
				}
				b = s[segHeader:]
			}
			dir := filepath.Join("testdata", "fuzz", target)
			os.MkdirAll(dir, 0o755)
			body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
