package link

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// rangeSet is a sorted set of disjoint, non-adjacent inclusive ranges.
type rangeSet []rng

type rng struct{ first, last uint64 }

// add inserts r.
func (s *rangeSet) add(r rng) {
	rs := *s
	// last+1 is not computed where last may be the largest uint64: it
	// would wrap to 0 and leave overlapping ranges in the set.
	i := sort.Search(len(rs), func(i int) bool { return rs[i].last >= r.first || rs[i].last+1 == r.first })
	j := i
	for j < len(rs) && (rs[j].first <= r.last || rs[j].first-1 == r.last) {
		r.first = min(r.first, rs[j].first)
		r.last = max(r.last, rs[j].last)
		j++
	}
	rs = append(rs[:i], append([]rng{r}, rs[j:]...)...)
	*s = rs
}

// has reports whether n is in the set.
func (s rangeSet) has(n uint64) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].last >= n })
	return i < len(s) && s[i].first <= n
}

// advance moves mark over every range that starts at or below mark+1 and
// drops what it covers; it returns the new mark.
func (s *rangeSet) advance(mark uint64) uint64 {
	rs := *s
	i := 0
	for ; i < len(rs) && rs[i].first <= mark+1; i++ {
		mark = max(mark, rs[i].last)
	}
	*s = append(rs[:0], rs[i:]...)
	return mark
}

// The receiver's marks are kept in two files, marks.0 and marks.1, written
// alternately and fdatasync'd before any ACK they cover leaves: a write torn
// by a crash leaves the other one whole. Each holds every sender's state:
//
//	magic "RLYLINKM", version u32, generation u64, count u32
//	per sender: id [16], mark u64, ranges u16, ranges × (first u64, last u64), name (u8 length, bytes)
//	CRC-32C of everything before it, u32
//
// All big-endian.
const (
	marksMagic   = "RLYLINKM"
	marksVersion = 1
	// maxDoneRanges bounds the out-of-order ranges kept per sender; past
	// it the highest are left out of the file (their batches would be
	// taken again after a crash, never lost).
	maxDoneRanges = 1024
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// markEntry is one sender's durable state.
type markEntry struct {
	id   SenderID
	mark uint64
	done rangeSet
	name string
}

func encodeMarks(gen uint64, es []markEntry) []byte {
	b := make([]byte, 0, 64+len(es)*64)
	b = append(b, marksMagic...)
	b = binary.BigEndian.AppendUint32(b, marksVersion)
	b = binary.BigEndian.AppendUint64(b, gen)
	b = binary.BigEndian.AppendUint32(b, uint32(len(es)))
	for _, e := range es {
		b = append(b, e.id[:]...)
		b = binary.BigEndian.AppendUint64(b, e.mark)
		done := e.done
		if len(done) > maxDoneRanges {
			done = done[:maxDoneRanges]
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(done)))
		for _, r := range done {
			b = binary.BigEndian.AppendUint64(b, r.first)
			b = binary.BigEndian.AppendUint64(b, r.last)
		}
		name := e.name
		if len(name) > maxName {
			name = name[:maxName]
		}
		b = append(b, byte(len(name)))
		b = append(b, name...)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeMarks parses one marks file; ok is false for a torn or foreign one.
func decodeMarks(b []byte) (gen uint64, es []markEntry, err error) {
	if len(b) < 24+4 || string(b[:8]) != marksMagic {
		return 0, nil, fmt.Errorf("not a marks file: %w", ErrMalformed)
	}
	if crc32.Checksum(b[:len(b)-4], castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return 0, nil, fmt.Errorf("marks file checksum: %w", ErrMalformed)
	}
	if v := binary.BigEndian.Uint32(b[8:]); v != marksVersion {
		return 0, nil, fmt.Errorf("marks file version %d, this relay reads %d: %w", v, marksVersion, ErrVersion)
	}
	gen = binary.BigEndian.Uint64(b[12:])
	n := binary.BigEndian.Uint32(b[20:])
	p := b[24 : len(b)-4]
	for i := uint32(0); i < n; i++ {
		if len(p) < 16+8+2 {
			return 0, nil, fmt.Errorf("marks file truncated: %w", ErrMalformed)
		}
		var e markEntry
		copy(e.id[:], p)
		e.mark = binary.BigEndian.Uint64(p[16:])
		nr := int(binary.BigEndian.Uint16(p[24:]))
		p = p[26:]
		if len(p) < nr*16+1 {
			return 0, nil, fmt.Errorf("marks file truncated: %w", ErrMalformed)
		}
		for j := 0; j < nr; j++ {
			r := rng{binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])}
			if r.last < r.first || r.first <= e.mark {
				return 0, nil, fmt.Errorf("marks file range %d..%d: %w", r.first, r.last, ErrMalformed)
			}
			e.done.add(r)
			p = p[16:]
		}
		l := int(p[0])
		if len(p) < 1+l {
			return 0, nil, fmt.Errorf("marks file truncated: %w", ErrMalformed)
		}
		e.name = string(p[1 : 1+l])
		p = p[1+l:]
		es = append(es, e)
	}
	if len(p) != 0 {
		return 0, nil, fmt.Errorf("marks file: %d bytes left over: %w", len(p), ErrMalformed)
	}
	return gen, es, nil
}

