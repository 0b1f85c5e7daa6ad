package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Open opens (or creates) the disk spool in opt.Dir and recovers it: the
// tail of every segment is verified record by record, a torn or corrupt
// tail is truncated (counted, logged with file and offset), a segment whose
// header is unreadable is moved to quarantine/, sizes and counts are
// recomputed from the files, and reading resumes at the oldest record not
// acknowledged. A directory it cannot use (permissions, another process
// holding it, a format it does not read) is an error that says what to
// change.
func Open(opt Options) (*Disk, error) {
	opt = opt.withDefaults()
	if opt.Dir == "" {
		return nil, errors.New("spool: no directory set")
	}
	dir := filepath.Clean(opt.Dir)
	newDir := false
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("spool directory %s: %w; create it (or make its parent writable) for the relay's user", dir, err)
		}
		newDir = true
	} else if err != nil {
		return nil, fmt.Errorf("spool directory %s: %w", dir, err)
	}
	lockF, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool directory %s is not usable: %w; make it writable by the relay's user", dir, err)
	}
	ok, err := lockFile(lockF)
	if !ok {
		pid := readPid(lockF)
		lockF.Close()
		if err != nil {
			return nil, fmt.Errorf("spool directory %s: lock: %w", dir, err)
		}
		return nil, fmt.Errorf("spool directory %s is in use by another process (pid %s): %w; stop it, or give each relay and each output its own spool dir", dir, pid, ErrLocked)
	}
	lockF.Truncate(0)
	lockF.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)

	d := &Disk{
		opt:      opt,
		dir:      dir,
		log:      opt.Logger.With("spool", dir),
		lockF:    lockF,
		pendMax:  int(min(8<<20, opt.MaxBytes/8)),
		closeCh:  make(chan struct{}),
		commitCh: make(chan struct{}, 1),
		cleanCh:  make(chan struct{}, 1),
		dataCh:   make(chan struct{}),
		roomCh:   make(chan struct{}),
	}
	if err := d.recover(newDir); err != nil {
		for _, f := range []*os.File{d.ckptF, d.progF} {
			if f != nil {
				f.Close()
			}
		}
		lockF.Close()
		return nil, err
	}
	d.wg.Add(2)
	go d.commitLoop()
	go d.cleanLoop()
	return d, nil
}

func readPid(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	if s := strings.TrimSpace(string(b[:n])); s != "" {
		return s
	}
	return "unknown"
}

