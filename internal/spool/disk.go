package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// resChunk is how many sequence numbers one checkpoint reserves.
const resChunk = 1 << 20

// maxUnsynced forces an fsync under FsyncInterval once this much is
// unsynced, which also bounds what is kept in memory to write again.
const maxUnsynced = 64 << 20

// Disk is the disk spool: an append-only log of segment files in one
// directory. See the package documentation for the format and the
// guarantees.
type Disk struct {
	opt     Options
	dir     string
	log     *slog.Logger
	lockF   *os.File
	ckptF   *os.File
	progF   *os.File
	pendMax int

	ckptMu sync.Mutex // serialises checkpoint writes
	ck     ckptState  // the last checkpoint written

	progMu  sync.Mutex // serialises progress writes; taken before mu
	progBuf []byte
	progGen uint64

	readMu sync.Mutex // one Read at a time; guards rd
	rd     diskCursor

	wg        sync.WaitGroup
	closeCh   chan struct{}
	commitCh  chan struct{} // cap 1: wakes the committer
	cleanCh   chan struct{} // cap 1: wakes the cleaner
	lastWarn  atomic.Int64  // rate limit of write error logs, Unix ns
	progTimer atomic.Bool   // a progress write is scheduled

	mu     sync.Mutex
	closed bool
	// numbering
	nextSeq, seqRes, resWant uint64
	nextSeg, segRes          uint64
	// files
	segs      []*segment // oldest first
	active    *segment   // the committer's, nil until it next writes
	fileBytes int64      // sum of segment sizes
	// appended, not yet written
	pend      []byte
	spare     []byte
	pendFirst uint64
	pendT     int64
	pendCbs   []pendingCB
	pendBytes int64 // pend plus chunks the committer holds that are not in a file yet
	written   uint64
	rollReq   bool
	dropNeed  int64
	// the reader
	mem      recQueue
	memBytes int64
	rpos     uint64
	// acknowledgements
	w        uint64   // every seq <= w is acknowledged (or absent)
	a        rangeSet // acknowledged or absent above w
	s        rangeSet // sent, not acknowledged (persisted in progress)
	resent   rangeSet // sent before Open, not yet read again
	dirty    bool     // progress changed since last written
	progDone bool     // the final progress is written (Close)
	records  int64
	// signals
	dataCh, roomCh       chan struct{}
	dataWait, roomWait   int
	appended, acked, nrd uint64
	redelivered          uint64
	corrupt, quarantined uint64
	truncTails, truncB   uint64
	dropOld, dropNew     uint64
	fsyncs, writeErrs    atomic.Uint64
	fsyncLat             latency
}

// diskCursor is the reader's position in a segment file.
type diskCursor struct {
	seg *segment
	f   *os.File
	r   segReader
	off int64
	seq uint64 // the seq expected at off (every record before off is below it)
}

type pendingCB struct {
	last uint64
	fn   func(error)
	err  error
}

// chunk is one batch of frames the committer writes with one write.
type chunk struct {
	buf         []byte
	first, last uint64
	t           int64
	cbs         []pendingCB
	written     bool // written once (moved from pendBytes to fileBytes)
}

var _ Spool = (*Disk)(nil)

// Durable reports true: a durable callback means the records survive a
// crash (under FsyncAlways and FsyncInterval, a power loss too).
func (d *Disk) Durable() bool { return true }

// Dir returns the spool directory.
func (d *Disk) Dir() string { return d.dir }

