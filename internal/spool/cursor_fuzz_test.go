package spool

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The checkpoint and progress files are what a crashed relay leaves
// beside its segments; Open reads them first. Their fuzz targets take a
// whole file (two slots) and also try each input with its slots' CRCs
// made valid, so that the fuzzer reaches the fields behind the checksum.

// fixCkptCRC returns b with the CRC of each whole checkpoint slot made
// valid.
func fixCkptCRC(b []byte) []byte {
	c := bytes.Clone(b)
	for off := 0; off+ckptLen <= len(c); off += ckptSlot {
		s := c[off:]
		binary.LittleEndian.PutUint32(s[ckptLen-4:], crc32.Checksum(s[:ckptLen-4], castagnoli))
	}
	return c
}

// fixProgCRC returns a progress slot with its CRC made valid where its
// range counts fit.
func fixProgCRC(b []byte) []byte {
	if len(b) < progHdr+4 {
		return b
	}
	na, ns := int(binary.LittleEndian.Uint32(b[32:])), int(binary.LittleEndian.Uint32(b[36:]))
	if na < 0 || ns < 0 || na+ns > maxProgRngs || len(b) < progHdr+16*(na+ns)+4 {
		return b
	}
	c := bytes.Clone(b)
	end := progHdr + 16*(na+ns)
	binary.LittleEndian.PutUint32(c[end:], crc32.Checksum(c[:end], castagnoli))
	return c
}

// FuzzCheckpoint: decodeCkpt and readCkpt take any bytes without
// panicking; a slot they accept re-encodes to a slot that decodes to the
// same state, and readCkpt picks the valid slot of highest generation.
func FuzzCheckpoint(f *testing.F) {
	two := append(ckptState{gen: 4, acked: 10, seqRes: 1 << 20, segRes: 17}.encode(), make([]byte, ckptSlot)...)
	copy(two[ckptSlot:], ckptState{gen: 5, acked: 12, seqRes: 1 << 20, segRes: 17}.encode())
	f.Add(two)
	f.Add(ckptState{gen: 1}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, fixCkptCRC(b)} {
			var best ckptState
			bestOK := false
			var verr error
			for off := 0; off < 2*ckptSlot && off+ckptLen <= len(in); off += ckptSlot {
				st, ok, err := decodeCkpt(in[off:])
				if err != nil {
					if !errors.Is(err, ErrVersion) {
						t.Fatalf("slot at %d: error %v does not wrap ErrVersion", off, err)
					}
					verr = err
					break
				}
				if !ok {
					continue
				}
				back, ok2, err := decodeCkpt(st.encode())
				if !ok2 || err != nil || back != st {
					t.Fatalf("checkpoint %+v re-encodes to %+v (%v, %v)", st, back, ok2, err)
				}
				if !bestOK || st.gen > best.gen {
					best, bestOK = st, true
				}
			}
			st, found, err := readCkpt(bytes.NewReader(in))
			if verr != nil {
				// A slot of another format version refuses the file,
				// whatever the other slot holds.
				if err == nil || found {
					t.Fatalf("readCkpt: %+v %v %v; a slot has another version: %v", st, found, err, verr)
				}
				continue
			}
			if err != nil || found != bestOK || (found && st != best) {
				t.Fatalf("readCkpt: %+v %v %v; slots say %+v %v %v", st, found, err, best, bestOK, verr)
			}
		}
	})
}

// checkSet fails unless s is sorted, disjoint and non-adjacent.
func checkSet(t *testing.T, what string, s rangeSet) {
	t.Helper()
	for i, r := range s {
		if r.Last < r.First || (i > 0 && (s[i-1].Last == ^uint64(0) || r.First <= s[i-1].Last+1)) {
			t.Fatalf("%s %v is not sorted, disjoint and non-adjacent", what, s)
		}
	}
}