// marksStore writes the marks files.
type marksStore struct {
	dir   string
	gen   uint64
	files [2]*os.File
	sync  func(*os.File) error // fdatasync; tests replace it
}

// openMarks opens (creating) the marks files in dir and returns the newest
// whole state. A directory whose files are both unreadable is refused:
// starting empty would take every resent batch again.
func openMarks(dir string) (*marksStore, []markEntry, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("link state directory %s: %w; create it (or make its parent writable) for the relay's user", dir, err)
	}
	m := &marksStore{dir: dir, sync: fdatasync}
	var best []markEntry
	found, created := false, false
	var errs []error
	for i := range m.files {
		path := filepath.Join(dir, fmt.Sprintf("marks.%d", i))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			m.close()
			return nil, nil, fmt.Errorf("link state directory %s is not usable: %w; make it writable by the relay's user", dir, err)
		}
		m.files[i] = f
		b, err := os.ReadFile(path)
		if err != nil {
			m.close()
			return nil, nil, fmt.Errorf("link state %s: %w", path, err)
		}
		if len(b) == 0 {
			created = true
			continue
		}
		gen, es, err := decodeMarks(b)
		if err != nil {
			if errors.Is(err, ErrVersion) {
				m.close()
				return nil, nil, fmt.Errorf("link state %s: %w; run the relay version that wrote it", path, err)
			}
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if !found || gen > m.gen {
			m.gen, best, found = gen, es, true
		}
	}
	if !found && len(errs) == 2 {
		m.close()
		return nil, nil, fmt.Errorf("link state directory %s: both marks files are unreadable (%v); move the directory away to start empty (batches that were in flight will then be taken again)", dir, errors.Join(errs...))
	}
	if created {
		syncDir(dir)
	}
	return m, best, nil
}

// write persists es (fdatasync'd) into the older file.
func (m *marksStore) write(es []markEntry) error {
	m.gen++
	f := m.files[m.gen%2]
	b := encodeMarks(m.gen, es)
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write link marks: %w", err)
	}
	if err := f.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("write link marks: %w", err)
	}
	if err := m.sync(f); err != nil {
		return fmt.Errorf("fsync link marks: %w", err)
	}
	return nil
}

func (m *marksStore) close() {
	for _, f := range m.files {
		if f != nil {
			f.Close()
		}
	}
}

func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// IDFile is the name of the file that holds a sender's id in its spool
// directory (and a receiver's in its state directory).
const IDFile = "link-id"

// LoadID reads the id in dir/link-id, creating it (random, fsync'd) if
// the file does not exist: a new directory is a new identity.
func LoadID(dir string) (SenderID, error) {
	var id SenderID
	path := filepath.Join(dir, IDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if n, err := hex.Decode(id[:], []byte(s)); err != nil || n != len(id) || len(s) != 2*len(id) || id == (SenderID{}) {
			return id, fmt.Errorf("link id %s is not 32 hex digits; restore it, or delete it to make this a new sender (what is spooled then counts as new at the receiver)", path)
		}
		return id, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return id, fmt.Errorf("link id %s: %w", path, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return id, fmt.Errorf("link id: %w", err)
	}
	if _, err := rand.Read(id[:]); err != nil {
		return id, err
	}
	f, err := os.OpenFile(path+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return id, fmt.Errorf("link id: %w; make %s writable by the relay's user", err, dir)
	}
	_, err = f.WriteString(hex.EncodeToString(id[:]) + "\n")
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	if err == nil {
		err = os.Rename(path+".tmp", path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return id, fmt.Errorf("link id %s: %w", path, err)
	}
	return id, nil
}