// Append implements Spool.
func (d *Disk) Append(ctx context.Context, recs []Record, durable func(error)) error {
	if len(recs) == 0 {
		if durable != nil {
			durable(nil)
		}
		return nil
	}
	sizes := make([]int, len(recs))
	total := int64(0)
	for i := range recs {
		sizes[i] = frameSize(&recs[i])
		if sizes[i] > MaxRecordBytes {
			return fmt.Errorf("record of %d bytes: %w", sizes[i], ErrTooLarge)
		}
		total += int64(sizes[i])
	}
	if total > d.opt.MaxBytes/2 {
		return fmt.Errorf("batch of %d bytes, max_bytes %d: %w", total, d.opt.MaxBytes, ErrTooLarge)
	}
	kept := len(recs)
	d.mu.Lock()
wait:
	for {
		if d.closed {
			d.mu.Unlock()
			return ErrClosed
		}
		switch {
		case d.nextSeq+uint64(len(recs)) >= d.seqRes:
			// The committer reserves more numbers (a checkpoint) first.
			d.resWant = max(d.resWant, d.nextSeq+uint64(len(recs)))
			d.wakeCommitter()
		case len(d.pend) > 0 && len(d.pend)+int(total) > d.pendMax:
			// The committer is behind: wait for it to take what is pending.
		case total <= d.opt.MaxBytes-d.fileBytes-d.pendBytes:
			break wait
		case d.opt.Full == FullDropNewest:
			room := d.opt.MaxBytes - d.fileBytes - d.pendBytes
			var sum int64
			kept = 0
			for kept < len(recs) && sum+int64(sizes[kept]) <= room {
				sum += int64(sizes[kept])
				kept++
			}
			total = sum
			break wait
		case d.opt.Full == FullDropOldest:
			d.dropNeed = max(d.dropNeed, total-(d.opt.MaxBytes-d.fileBytes-d.pendBytes))
			d.wakeCleaner()
		}
		if err := d.waitRoom(ctx); err != nil {
			return err
		}
	}
	var dropErr error
	if kept < len(recs) {
		d.dropNew += uint64(len(recs) - kept)
		dropErr = fmt.Errorf("%d of %d records: %w", len(recs)-kept, len(recs), ErrDropped)
		d.warnf("spool full: dropping the newest records (full: drop_newest)", "dropped", len(recs)-kept)
	}
	if kept == 0 {
		d.mu.Unlock()
		if durable != nil {
			durable(dropErr)
		}
		return nil
	}
	if len(d.pend) == 0 {
		d.pendFirst = d.nextSeq
		d.pendT = recs[0].Received.UnixNano()
		if recs[0].Received.IsZero() {
			d.pendT = 0
		}
	}
	// Room for the whole batch at once, not by doubling (which copied what
	// was pending again and again).
	d.pend = slices.Grow(d.pend, int(total))
	for i := range recs[:kept] {
		r := &recs[i]
		r.Seq = d.nextSeq
		d.nextSeq++
		d.pend = appendFrame(d.pend, r)
		if d.memBytes+int64(sizes[i]) <= d.opt.MemBytes {
			d.mem.push(*r)
			d.memBytes += int64(sizes[i])
		}
	}
	d.pendBytes += total
	d.records += int64(kept)
	d.appended += uint64(kept)
	if durable != nil {
		d.pendCbs = append(d.pendCbs, pendingCB{last: d.nextSeq - 1, fn: durable, err: dropErr})
	}
	// The reader is woken by the committer's write, not here: nothing
	// appended is readable before it is in the file.
	d.mu.Unlock()
	d.wakeCommitter()
	return nil
}

// waitRoom waits (mu held, released while waiting) for roomCh or ctx.
func (d *Disk) waitRoom(ctx context.Context) error {
	ch := d.roomCh
	d.roomWait++
	d.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(time.Second): // re-check: a lost wake-up costs a second, never a hang
	}
	d.mu.Lock()
	d.roomWait--
	if err != nil {
		d.mu.Unlock()
	}
	return err
}

func (d *Disk) signalRoom() {
	if d.roomWait > 0 {
		close(d.roomCh)
		d.roomCh = make(chan struct{})
	}
}

func (d *Disk) signalData() {
	if d.dataWait > 0 {
		close(d.dataCh)
		d.dataCh = make(chan struct{})
	}
}

func (d *Disk) wakeCommitter() {
	select {
	case d.commitCh <- struct{}{}:
	default:
	}
}

func (d *Disk) wakeCleaner() {
	select {
	case d.cleanCh <- struct{}{}:
	default:
	}
}

// warnf logs a warning at most once every 10 s (the counters have the rest).
func (d *Disk) warnf(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := d.lastWarn.Load()
	if now-last < int64(10*time.Second) || !d.lastWarn.CompareAndSwap(last, now) {
		return
	}
	d.log.Warn(msg, append([]any{"dir", d.dir}, args...)...)
}