// FuzzProgress: decodeProg takes any slot without panicking; what it
// accepts holds well-formed range sets and re-encodes to a slot that
// decodes to the same state; readProg of a file of two slots picks the
// valid one of highest generation.
func FuzzProgress(f *testing.F) {
	f.Add(encodeProg(nil, 3, 10, rangeSet{{12, 14}, {20, 20}}, rangeSet{{11, 11}, {15, 19}}), []byte{})
	f.Add(encodeProg(nil, 1, 0, nil, nil), encodeProg(nil, 2, 5, nil, rangeSet{{6, 9}}))
	f.Fuzz(func(t *testing.T, s0, s1 []byte) {
		var best progState
		bestOK := false
		slots := [][]byte{fixProgCRC(s0), s1}
		for _, in := range [][]byte{s0, s1, slots[0]} {
			p, ok := decodeProg(in)
			if !ok {
				continue
			}
			checkSet(t, "acknowledged", p.a)
			checkSet(t, "sent", p.s)
			back, ok := decodeProg(encodeProg(nil, p.gen, p.acked, p.a, p.s))
			if !ok || back.gen != p.gen || back.acked != p.acked || !slices.Equal(back.a, p.a) || !slices.Equal(back.s, p.s) {
				t.Fatalf("progress %+v re-encodes to %+v (%v)", p, back, ok)
			}
		}
		for i, in := range slots {
			if len(in) > progSlot {
				slots[i] = in[:progSlot]
			}
			if p, ok := decodeProg(slots[i]); ok && (!bestOK || p.gen > best.gen) {
				best, bestOK = p, true
			}
		}
		file := append(append(make([]byte, 0, 2*progSlot), slots[0]...), make([]byte, progSlot-len(slots[0]))...)
		file = append(file, slots[1]...)
		p, ok := readProg(bytes.NewReader(file))
		if ok != bestOK || (ok && (p.gen != best.gen || p.acked != best.acked || !slices.Equal(p.a, best.a) || !slices.Equal(p.s, best.s))) {
			t.Fatalf("readProg: %+v %v; slots say %+v %v", p, ok, best, bestOK)
		}
	})
}

// FuzzOpenState opens a spool whose segment holds records 1..20 under a
// checkpoint and a progress file of any content whose CRCs are valid (what
// a relay of this version could have written, or a bug of it): Open must
// not panic or hang; if it opens, what it reads back is a subset of the
// segment in order, and new records get numbers never used before.
func FuzzOpenState(f *testing.F) {
	f.Add(uint64(2), uint64(0), uint64(1<<20), uint64(4), uint64(3), uint64(5), []byte{})
	f.Add(uint64(9), uint64(7), uint64(25), uint64(2), uint64(4), uint64(9), []byte{2, 11, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0, 15, 0, 0, 0, 0, 0, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0})
	f.Add(^uint64(0), ^uint64(0)-3, ^uint64(0), ^uint64(0), ^uint64(0), ^uint64(0), []byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	tmpl := f.TempDir()
	d, err := Open(Options{Dir: tmpl, Logger: discardLogger})
	if err != nil {
		f.Fatal(err)
	}
	recs := make([]Record, 20)
	for i := range recs {
		recs[i] = rec(i+1, 40)
	}
	done := make(chan error, 1)
	if err := d.Append(context.Background(), recs, func(err error) { done <- err }); err != nil {
		f.Fatal(err)
	}
	if err := <-done; err != nil {
		f.Fatal(err)
	}
	d.Close()
	segs, _ := filepath.Glob(filepath.Join(tmpl, "*.seg"))
	if len(segs) == 0 {
		ents, _ := os.ReadDir(tmpl)
		f.Fatalf("no segment in %v", ents)
	}
	var segFiles = map[string][]byte{}
	for _, s := range segs {
		b, _ := os.ReadFile(s)
		segFiles[filepath.Base(s)] = b
	}
	f.Fuzz(func(t *testing.T, gen, acked, seqRes, segRes, pgen, packed uint64, rs []byte) {
		dir := t.TempDir()
		for n, b := range segFiles {
			os.WriteFile(filepath.Join(dir, n), b, 0o640)
		}
		ck := make([]byte, 2*ckptSlot)
		copy(ck[int(gen%2)*ckptSlot:], ckptState{gen: gen, acked: acked, seqRes: seqRes, segRes: segRes}.encode())
		os.WriteFile(filepath.Join(dir, ckptName), ck, 0o640)
		var a, s rangeSet
		if len(rs) > 0 {
			na := int(rs[0])
			for i, p := 0, rs[1:]; len(p) >= 16 && i < 64; i, p = i+1, p[16:] {
				r := Range{binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])}
				if i < na {
					a.add(r)
				} else {
					s.add(r)
				}
			}
		}
		pb := make([]byte, 2*progSlot)
		copy(pb[int(pgen%2)*progSlot:], encodeProg(nil, pgen, packed, a, s))
		os.WriteFile(filepath.Join(dir, progName), pb, 0o640)

		d, err := Open(Options{Dir: dir, Logger: discardLogger})
		if err != nil {
			return
		}
		defer d.Close()
		var seen []uint64
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
			got, err := d.Read(ctx, 100)
			cancel()
			if err != nil || len(got) == 0 {
				break
			}
			for _, r := range got {
				if r.Seq < 1 || r.Seq > 20 || (len(seen) > 0 && r.Seq <= seen[len(seen)-1]) {
					t.Fatalf("read seq %d after %v", r.Seq, seen)
				}
				if want := rec(int(r.Seq), 40); !bytes.Equal(r.Raw, want.Raw) {
					t.Fatalf("seq %d: raw %q", r.Seq, r.Raw)
				}
				seen = append(seen, r.Seq)
			}
		}
		nr := []Record{rec(99, 40)}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := d.Append(ctx, nr, nil); err == nil && nr[0].Seq <= max(20, seqRes-1) && seqRes <= ^uint64(0)-resChunk {
			t.Fatalf("new record got seq %d; the segment holds 1..20 and the checkpoint reserved below %d", nr[0].Seq, seqRes)
		}
	})
}

