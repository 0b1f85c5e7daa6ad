package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A segment file is a header followed by frames (see record.go):
//
//	magic    "RLYSPOOL"
//	version  u32 LE
//	flags    u32 LE (0)
//	number   u64 LE   the segment number, as in the file name
//	base     u64 LE   the seq of its first record
//	reserved u32
//	crc      u32 LE   CRC-32C of the 36 bytes before it
//
// Within a segment, seqs are consecutive, so a corrupt stretch costs
// exactly the seqs missing around it. Segments are named by their number,
// 20 decimal digits and ".seg", and numbers are never reused.
const segHeader = 40

var segMagic = [8]byte{'R', 'L', 'Y', 'S', 'P', 'O', 'O', 'L'}

func segName(no uint64) string { return fmt.Sprintf("%020d.seg", no) }

// parseSegName returns the number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	s, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(s) != 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func encodeSegHeader(no, base uint64) []byte {
	b := make([]byte, 0, segHeader)
	b = append(b, segMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, formatVer)
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, no)
	b = binary.LittleEndian.AppendUint64(b, base)
	b = binary.LittleEndian.AppendUint32(b, 0)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeSegHeader checks a header; a valid header of another version is an
// ErrVersion error, anything else wrong is ErrCorrupt.
func decodeSegHeader(b []byte) (no, base uint64, err error) {
	if len(b) < segHeader || [8]byte(b[:8]) != segMagic ||
		crc32.Checksum(b[:segHeader-4], castagnoli) != binary.LittleEndian.Uint32(b[segHeader-4:]) {
		return 0, 0, fmt.Errorf("segment header: %w", ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != formatVer {
		return 0, 0, fmt.Errorf("segment has format version %d, this relay reads version %d: %w", v, formatVer, ErrVersion)
	}
	return binary.LittleEndian.Uint64(b[16:]), binary.LittleEndian.Uint64(b[24:]), nil
}

// idxEntry locates a frame: the sparse index of a segment, one entry per
// 64 KiB or per second of appends.
type idxEntry struct {
	seq uint64
	off int64
	t   int64 // received time of that record, Unix ns (0: unknown)
}

const idxStep = 64 << 10

// segment is one segment file as the spool tracks it.
type segment struct {
	no   uint64
	base uint64
	path string
	size int64  // bytes in the file, header included (active: written so far)
	last uint64 // highest seq in it; base-1 while empty
	// synced is how much of the file is durable; syncedLast the highest seq
	// in that part. A failed write or fsync truncates the file back to it.
	synced     int64
	syncedLast uint64
	index      []idxEntry
	f          *os.File // the committer's descriptor, active segment only
}

func (s *segment) empty() bool { return s.last < s.base }

// seek returns the best known start for finding seq: the last index entry
// at or before it, or the first frame.
func (s *segment) seek(seq uint64) (off int64, at uint64) {
	off, at = segHeader, s.base
	lo, hi := 0, len(s.index)
	for lo < hi {
		m := (lo + hi) / 2
		if s.index[m].seq <= seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo > 0 && s.index[lo-1].off < s.size {
		return s.index[lo-1].off, s.index[lo-1].seq
	}
	return off, at
}

// addIndex records a frame start, sparsely.
func (s *segment) addIndex(seq uint64, off int64, t int64, force bool) {
	if n := len(s.index); n > 0 && !force {
		last := s.index[n-1]
		if off-last.off < idxStep && (t == 0 || last.t == 0 || t-last.t < 1e9) {
			return
		}
	}
	s.index = append(s.index, idxEntry{seq: seq, off: off, t: t})
}

// trimIndex drops entries at or past size.
func (s *segment) trimIndex() {
	i := len(s.index)
	for i > 0 && s.index[i-1].off >= s.size {
		i--
	}
	s.index = s.index[:i]
}

// segReader reads frames of one segment file through a window buffer.
type segReader struct {
	f      io.ReaderAt
	limit  int64 // readable bytes
	buf    []byte
	bufOff int64
}

const readWindow = 1 << 20

// at returns the n bytes at off, or false if they are not all below limit
// or cannot be read.
func (r *segReader) at(off int64, n int) ([]byte, bool) {
	if off < 0 || n < 0 || off+int64(n) > r.limit {
		return nil, false
	}
	if off >= r.bufOff && off+int64(n) <= r.bufOff+int64(len(r.buf)) {
		return r.buf[off-r.bufOff : off-r.bufOff+int64(n)], true
	}
	want := int(min(max(int64(n), readWindow), r.limit-off))
	if cap(r.buf) < want {
		r.buf = make([]byte, want)
	}
	b := r.buf[:want]
	m, err := r.f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		r.buf, r.bufOff = r.buf[:0], 0
		return nil, false
	}
	r.buf, r.bufOff = b[:m], off
	if m < n {
		return nil, false
	}
	return r.buf[:n], true
}

// frame decodes the frame at off into v and returns its size, or 0 if
// there is no valid frame there.
func (r *segReader) frame(off int64, v *frameView) int64 {
	h, ok := r.at(off, frameHeader)
	if !ok {
		return 0
	}
	n, ok := frameLen(h)
	if !ok {
		return 0
	}
	b, ok := r.at(off, frameHeader+n)
	if !ok || !decodeFrame(b, v) {
		return 0
	}
	return int64(frameHeader + n)
}

// resync looks for the next valid frame after a bad one at off, whose seq
// fits what can lie between: at least next (the seq expected at off) and at
// most one more per minFrame bytes skipped. It returns its offset, or -1.
func (r *segReader) resync(off int64, next uint64, v *frameView) int64 {
	for p := off + 1; p+minFrame <= r.limit; p++ {
		h, ok := r.at(p, frameHeader+8)
		if !ok {
			return -1
		}
		n, ok := frameLen(h)
		if !ok || p+int64(frameHeader+n) > r.limit {
			continue
		}
		seq := peekSeq(h)
		if seq < next || seq > next+uint64((p-off)/minFrame)+1 {
			continue
		}
		if r.frame(p, v) > 0 {
			return p
		}
	}
	return -1
}

// segScan is what a full scan of one segment finds.
type segScan struct {
	no, base  uint64
	runs      rangeSet // seqs present
	last      uint64   // highest seq present; base-1 if none
	records   int
	validEnd  int64 // end of the last valid frame
	tail      int64 // bytes after validEnd that hold no valid frame (torn tail)
	corrupt   uint64
	badRegion []Range // byte ranges skipped inside the segment (from, to)
	index     []idxEntry
}

// scanSegment reads every frame of a segment whose header is valid, from
// its first frame to limit. It never panics on any input: it is what Open,
// Verify and the fuzz target run.
func scanSegment(f io.ReaderAt, limit int64, base uint64, each func(off int64, v *frameView)) segScan {
	r := &segReader{f: f, limit: limit}
	sc := segScan{base: base, last: base - 1, validEnd: segHeader}
	var v frameView
	off, next := int64(segHeader), base
	for off < limit {
		n := r.frame(off, &v)
		if n > 0 && v.seq >= next {
			if v.seq > next && sc.records > 0 {
				sc.corrupt += v.seq - next
			}
			sc.runs.add(Range{v.seq, v.seq})
			if len(sc.index) == 0 || off-sc.index[len(sc.index)-1].off >= idxStep {
				sc.index = append(sc.index, idxEntry{seq: v.seq, off: off, t: v.received})
			}
			if each != nil {
				each(off, &v)
			}
			sc.records++
			sc.last, next = v.seq, v.seq+1
			off += n
			sc.validEnd = off
			continue
		}
		p := r.resync(off, next, &v)
		if p < 0 {
			sc.tail = limit - off
			break
		}
		if sc.records == 0 && v.seq > base {
			// Records at the start of the segment are gone.
			sc.corrupt += v.seq - base
			next = v.seq
		}
		sc.badRegion = append(sc.badRegion, Range{uint64(off), uint64(p)})
		off = p
	}
	return sc
}

// syncDir fsyncs a directory, so that files created or removed in it stay
// so after a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// listSegments returns the segment numbers in dir, sorted.
func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var nos []uint64
	for _, e := range ents {
		if n, ok := parseSegName(e.Name()); ok && e.Type().IsRegular() {
			nos = append(nos, n)
		}
	}
	return nos, nil // ReadDir sorts by name, and names are zero-padded
}

func segPath(dir string, no uint64) string { return filepath.Join(dir, segName(no)) }