// commitLoop is the committer: it writes what was appended, one write per
// round, and fsyncs by policy; every append since the last fsync shares
// the next one (group commit). Durable callbacks fire here. The fsync runs
// on its own goroutine (startSync); while it runs the committer writes
// what is appended meanwhile as soon as the reader waits for it (or half
// of pendMax is pending), so that delivery does not wait for the fsync
// (see Read); the next fsync covers it. While the reader is busy it
// gathers instead, as without overlap: fewer, larger writes.
func (d *Disk) commitLoop() {
	defer d.wg.Done()
	var unsynced []*chunk // written, not covered by a finished or running fsync
	var unsyncedBytes int
	var fs *runningSync
	lastSync := time.Now()
	var timer *time.Timer
	// settle waits for the running fsync, if any (res: its result when
	// already received), and acts on it: its chunks are durable, or they
	// and everything written since are written again into a new segment.
	settle := func(res *syncResult) {
		if fs == nil {
			return
		}
		if res == nil {
			r := <-fs.done
			res = &r
		}
		f := fs
		fs = nil
		if err := d.endSync(f, *res); err != nil {
			all := d.rewrite(append(f.chunks, unsynced...), err)
			d.finish(all, nil)
			unsynced, unsyncedBytes = nil, 0
			lastSync = time.Now()
		}
	}
	for {
		var res *syncResult
		d.mu.Lock()
		for {
			if len(d.pend) > 0 && (fs == nil || d.dataWait > 0 || len(d.pend) >= d.pendMax/2) {
				break
			}
			if d.closed || d.rollReq || d.resWant >= d.seqRes || d.nextSeq+resChunk/2 >= d.seqRes {
				break
			}
			if fs == nil && len(unsynced) > 0 && time.Since(lastSync) >= d.opt.FsyncInterval {
				break
			}
			var tc <-chan time.Time
			if fs == nil && len(unsynced) > 0 {
				if timer == nil {
					timer = time.NewTimer(d.opt.FsyncInterval - time.Since(lastSync))
				} else {
					timer.Reset(d.opt.FsyncInterval - time.Since(lastSync))
				}
				tc = timer.C
			}
			var sc <-chan syncResult // nil (never ready) without a running fsync
			if fs != nil {
				sc = fs.done
			}
			d.mu.Unlock()
			select {
			case <-d.commitCh:
			case <-tc:
			case r := <-sc:
				res = &r
			}
			d.mu.Lock()
			if res != nil {
				break
			}
		}
		closing := d.closed
		var c *chunk
		if len(d.pend) > 0 {
			c = &chunk{buf: d.pend, first: d.pendFirst, last: d.nextSeq - 1, t: d.pendT, cbs: d.pendCbs}
			d.pend, d.spare, d.pendCbs = d.spare[:0], nil, nil
			d.signalRoom()
		}
		reserve := d.resWant >= d.seqRes || d.nextSeq+resChunk/2 >= d.seqRes
		roll := d.rollReq
		d.rollReq = false
		d.mu.Unlock()

		if res != nil {
			settle(res)
		}
		if reserve {
			d.reserve()
		}
		if c != nil || roll {
			needRoll := func() bool {
				return d.active != nil && (roll || (c != nil && d.active.size+int64(len(c.buf)) > d.opt.SegmentBytes && !d.active.empty()))
			}
			if needRoll() {
				settle(nil) // the segment's fsync ends before it is closed (a failed one replaces the segment)
			}
			if needRoll() {
				if err := d.rollActive(); err != nil {
					if c != nil {
						unsynced = append(unsynced, c)
					}
					unsynced = d.rewrite(unsynced, err)
					d.finish(unsynced, nil)
					unsynced, unsyncedBytes = nil, 0
					lastSync = time.Now()
					c = nil
				} else {
					// Rolling synced the old segment: all written so far is durable.
					d.finish(unsynced, nil)
					unsynced, unsyncedBytes = nil, 0
				}
			}
			if c != nil {
				unsynced = append(unsynced, c)
				unsyncedBytes += len(c.buf)
				if err := d.writeChunk(c); err != nil {
					settle(nil) // may write unsynced again already
					if len(unsynced) > 0 {
						unsynced = d.rewrite(unsynced, err)
						d.finish(unsynced, nil)
						unsynced, unsyncedBytes = nil, 0
						lastSync = time.Now()
					}
				} else if fs != nil && unsyncedBytes >= d.pendMax/2 {
					// Bound what an fsync that takes long makes the
					// committer keep (to write again if it fails): wait
					// for it, and appends are held back by pendMax as
					// when nothing is written during an fsync.
					settle(nil)
				}
			}
		}
		if len(unsynced) > 0 {
			switch d.opt.Fsync {
			case FsyncNever:
				d.finish(unsynced, nil)
				unsynced, unsyncedBytes = nil, 0
			case FsyncAlways, FsyncInterval:
				if fs == nil && (d.opt.Fsync == FsyncAlways || closing || unsyncedBytes >= maxUnsynced || time.Since(lastSync) >= d.opt.FsyncInterval) {
					fs = d.startSync(unsynced)
					unsynced, unsyncedBytes = nil, 0
					lastSync = time.Now()
				}
			}
		}
		if closing {
			settle(nil)
			d.mu.Lock()
			more := len(d.pend) > 0
			d.mu.Unlock()
			if !more && len(unsynced) == 0 {
				if d.active != nil && d.active.f != nil {
					d.active.f.Close()
					d.active.f = nil
				}
				return
			}
		}
	}
}

// runningSync is an fdatasync of the active segment on its own goroutine,
// covering chunks: the segment's first size bytes, up to seq last.
type runningSync struct {
	done   chan syncResult
	seg    *segment
	size   int64
	last   uint64
	chunks []*chunk
}

type syncResult struct {
	err  error
	took time.Duration
}

// startSync starts an fdatasync of the active segment covering chunks
// (all of them written to it).
func (d *Disk) startSync(chunks []*chunk) *runningSync {
	s := d.active
	d.mu.Lock()
	fs := &runningSync{done: make(chan syncResult, 1), seg: s, size: s.size, last: s.last, chunks: chunks}
	d.mu.Unlock()
	go func() {
		t0 := time.Now()
		err := d.fdatasync(s.f)
		fs.done <- syncResult{err, time.Since(t0)}
	}()
	return fs
}