// Seed corpora of the targets above, from a real spool's files: valid-*
// must be accepted, bad-* (torn, flipped, another version) refused.
// TestCursorCorpus checks the committed files; SPOOL_WRITE_SEEDS=1
// rewrites them.

type cursorSeed struct {
	target, name string
	args         [][]byte
}

// realCursorFiles runs a spool through appends, reads, sends and acks
// out of order and returns its checkpoint and progress files: while open
// (as kill -9 leaves them) and after Close.
func realCursorFiles(t *testing.T) (ckOpen, progOpen, ckClosed, progClosed []byte) {
	dir := t.TempDir()
	d, err := Open(Options{Dir: dir, Logger: discardLogger})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, d, 1, 100, 60)
	got, err := d.Read(context.Background(), 60)
	if err != nil || len(got) == 0 {
		t.Fatalf("read %d: %v", len(got), err)
	}
	first := got[0].Seq
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(d.Sent(Range{first, first + 59}))
	must(d.Ack(first, first+19))
	must(d.Ack(first+30, first+34))
	must(d.Ack(first+50, first+50))
	time.Sleep(50 * time.Millisecond) // acks reach the progress file within 1 ms
	ckOpen, _ = os.ReadFile(filepath.Join(dir, ckptName))
	progOpen, _ = os.ReadFile(filepath.Join(dir, progName))
	must(d.Close())
	ckClosed, _ = os.ReadFile(filepath.Join(dir, ckptName))
	progClosed, _ = os.ReadFile(filepath.Join(dir, progName))
	return
}

// progSlots splits a progress file into its two slots, each cut after its
// CRC (the rest of a slot is zeros).
func progSlots(b []byte) [2][]byte {
	var out [2][]byte
	for i := range out {
		if len(b) < (i+1)*progSlot {
			continue
		}
		s := b[i*progSlot : (i+1)*progSlot]
		n := progHdr + 4
		if _, ok := decodeProg(s); ok {
			na, ns := int(binary.LittleEndian.Uint32(s[32:])), int(binary.LittleEndian.Uint32(s[36:]))
			n = progHdr + 16*(na+ns) + 4
		}
		out[i] = bytes.Clone(s[:n])
	}
	return out
}