// recover reads the checkpoint, progress and segments and sets d up.
func (d *Disk) recover(newDir bool) error {
	dir := d.dir
	created := newDir
	// Checkpoint.
	var ck ckptState
	ckFound := false
	ckPath := filepath.Join(dir, ckptName)
	f, err := os.OpenFile(ckPath, os.O_RDWR, 0)
	switch {
	case err == nil:
		ck, ckFound, err = readCkpt(f)
		if err != nil {
			f.Close()
			return fmt.Errorf("spool directory %s: %w; run the relay version that wrote it, or move the directory away to start empty", dir, err)
		}
		d.ckptF = f
	case errors.Is(err, fs.ErrNotExist):
		f, err = os.OpenFile(ckPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			return fmt.Errorf("spool directory %s is not usable: %w; make it writable by the relay's user", dir, err)
		}
		// Written, not truncated: a sparse file would need new blocks at
		// its first checkpoint, which a full disk refuses.
		if _, err := f.WriteAt(make([]byte, 2*ckptSlot), 0); err != nil {
			f.Close()
			return fmt.Errorf("spool directory %s: %w", dir, err)
		}
		d.ckptF = f
		created = true
	default:
		return fmt.Errorf("spool directory %s is not usable: %w; make it readable and writable by the relay's user", dir, err)
	}
	// Progress.
	var prog progState
	progFound := false
	pPath := filepath.Join(dir, progName)
	pf, err := os.OpenFile(pPath, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		pf, err = os.OpenFile(pPath, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
		if err == nil {
			_, err = pf.WriteAt(make([]byte, 2*progSlot), 0)
		}
		created = true
	} else if err == nil {
		prog, progFound = readProg(pf)
	}
	if err != nil {
		if pf != nil {
			pf.Close()
		}
		return fmt.Errorf("spool directory %s is not usable: %w; make it writable by the relay's user", dir, err)
	}
	d.progF = pf

	nos, err := listSegments(dir)
	if err != nil {
		return fmt.Errorf("spool directory %s: %w", dir, err)
	}
	if !ckFound && len(nos) > 0 {
		d.log.Warn("spool: checkpoint missing or unreadable; every record left in the segments will be delivered again", "file", ckPath)
	}
	w := ck.acked
	if progFound && prog.acked >= w {
		w = prog.acked
	}
	prog.a.trimBelow(w)
	prog.s.trimBelow(w)

	// Segments.
	var present rangeSet
	var maxSeq, maxNo uint64
	for _, no := range nos {
		maxNo = max(maxNo, no)
		s, sc, err := d.openSegment(no)
		if err != nil {
			return err
		}
		if s == nil {
			continue
		}
		for _, r := range sc.runs {
			present.add(r)
		}
		if !s.empty() {
			maxSeq = max(maxSeq, s.last)
		}
		d.segs = append(d.segs, s)
		d.fileBytes += s.size
	}
	sortSegs(d.segs)

	d.nextSeq = max(ck.seqRes, maxSeq+1, 1)
	d.nextSeg = max(ck.segRes, maxNo+1, 1)
	d.w = w
	// Records: what is present above w and not acknowledged out of order.
	d.a = prog.a
	for _, r := range present {
		if r.Last <= w {
			continue
		}
		r.First = max(r.First, w+1)
		d.records += int64(r.Last-r.First+1) - int64(d.a.count(r))
	}
	// Every seq above w that no segment holds is absent: treat it as
	// acknowledged, so the watermark moves over it (restart gaps, tails
	// lost to a crash, quarantined segments).
	next := w + 1
	for _, r := range present {
		if r.Last < next {
			continue
		}
		if r.First > next {
			d.a.add(Range{next, r.First - 1})
		}
		next = r.Last + 1
	}
	if next < d.nextSeq {
		d.a.add(Range{next, d.nextSeq - 1})
	}
	d.s = prog.s
	d.resent = append(rangeSet(nil), prog.s...)
	d.progGen = prog.gen
	d.ck = ck
	d.seqRes, d.segRes = ck.seqRes, ck.segRes
	d.advance()
	d.written = d.nextSeq - 1

	// Reserve numbers and checkpoint the merged position, then delete
	// what it covers.
	if err := d.checkpoint(d.nextSeq+resChunk, d.nextSeg+16); err != nil {
		return fmt.Errorf("spool directory %s: %w; check the disk and the directory's permissions", dir, err)
	}
	if created {
		if err := syncDir(dir); err != nil {
			return err
		}
		if newDir {
			syncDir(filepath.Dir(dir))
		}
	}
	var keep []*segment
	removed := false
	mayDelete := true
	if d.opt.BeforeDelete != nil {
		if err := d.opt.BeforeDelete(); err != nil {
			d.log.Warn("spool: acknowledged segments kept: their user could not save its state", "err", err)
			mayDelete = false
		}
	}
	for _, s := range d.segs {
		if s.last <= d.w && mayDelete {
			if err := os.Remove(s.path); err != nil {
				return fmt.Errorf("spool: remove acknowledged segment: %w", err)
			}
			d.fileBytes -= s.size
			removed = true
			continue
		}
		keep = append(keep, s)
	}
	d.segs = keep
	if removed {
		syncDir(dir)
	}
	d.dirty = true
	d.writeProgressLocked()
	d.log.Info("spool opened", "segments", len(d.segs), "records", d.records, "bytes", d.fileBytes,
		"resume_at", d.rpos, "sent_before_restart", rangeCount(d.resent))
	return nil
}

func rangeCount(s rangeSet) uint64 {
	var n uint64
	for _, r := range s {
		n += r.Last - r.First + 1
	}
	return n
}

func sortSegs(segs []*segment) {
	for i := 1; i < len(segs); i++ {
		for j := i; j > 0 && segs[j].no < segs[j-1].no; j-- {
			segs[j], segs[j-1] = segs[j-1], segs[j]
		}
	}
}

// openSegment checks a segment's header, scans its frames, truncates a
// torn tail and returns it; nil (and no error) for a segment that was
// quarantined.
func (d *Disk) openSegment(no uint64) (*segment, segScan, error) {
	path := segPath(d.dir, no)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, segScan{}, fmt.Errorf("spool segment %s: %w; make the directory's files readable and writable by the relay's user", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, segScan{}, err
	}
	hdr := make([]byte, segHeader)
	n, _ := f.ReadAt(hdr, 0)
	hno, base, herr := decodeSegHeader(hdr[:n])
	if errors.Is(herr, ErrVersion) {
		return nil, segScan{}, fmt.Errorf("spool segment %s: %w; run the relay version that wrote it, or move the directory away", path, herr)
	}
	if herr != nil || hno != no || base == 0 {
		if fi.Size() <= segHeader && n < segHeader && allZero(hdr[:n]) {
			// Created but never written (a crash right after creating it).
			d.log.Warn("spool: removing an empty segment", "file", path)
			os.Remove(path)
			syncDir(d.dir)
			return nil, segScan{}, nil
		}
		return nil, segScan{}, d.quarantine(path, fi.Size())
	}
	var each func(int64, *frameView)
	if d.opt.Recovered != nil {
		each = func(_ int64, v *frameView) {
			if len(v.meta) > 0 {
				d.opt.Recovered(v.seq, v.meta)
			}
		}
	}
	sc := scanSegment(f, fi.Size(), base, each)
	size := fi.Size()
	if sc.corrupt > 0 {
		d.corrupt += sc.corrupt
		d.log.Warn("spool: corrupt records inside a segment skipped", "file", path, "records", sc.corrupt, "regions", len(sc.badRegion))
	}
	if sc.tail > 0 {
		d.log.Warn("spool: torn tail truncated", "file", path, "offset", sc.validEnd, "bytes", sc.tail)
		if err := f.Truncate(sc.validEnd); err != nil {
			return nil, segScan{}, fmt.Errorf("spool segment %s: truncate torn tail at %d: %w", path, sc.validEnd, err)
		}
		fdatasync(f)
		d.truncTails++
		d.truncB += uint64(sc.tail)
		size = sc.validEnd
	}
	s := &segment{no: no, base: base, path: path, size: size, last: sc.last, synced: size, syncedLast: sc.last, index: sc.index}
	return s, sc, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// quarantine moves an unreadable segment into quarantine/ and counts it;
// the spool keeps running without it.
func (d *Disk) quarantine(path string, size int64) error {
	qdir := filepath.Join(d.dir, "quarantine")
	if err := os.MkdirAll(qdir, 0o750); err != nil {
		return fmt.Errorf("spool: quarantine %s: %w", path, err)
	}
	dst := filepath.Join(qdir, filepath.Base(path))
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("spool: quarantine %s: %w", path, err)
	}
	syncDir(d.dir)
	d.quarantined++
	d.log.Error("spool: segment with an unreadable header moved to quarantine; its records are lost", "file", dst, "bytes", size)
	return nil
}