// endSync counts a finished fsync and, if it worked, marks what it covered
// synced and reports its chunks durable; else it returns the error.
func (d *Disk) endSync(fs *runningSync, r syncResult) error {
	d.fsyncLat.observe(r.took)
	if d.opt.OnFsync != nil {
		d.opt.OnFsync(r.took)
	}
	d.fsyncs.Add(1)
	if r.err != nil {
		return r.err
	}
	d.mu.Lock()
	if fs.size > fs.seg.synced {
		fs.seg.synced, fs.seg.syncedLast = fs.size, fs.last
	}
	d.mu.Unlock()
	d.finish(fs.chunks, nil)
	return nil
}

// finish fires the callbacks of chunks: nil, or their drop error, when
// they are durable; err (ErrClosed) when they were given up.
func (d *Disk) finish(chunks []*chunk, err error) {
	for _, c := range chunks {
		for _, cb := range c.cbs {
			e := cb.err
			if err != nil {
				e = err
			}
			cb.fn(e)
		}
		c.cbs = nil
	}
	if err == nil && len(chunks) > 0 {
		d.mu.Lock()
		if d.spare == nil && cap(chunks[0].buf) <= 4*d.pendMax {
			d.spare = chunks[0].buf[:0]
		}
		d.mu.Unlock()
	}
}

// reserve checkpoints a new block of sequence numbers.
func (d *Disk) reserve() {
	d.mu.Lock()
	want := max(d.nextSeq, d.resWant) + resChunk
	d.mu.Unlock()
	if err := d.checkpoint(want, 0); err != nil {
		d.writeErrs.Add(1)
		d.warnf("spool: cannot checkpoint a sequence reservation; appends wait", "err", err)
		select {
		case <-time.After(100 * time.Millisecond):
		case <-d.closeCh:
		}
		return
	}
	d.mu.Lock()
	d.resWant = 0
	d.signalRoom()
	d.mu.Unlock()
}

// checkpoint durably writes the acknowledged position and the
// reservations (raised to at least seqRes and segRes).
func (d *Disk) checkpoint(seqRes, segRes uint64) error {
	d.ckptMu.Lock()
	defer d.ckptMu.Unlock()
	st := d.ck
	st.gen++
	st.seqRes = max(st.seqRes, seqRes)
	st.segRes = max(st.segRes, segRes)
	d.mu.Lock()
	st.acked = max(st.acked, d.w)
	d.mu.Unlock()
	if _, err := d.writeAt(d.ckptF, st.encode(), int64(st.gen%2)*ckptSlot); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := d.fdatasync(d.ckptF); err != nil {
		return fmt.Errorf("fsync checkpoint: %w", err)
	}
	d.ck = st
	d.mu.Lock()
	d.seqRes, d.segRes = st.seqRes, st.segRes
	d.mu.Unlock()
	return nil
}

// createSegment starts a new active segment whose first record is base.
// Its number is reserved durably first and never used again, even if
// creating the file fails.
func (d *Disk) createSegment(base uint64) error {
	d.mu.Lock()
	no := d.nextSeg
	d.nextSeg++
	needRes := no >= d.segRes
	d.mu.Unlock()
	if needRes {
		if err := d.checkpoint(0, no+16); err != nil {
			return err
		}
	}
	path := segPath(d.dir, no)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(path)
		return err
	}
	if _, err := d.writeAt(f, encodeSegHeader(no, base), 0); err != nil {
		return fail(fmt.Errorf("write segment header %s: %w", path, err))
	}
	if d.opt.Fsync != FsyncNever {
		if err := d.fdatasync(f); err != nil {
			return fail(fmt.Errorf("fsync segment header: %w", err))
		}
		if err := syncDir(d.dir); err != nil {
			return fail(err)
		}
	}
	s := &segment{no: no, base: base, path: path, size: segHeader, last: base - 1, synced: segHeader, syncedLast: base - 1, f: f}
	d.mu.Lock()
	d.segs = append(d.segs, s)
	d.active = s
	d.fileBytes += segHeader
	d.mu.Unlock()
	return nil
}

// writeChunk writes c at the end of the active segment, creating one if
// there is none.
func (d *Disk) writeChunk(c *chunk) error {
	if d.active == nil {
		if err := d.createSegment(c.first); err != nil {
			return err
		}
	}
	s := d.active
	off := s.size
	n, err := d.writeAt(s.f, c.buf, off)
	if err == nil && n < len(c.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("write %s at %d: %w", s.path, off, err)
	}
	d.mu.Lock()
	s.size += int64(n)
	s.last = c.last
	s.addIndex(c.first, off, c.t, false)
	d.fileBytes += int64(n)
	if !c.written {
		c.written = true
		d.pendBytes -= int64(len(c.buf))
	}
	d.written = max(d.written, c.last)
	d.signalData()
	d.mu.Unlock()
	return nil
}