func cursorSeeds(t *testing.T) []cursorSeed {
	ckOpen, progOpen, ckClosed, progClosed := realCursorFiles(t)
	var s []cursorSeed
	s = append(s,
		cursorSeed{"FuzzCheckpoint", "valid-open", [][]byte{ckOpen}},
		cursorSeed{"FuzzCheckpoint", "valid-closed", [][]byte{ckClosed}},
		cursorSeed{"FuzzCheckpoint", "valid-one-slot", [][]byte{ckClosed[:ckptSlot]}},
		cursorSeed{"FuzzCheckpoint", "bad-torn", [][]byte{ckClosed[:ckptLen-5]}},
		cursorSeed{"FuzzCheckpoint", "bad-zeros", [][]byte{make([]byte, 2*ckptSlot)}},
	)
	fl := bytes.Clone(ckClosed)
	for off := 0; off < len(fl); off += ckptSlot {
		fl[off+20] ^= 1
	}
	s = append(s, cursorSeed{"FuzzCheckpoint", "bad-flipped", [][]byte{fl}})
	v2 := bytes.Clone(ckClosed)
	binary.LittleEndian.PutUint32(v2[8:], 2)
	s = append(s, cursorSeed{"FuzzCheckpoint", "bad-version", [][]byte{fixCkptCRC(v2)}})

	po, pc := progSlots(progOpen), progSlots(progClosed)
	s = append(s,
		cursorSeed{"FuzzProgress", "valid-open", [][]byte{po[0], po[1]}},
		cursorSeed{"FuzzProgress", "valid-closed", [][]byte{pc[0], pc[1]}},
		cursorSeed{"FuzzProgress", "bad-torn", [][]byte{po[0][:len(po[0])-9], po[1][:progHdr]}},
	)
	fp0, fp1 := bytes.Clone(po[0]), bytes.Clone(po[1])
	fp0[progHdr+3] ^= 0x10
	fp1[progHdr-1] ^= 0x10
	s = append(s, cursorSeed{"FuzzProgress", "bad-flipped", [][]byte{fp0, fp1}})
	big := bytes.Clone(po[0])
	binary.LittleEndian.PutUint32(big[32:], maxProgRngs)
	s = append(s, cursorSeed{"FuzzProgress", "bad-counts", [][]byte{big, []byte{}}})
	return s
}

// cursorAccepted reports whether the target's reader finds a valid slot.
func cursorAccepted(target string, args [][]byte) bool {
	switch target {
	case "FuzzCheckpoint":
		_, found, err := readCkpt(bytes.NewReader(args[0]))
		return found && err == nil
	case "FuzzProgress":
		_, ok0 := decodeProg(args[0])
		_, ok1 := decodeProg(args[1])
		return ok0 || ok1
	}
	panic(target)
}

func TestCursorCorpus(t *testing.T) {
	write := os.Getenv("SPOOL_WRITE_SEEDS") != ""
	for _, s := range cursorSeeds(t) {
		want := strings.HasPrefix(s.name, "valid-")
		if got := cursorAccepted(s.target, s.args); got != want {
			t.Errorf("%s/%s: accepted %v", s.target, s.name, got)
		}
		path := filepath.Join("testdata", "fuzz", s.target, s.name)
		if write {
			var b strings.Builder
			b.WriteString("go test fuzz v1\n")
			for _, a := range s.args {
				b.WriteString("[]byte(" + strconv.Quote(string(a)) + ")\n")
			}
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		args, err := readCorpusFile(path)
		if err != nil {
			t.Errorf("seed corpus (SPOOL_WRITE_SEEDS=1 go test -run TestCursorCorpus writes it): %v", err)
			continue
		}
		if len(args) != len(s.args) {
			t.Errorf("%s: %d arguments, want %d", path, len(args), len(s.args))
			continue
		}
		if got := cursorAccepted(s.target, args); got != want {
			t.Errorf("%s: committed seed accepted %v", path, got)
		}
	}
}

func readCorpusFile(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("%s: not a corpus file", path)
	}
	var args [][]byte
	for _, l := range lines[1:] {
		q, ok := strings.CutPrefix(l, "[]byte(")
		if !ok || !strings.HasSuffix(q, ")") {
			return nil, fmt.Errorf("%s: line %q", path, l)
		}
		u, err := strconv.Unquote(q[:len(q)-1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		args = append(args, []byte(u))
	}
	return args, nil
}

var discardLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
