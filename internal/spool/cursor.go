package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// The spool keeps two small files beside its segments, each with two slots
// written alternately, so a write torn by a crash leaves the other slot
// intact; every slot carries a generation and a CRC-32C.
//
// checkpoint: fsync'd. The acknowledged position (everything <= acked is
// delivered) and the reservations: sequence numbers below seqRes and
// segment numbers below segRes may have been used, so after any crash,
// power loss included, new records and segments start above them and a
// number is never used twice. It is written before segments are deleted,
// when a reservation runs low, at Open and at Close.
//
// progress: written (pwrite) without fsync on every Ack and Sent. A killed
// process keeps the page cache, so after kill -9 the next Open knows
// exactly which records were acknowledged (also out of order) and which
// were on the wire unacknowledged: only those are counted as redelivered.
// After a power loss it may be stale; the checkpoint bounds it from below.

const (
	ckptName    = "checkpoint"
	progName    = "progress"
	lockName    = "lock"
	formatVer   = 1
	ckptSlot    = 512
	ckptLen     = 8 + 4 + 4 + 8*4 + 4
	progSlot    = 64 << 10
	progHdr     = 8 + 4 + 4 + 8 + 8 + 4 + 4
	maxProgRngs = (progSlot - progHdr - 4) / 16
)

var (
	ckptMagic = [8]byte{'R', 'L', 'Y', 'C', 'K', 'P', 'T', 0}
	progMagic = [8]byte{'R', 'L', 'Y', 'P', 'R', 'O', 'G', 0}
)

// ckptState is the checkpoint's content.
type ckptState struct {
	gen    uint64
	acked  uint64
	seqRes uint64
	segRes uint64
}

func (c ckptState) encode() []byte {
	b := make([]byte, 0, ckptSlot)
	b = append(b, ckptMagic[:]...)
	b = binary.LittleEndian.AppendUint32(b, formatVer)
	b = binary.LittleEndian.AppendUint32(b, 0)
	for _, v := range []uint64{c.gen, c.acked, c.seqRes, c.segRes} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return b
}

// decodeCkpt parses one slot: ok false for an invalid slot; a valid slot
// of another format version is an ErrVersion error.
func decodeCkpt(b []byte) (ckptState, bool, error) {
	if len(b) < ckptLen || [8]byte(b[:8]) != ckptMagic {
		return ckptState{}, false, nil
	}
	if crc32.Checksum(b[:ckptLen-4], castagnoli) != binary.LittleEndian.Uint32(b[ckptLen-4:]) {
		return ckptState{}, false, nil
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != formatVer {
		return ckptState{}, false, fmt.Errorf("checkpoint has format version %d, this relay reads version %d: %w", v, formatVer, ErrVersion)
	}
	u := func(i int) uint64 { return binary.LittleEndian.Uint64(b[16+8*i:]) }
	return ckptState{gen: u(0), acked: u(1), seqRes: u(2), segRes: u(3)}, true, nil
}

// readCkpt returns the newest valid slot of f; found is false when neither
// slot is valid.
func readCkpt(f io.ReaderAt) (st ckptState, found bool, err error) {
	buf := make([]byte, 2*ckptSlot)
	n, rerr := f.ReadAt(buf, 0)
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return st, false, rerr
	}
	buf = buf[:n]
	for slot := 0; slot < 2; slot++ {
		if len(buf) < slot*ckptSlot+ckptLen {
			break
		}
		s, ok, err := decodeCkpt(buf[slot*ckptSlot:])
		if err != nil {
			return st, false, err
		}
		if ok && (!found || s.gen > st.gen) {
			st, found = s, true
		}
	}
	return st, found, nil
}

func writeCkpt(f *os.File, c ckptState, wr writeFunc) error {
	b := c.encode()
	_, err := wr(f, b, int64(c.gen%2)*ckptSlot)
	return err
}

// progState is the progress file's content.
type progState struct {
	gen   uint64
	acked uint64
	a     rangeSet // acknowledged (or known absent) above acked
	s     rangeSet // sent, not acknowledged
}

// encodeProg appends the slot's bytes to dst. When the sets hold more
// ranges than a slot does, the highest acknowledged ranges are left out
// (those records would be delivered again, uncounted); sent ranges come
// first because they make the redelivery count exact.
func encodeProg(dst []byte, gen, acked uint64, a, s rangeSet) []byte {
	ns := min(len(s), maxProgRngs)
	na := min(len(a), maxProgRngs-ns)
	dst = append(dst[:0], progMagic[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, formatVer)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, gen)
	dst = binary.LittleEndian.AppendUint64(dst, acked)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(na))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(ns))
	for _, r := range a[:na] {
		dst = binary.LittleEndian.AppendUint64(dst, r.First)
		dst = binary.LittleEndian.AppendUint64(dst, r.Last)
	}
	for _, r := range s[:ns] {
		dst = binary.LittleEndian.AppendUint64(dst, r.First)
		dst = binary.LittleEndian.AppendUint64(dst, r.Last)
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst, castagnoli))
}

func decodeProg(b []byte) (progState, bool) {
	if len(b) < progHdr+4 || [8]byte(b[:8]) != progMagic || binary.LittleEndian.Uint32(b[8:]) != formatVer {
		return progState{}, false
	}
	na, ns := int(binary.LittleEndian.Uint32(b[32:])), int(binary.LittleEndian.Uint32(b[36:]))
	if na < 0 || ns < 0 || na+ns > maxProgRngs {
		return progState{}, false
	}
	end := progHdr + 16*(na+ns)
	if len(b) < end+4 || crc32.Checksum(b[:end], castagnoli) != binary.LittleEndian.Uint32(b[end:]) {
		return progState{}, false
	}
	p := progState{gen: binary.LittleEndian.Uint64(b[16:]), acked: binary.LittleEndian.Uint64(b[24:])}
	rd := func(i int) Range {
		o := progHdr + 16*i
		return Range{binary.LittleEndian.Uint64(b[o:]), binary.LittleEndian.Uint64(b[o+8:])}
	}
	for i := 0; i < na; i++ {
		p.a.add(rd(i))
	}
	for i := na; i < na+ns; i++ {
		p.s.add(rd(i))
	}
	return p, true
}

// readProg returns the newest valid slot of f.
func readProg(f io.ReaderAt) (progState, bool) {
	var best progState
	found := false
	buf := make([]byte, progSlot)
	for slot := 0; slot < 2; slot++ {
		n, err := f.ReadAt(buf, int64(slot)*progSlot)
		if err != nil && !errors.Is(err, io.EOF) {
			continue
		}
		if p, ok := decodeProg(buf[:n]); ok && (!found || p.gen > best.gen) {
			best, found = p, true
		}
	}
	return best, found
}