// syncActive fdatasyncs the active segment if it has unsynced bytes.
func (d *Disk) syncActive() error {
	s := d.active
	if s == nil || s.synced == s.size {
		return nil
	}
	t0 := time.Now()
	err := d.fdatasync(s.f)
	took := time.Since(t0)
	d.fsyncLat.observe(took)
	if d.opt.OnFsync != nil {
		d.opt.OnFsync(took)
	}
	d.fsyncs.Add(1)
	if err != nil {
		return err
	}
	d.mu.Lock()
	s.synced, s.syncedLast = s.size, s.last
	d.mu.Unlock()
	return nil
}

// rollActive syncs and closes the active segment; the next write starts a
// new one.
func (d *Disk) rollActive() error {
	if d.opt.Fsync != FsyncNever {
		if err := d.syncActive(); err != nil {
			return err
		}
	} else {
		d.mu.Lock()
		d.active.synced, d.active.syncedLast = d.active.size, d.active.last
		d.mu.Unlock()
	}
	d.active.f.Close()
	d.mu.Lock()
	d.active.f = nil
	d.active = nil
	d.mu.Unlock()
	return nil
}

// rewrite handles a failed write or fsync: the file's state past its last
// fsync is unknown, so the segment is cut back to what was synced and
// closed, and everything not yet durable is written again into a new
// segment, with backoff, until it succeeds (a disk that frees up resumes
// the flow). Nothing is reported durable meanwhile. It returns the chunks
// to report durable; after Close it gives up and fails them with ErrClosed.
func (d *Disk) rewrite(unsynced []*chunk, cause error) []*chunk {
	backoff := 10 * time.Millisecond
	for attempt := 1; ; attempt++ {
		d.writeErrs.Add(1)
		d.warnf("spool: write failed; cutting the segment back to its last fsync and writing again into a new one", "err", cause, "attempt", attempt)
		d.abandonActive()
		select {
		case <-d.closeCh:
			if attempt > 3 {
				d.log.Error("spool: closing with records that could not be written", "dir", d.dir, "err", cause)
				d.finish(unsynced, ErrClosed)
				return nil
			}
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
		var err error
		for _, c := range unsynced {
			if err = d.writeChunk(c); err != nil {
				break
			}
		}
		if err == nil && d.opt.Fsync != FsyncNever {
			err = d.syncActive()
		}
		if err == nil {
			if d.opt.Fsync == FsyncNever {
				d.mu.Lock()
				d.active.synced, d.active.syncedLast = d.active.size, d.active.last
				d.mu.Unlock()
			}
			d.log.Info("spool: writing again after a write error", "dir", d.dir, "segment", d.active.path)
			return unsynced
		}
		cause = err
	}
}

// abandonActive cuts the active segment back to its synced size and closes
// it; a segment left with no record is removed.
func (d *Disk) abandonActive() {
	s := d.active
	if s == nil {
		return
	}
	if err := s.f.Truncate(s.synced); err != nil {
		d.log.Warn("spool: cannot truncate a failed segment; its unsynced tail will be skipped when read", "file", s.path, "err", err)
	}
	s.f.Close()
	d.mu.Lock()
	d.fileBytes -= s.size - s.synced
	// What was cut is no longer in a file: the reader waits until it is
	// written again.
	d.written = min(d.written, s.syncedLast)
	s.size, s.last, s.f = s.synced, s.syncedLast, nil
	s.trimIndex()
	d.active = nil
	remove := s.empty()
	if remove {
		d.dropSegment(s)
	}
	d.mu.Unlock()
	if remove {
		os.Remove(s.path)
		syncDir(d.dir)
	}
}

// dropSegment takes s off the list (mu held).
func (d *Disk) dropSegment(s *segment) {
	for i, x := range d.segs {
		if x == s {
			d.segs = append(d.segs[:i:i], d.segs[i+1:]...)
			d.fileBytes -= s.size
			return
		}
	}
}

// cleanLoop deletes acknowledged segments (after a durable checkpoint),
// drops the oldest for full: drop_oldest, and writes progress.
func (d *Disk) cleanLoop() {
	defer d.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-d.cleanCh:
		case <-t.C:
		case <-d.closeCh:
			return
		}
		d.clean()
		d.writeProgress(false)
	}
}

func (d *Disk) clean() {
	d.mu.Lock()
	if d.dropNeed > 0 {
		d.dropOldest()
	}
	var del []*segment
	for _, s := range d.segs {
		if s == d.active || s.last > d.w {
			break
		}
		del = append(del, s)
	}
	d.mu.Unlock()
	if len(del) == 0 {
		return
	}
	if d.opt.BeforeDelete != nil {
		if err := d.opt.BeforeDelete(); err != nil {
			d.warnf("spool: acknowledged segments kept: their user could not save its state", "err", err)
			return
		}
	}
	// Checkpoint first, delete after: a crash between the two leaves
	// segments that are acknowledged, never a cursor into a missing file.
	if err := d.checkpoint(0, 0); err != nil {
		d.writeErrs.Add(1)
		d.warnf("spool: cannot checkpoint; acknowledged segments are kept until it works", "err", err)
		return
	}
	for _, s := range del {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			d.warnf("spool: cannot delete an acknowledged segment", "file", s.path, "err", err)
		}
	}
	if err := syncDir(d.dir); err != nil {
		d.warnf("spool: fsync of the directory failed", "err", err)
	}
	d.mu.Lock()
	for _, s := range del {
		d.dropSegment(s)
	}
	d.signalRoom()
	d.mu.Unlock()
}

// dropOldest makes room for full: drop_oldest by giving up the oldest
// segment with unacknowledged records (mu held). If only the active
// segment has any, the committer is asked to roll it first.
func (d *Disk) dropOldest() {
	var victim *segment
	for _, s := range d.segs {
		if s != d.active && !s.empty() && s.last > d.w {
			victim = s
			break
		}
	}
	if victim == nil {
		if d.active != nil && !d.active.empty() {
			d.rollReq = true
			d.wakeCommitter()
		}
		d.dropNeed = 0
		return
	}
	n := d.a.add(Range{d.w + 1, victim.last})
	d.dropOld += n
	d.records -= int64(n)
	d.advance()
	d.dirty = true
	d.dropNeed = 0
	d.warnf("spool full: dropped the oldest records (full: drop_oldest)", "dropped", n, "segment", victim.path)
	d.wakeCleaner()
}

// advance moves the acknowledged watermark over acknowledged ranges and
// the read position past them (mu held).
func (d *Disk) advance() {
	old := d.w
	for len(d.a) > 0 && d.a[0].First <= d.w+1 {
		d.w = max(d.w, d.a[0].Last)
		d.a = d.a[1:]
	}
	if d.w != old {
		d.s.trimBelow(d.w)
		d.resent.trimBelow(d.w)
		if len(d.segs) > 0 && d.segs[0] != d.active && d.segs[0].last <= d.w {
			d.wakeCleaner()
		}
	}
	d.rpos = max(d.rpos, d.w+1)
	for {
		r, ok := d.a.contains(d.rpos)
		if !ok {
			break
		}
		d.rpos = r.Last + 1
	}
}

// Ack implements Spool.
func (d *Disk) Ack(first, last uint64) error {
	if last < first {
		return fmt.Errorf("spool: ack of %d..%d: last before first", first, last)
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	last = min(last, d.nextSeq-1)
	first = max(first, d.w+1)
	if first <= last {
		r := Range{first, last}
		n := d.a.add(r)
		d.records -= int64(n)
		d.acked += n
		d.s.remove(r)
		d.resent.remove(r)
		d.advance()
		d.dirty = true
	}
	d.mu.Unlock()
	if d.progTimer.CompareAndSwap(false, true) {
		time.AfterFunc(time.Millisecond, func() {
			d.progTimer.Store(false)
			d.writeProgress(false)
		})
	}
	return nil
}

// Sent implements Spool: the ranges are persisted before it returns.
func (d *Disk) Sent(rs ...Range) error {
	d.progMu.Lock()
	defer d.progMu.Unlock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	for _, r := range rs {
		r.First = max(r.First, d.w+1)
		if r.First <= r.Last {
			d.s.add(r)
		}
	}
	d.dirty = true
	d.mu.Unlock()
	return d.writeProgressLocked()
}

// Unsent implements Spool: the ranges are no longer marked Sent, persisted
// before it returns.
func (d *Disk) Unsent(rs ...Range) error {
	d.progMu.Lock()
	defer d.progMu.Unlock()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return ErrClosed
	}
	for _, r := range rs {
		d.s.remove(r)
	}
	d.dirty = true
	d.mu.Unlock()
	return d.writeProgressLocked()
}

// writeProgress writes the progress file if it changed.
func (d *Disk) writeProgress(force bool) error {
	d.progMu.Lock()
	defer d.progMu.Unlock()
	if force {
		d.mu.Lock()
		d.dirty = true
		d.mu.Unlock()
	}
	return d.writeProgressLocked()
}

func (d *Disk) writeProgressLocked() error {
	d.mu.Lock()
	if !d.dirty || d.progDone {
		d.mu.Unlock()
		return nil
	}
	d.dirty = false
	d.progGen++
	gen := d.progGen
	d.progBuf = encodeProg(d.progBuf, gen, d.w, d.a, d.s)
	d.mu.Unlock()
	if _, err := d.writeAt(d.progF, d.progBuf, int64(gen%2)*progSlot); err != nil {
		d.warnf("spool: cannot write the progress file; a restart may deliver more again", "err", err)
		return fmt.Errorf("write progress: %w", err)
	}
	return nil
}

// Read implements Spool.
func (d *Disk) Read(ctx context.Context, max int) ([]Record, error) {
	if max <= 0 {
		max = 1
	}
	d.readMu.Lock()
	defer d.readMu.Unlock()
	d.mu.Lock()
	for {
		if d.closed {
			d.mu.Unlock()
			return nil, ErrClosed
		}
		d.advance()
		for d.mem.len() > 0 && d.mem.front().Seq < d.rpos {
			r := d.mem.pop()
			d.memBytes -= int64(frameSize(&r))
		}
		// Only what the committer has written to the segment file is read
		// (d.written): a record handed out before its write(2) would be
		// gone with a killed process while its destination may have it,
		// and its source, never told it was durable, would send it again:
		// a duplicate no counter shows. The page cache survives a kill,
		// so the write, not the fsync, is what a reader waits for.
		if d.mem.len() > 0 && d.mem.front().Seq == d.rpos && d.rpos <= d.written {
			out := make([]Record, 0, min(max, d.mem.len()))
			for len(out) < max && d.mem.len() > 0 && d.mem.front().Seq == d.rpos && d.rpos <= d.written {
				r := d.mem.pop()
				d.memBytes -= int64(frameSize(&r))
				out = append(out, r)
				d.rpos++
			}
			d.nrd += uint64(len(out))
			d.mu.Unlock()
			return out, nil
		}
		limit := d.written
		if d.mem.len() > 0 {
			limit = min(limit, d.mem.front().Seq-1)
		}
		if d.rpos <= limit {
			plan := d.planRead(limit)
			d.mu.Unlock()
			out, next, gaps := d.readDisk(plan, max)
			d.mu.Lock()
			for _, g := range gaps {
				if n := d.a.add(g); n > 0 {
					d.corrupt += n
					d.records -= int64(n)
					d.log.Warn("spool: records lost to corruption skipped", "dir", d.dir, "first", g.First, "last", g.Last, "records", n)
				}
			}
			// Drop what was acknowledged or given up meanwhile.
			k := 0
			for _, r := range out {
				if r.Seq < d.rpos {
					continue
				}
				if _, ok := d.a.contains(r.Seq); ok {
					continue
				}
				out[k] = r
				k++
			}
			out = out[:k]
			progressed := next > d.rpos
			d.rpos = maxU(d.rpos, next)
			if len(out) > 0 {
				if len(d.resent) > 0 {
					n := d.resent.count(Range{out[0].Seq, out[len(out)-1].Seq})
					if n > 0 {
						d.redelivered += n
						d.resent.remove(Range{out[0].Seq, out[len(out)-1].Seq})
					}
				}
				d.nrd += uint64(len(out))
				d.mu.Unlock()
				return out, nil
			}
			if progressed {
				continue
			}
		}
		// Wait for the committer's next write (writeChunk signals dataCh
		// under mu after it advances d.written, and the check above ran
		// under mu: no wake-up is lost), re-checking on a timer as well
		// (vector#22946).
		ch := d.dataCh
		d.dataWait++
		if len(d.pend) > 0 {
			d.wakeCommitter() // it may be holding them back during an fsync
		}
		d.mu.Unlock()
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(d.recheck()):
		}
		d.mu.Lock()
		d.dataWait--
		if err != nil {
			d.mu.Unlock()
			return nil, err
		}
	}
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// readPlan is what readDisk needs, copied under mu.
type readPlan struct {
	from, limit uint64
	segs        []segSnap
}

type segSnap struct {
	s        *segment
	base     uint64
	size     int64
	startOff int64 // where to start looking for from (first segment)
	startSeq uint64
}

func (d *Disk) planRead(limit uint64) readPlan {
	p := readPlan{from: d.rpos, limit: limit}
	i := sort.Search(len(d.segs), func(i int) bool { return d.segs[i].base > d.rpos }) - 1
	if i < 0 {
		i = 0
	}
	for ; i < len(d.segs); i++ {
		s := d.segs[i]
		if s.base > limit {
			break
		}
		sn := segSnap{s: s, base: s.base, size: s.size, startOff: segHeader, startSeq: s.base}
		if len(p.segs) == 0 {
			sn.startOff, sn.startSeq = s.seek(d.rpos)
		}
		p.segs = append(p.segs, sn)
	}
	return p
}

// readDisk reads up to max records from p.from to p.limit from the segment
// files, without mu. It returns them, the seq to read next, and the ranges
// of seqs found missing (corruption).
func (d *Disk) readDisk(p readPlan, max int) ([]Record, uint64, []Range) {
	pos := p.from
	// Room for what the plan can hold (a reader behind by millions of
	// records reads max at a time): appending one by one grew and copied
	// the slice a dozen times per read.
	out := make([]Record, 0, int(min(uint64(max), p.limit-p.from+1)))
	var gaps []Range
	var slab []byte
	var v frameView
	for si, sn := range p.segs {
		if len(out) >= max || pos > p.limit {
			break
		}
		rd := &d.rd
		if rd.seg != sn.s {
			if rd.f != nil {
				rd.f.Close()
			}
			*rd = diskCursor{}
			f, err := os.Open(sn.s.path)
			if err != nil {
				// Deleted meanwhile (acknowledged or dropped): go on.
				continue
			}
			rd.seg, rd.f = sn.s, f
			rd.r = segReader{f: f}
			rd.off, rd.seq = segHeader, sn.base
		}
		rd.r.limit = sn.size
		if si == 0 && (rd.seq > pos || rd.off > sn.size || (sn.startSeq > rd.seq && sn.startOff > rd.off)) {
			rd.off, rd.seq = sn.startOff, sn.startSeq
		}
		if rd.off > sn.size {
			rd.off, rd.seq = segHeader, sn.base
		}
		segDone := false
		for len(out) < max && pos <= p.limit {
			n := rd.r.frame(rd.off, &v)
			if n == 0 {
				if rd.off >= sn.size {
					segDone = true
					break
				}
				q := rd.r.resync(rd.off, rd.seq, &v)
				if q < 0 {
					segDone = true
					break
				}
				rd.off = q
				continue
			}
			if v.seq < pos {
				rd.off += n
				rd.seq = v.seq + 1
				continue
			}
			if v.seq > p.limit {
				break
			}
			if v.seq > pos {
				gaps = append(gaps, Range{pos, v.seq - 1})
			}
			var prev *Record
			if len(out) > 0 {
				prev = &out[len(out)-1]
			}
			out = append(out, recordFrom(&v, &slab, prev))
			rd.off += n
			rd.seq = v.seq + 1
			pos = v.seq + 1
		}
		if !segDone {
			break
		}
		if si+1 < len(p.segs) {
			// What the rest of this segment should have held is the next
			// segment's or missing; the next segment starts at its base.
			continue
		}
	}
	return out, pos, gaps
}

// Stats implements Spool.
func (d *Disk) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := Stats{
		Bytes:          d.fileBytes + d.pendBytes,
		Records:        d.records,
		Segments:       len(d.segs),
		Appended:       d.appended,
		Acked:          d.acked,
		Read:           d.nrd,
		Fsyncs:         d.fsyncs.Load(),
		Redelivered:    d.redelivered,
		TruncatedTails: d.truncTails,
		TruncatedBytes: d.truncB,
		Corrupt:        d.corrupt,
		Quarantined:    d.quarantined,
		DroppedOldest:  d.dropOld,
		DroppedNewest:  d.dropNew,
		WriteErrors:    d.writeErrs.Load(),
		FsyncSeconds:   d.fsyncLat.snapshot(),
	}
	if d.records > 0 {
		st.OldestUnacked = d.oldestTime()
	}
	return st
}

// oldestTime estimates when the oldest unacknowledged record was received
// (mu held): from the segment index, else the memory queue, else now.
func (d *Disk) oldestTime() time.Time {
	seq := d.w + 1
	for {
		r, ok := d.a.contains(seq)
		if !ok {
			break
		}
		seq = r.Last + 1
	}
	for _, s := range d.segs {
		if s.base <= seq && seq <= s.last {
			for i := len(s.index) - 1; i >= 0; i-- {
				if s.index[i].seq <= seq && s.index[i].t != 0 {
					return time.Unix(0, s.index[i].t)
				}
			}
		}
	}
	if d.mem.len() > 0 && !d.mem.front().Received.IsZero() {
		return d.mem.front().Received
	}
	if d.pendT != 0 {
		return time.Unix(0, d.pendT)
	}
	return time.Now()
}

// Close implements Spool.
func (d *Disk) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.closeCh)
	close(d.dataCh)
	close(d.roomCh)
	d.dataCh, d.roomCh = make(chan struct{}), make(chan struct{})
	d.mu.Unlock()
	d.wakeCommitter()
	d.wg.Wait()
	var errs []error
	d.clean()
	if err := d.writeProgress(true); err != nil {
		errs = append(errs, err)
	}
	d.mu.Lock()
	d.progDone = true
	d.mu.Unlock()
	if err := d.checkpoint(0, 0); err != nil {
		errs = append(errs, err)
	}
	d.readMu.Lock()
	if d.rd.f != nil {
		d.rd.f.Close()
		d.rd = diskCursor{}
	}
	d.readMu.Unlock()
	d.ckptF.Close()
	d.progF.Close()
	d.lockF.Close() // releases the lock
	return errors.Join(errs...)
}

// recQueue is a FIFO of records.
type recQueue struct {
	buf  []Record
	head int
}

func (q *recQueue) len() int        { return len(q.buf) - q.head }
func (q *recQueue) front() *Record  { return &q.buf[q.head] }
func (q *recQueue) push(r Record)   { q.buf = append(q.buf, r) }
func (q *recQueue) at(i int) Record { return q.buf[q.head+i] }

func (q *recQueue) pop() Record {
	r := q.buf[q.head]
	q.buf[q.head] = Record{}
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	} else if q.head >= 4096 && q.head*2 >= len(q.buf) {
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	return r
}
