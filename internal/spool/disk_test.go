package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func openDisk(t *testing.T, o Options) *Disk {
	t.Helper()
	d, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func appendN(t *testing.T, s Spool, from, n, size int) {
	t.Helper()
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = rec(from+i, size)
	}
	if err := appendWait(t, s, recs); err != nil {
		t.Fatal(err)
	}
}

func eventNo(r Record) int {
	var n int
	i := bytes.Index(r.Raw, []byte("event "))
	fmt.Sscanf(string(r.Raw[i+6:]), "%d", &n)
	return n
}

// readAll reads until the spool has nothing more for 100ms.
func readAll(t *testing.T, s Spool) []Record {
	t.Helper()
	var out []Record
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		rs, err := s.Read(ctx, 1000)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rs...)
	}
}

func checkEvents(t *testing.T, out []Record, from, to int) {
	t.Helper()
	if len(out) != to-from {
		t.Fatalf("read %d records, want events %d..%d", len(out), from, to-1)
	}
	for i, r := range out {
		if eventNo(r) != from+i {
			t.Fatalf("record %d is event %d, want %d", i, eventNo(r), from+i)
		}
		if i > 0 && r.Seq <= out[i-1].Seq {
			t.Fatalf("seq %d after %d", r.Seq, out[i-1].Seq)
		}
	}
}

func TestReopenResumesAfterAcked(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir, SegmentBytes: 64 << 10})
	appendN(t, d, 0, 1000, 200)
	out := readN(t, d, 400)
	d.Ack(out[0].Seq, out[299].Seq) // 300..399 read, not acked
	lastSeq := out[399].Seq
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openDisk(t, Options{Dir: dir, SegmentBytes: 64 << 10})
	if st := d.Stats(); st.Records != 700 {
		t.Fatalf("after reopen: %d records, want 700", st.Records)
	}
	out = readAll(t, d)
	checkEvents(t, out, 300, 1000)
	// New records get higher seqs than any before the restart.
	appendN(t, d, 1000, 1, 10)
	rs := readN(t, d, 1)
	if rs[0].Seq <= lastSeq || rs[0].Seq <= out[len(out)-1].Seq {
		t.Fatalf("new seq %d not above the old ones", rs[0].Seq)
	}
	// Acknowledging all lets whole segments go.
	d.Ack(1, rs[0].Seq)
	testEventually(t, func() bool { return d.Stats().Segments <= 1 })
	d.Close()
}

func TestOutOfOrderAcksSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir})
	appendN(t, d, 0, 100, 50)
	out := readN(t, d, 100)
	s0 := out[0].Seq
	d.Ack(s0+10, s0+19) // out of order: 10..19 and 50..99 acked
	d.Ack(s0+50, s0+99)
	d.Close()
	d = openDisk(t, Options{Dir: dir})
	defer d.Close()
	got := readAll(t, d)
	if len(got) != 40 {
		t.Fatalf("read %d after restart, want 40 (0..9, 20..49)", len(got))
	}
	if eventNo(got[0]) != 0 || eventNo(got[10]) != 20 || eventNo(got[39]) != 49 {
		t.Fatalf("read events %d, %d, %d", eventNo(got[0]), eventNo(got[10]), eventNo(got[39]))
	}
}

func TestRedeliveriesCountSentOnly(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir})
	appendN(t, d, 0, 100, 50)
	out := readN(t, d, 100)
	s0 := out[0].Seq
	// 0..59 sent; 0..29 acked: 30..59 may have reached the destination,
	// 60..99 were read but never sent.
	if err := d.Sent(Range{s0, s0 + 59}); err != nil {
		t.Fatal(err)
	}
	d.Ack(s0, s0+29)
	d.writeProgress(false) // what the deferred write does within 1ms of an Ack
	// A crash: the progress file is what a kill -9 leaves (written before
	// Sent returned); stop the goroutines without the final checkpoint.
	crash(d)
	d = openDisk(t, Options{Dir: dir})
	defer d.Close()
	got := readAll(t, d)
	checkEvents(t, got, 30, 100)
	if st := d.Stats(); st.Redelivered != 30 {
		t.Fatalf("redelivered %d, want 30", st.Redelivered)
	}
}

// crash stops d as a kill -9 would: no final write of any file.
func crash(d *Disk) {
	d.mu.Lock()
	d.progDone = true
	d.closed = true
	close(d.closeCh)
	d.mu.Unlock()
	d.wakeCommitter()
	d.wg.Wait()
	for _, f := range []*os.File{d.ckptF, d.progF, d.lockF, d.rd.f} {
		if f != nil {
			f.Close()
		}
	}
}

func lastSegment(t *testing.T, dir string) string {
	nos, err := listSegments(dir)
	if err != nil || len(nos) == 0 {
		t.Fatalf("no segments: %v", err)
	}
	return segPath(dir, nos[len(nos)-1])
}

func TestTornTailTruncated(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir})
	appendN(t, d, 0, 100, 100)
	crash(d)
	seg := lastSegment(t, dir)
	fi, _ := os.Stat(seg)
	// Cut the last record in half.
	if err := os.Truncate(seg, fi.Size()-50); err != nil {
		t.Fatal(err)
	}
	d = openDisk(t, Options{Dir: dir})
	st := d.Stats()
	if st.TruncatedTails != 1 || st.Records != 99 {
		t.Fatalf("stats %+v, want 1 truncated tail and 99 records", st)
	}
	checkEvents(t, readAll(t, d), 0, 99)
	d.Close()
	// The file was cut back to its last whole record.
	if fi2, _ := os.Stat(seg); fi2.Size() >= fi.Size()-50 {
		t.Fatalf("segment still %d bytes", fi2.Size())
	}
	d = openDisk(t, Options{Dir: dir})
	if st := d.Stats(); st.TruncatedTails != 0 {
		t.Fatalf("truncated again on the next open: %+v", st)
	}
	d.Close()
}

func TestCorruptRecordSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir})
	appendN(t, d, 0, 100, 100)
	crash(d)
	seg := lastSegment(t, dir)
	b, _ := os.ReadFile(seg)
	// Flip bytes inside record 50 (records are frames of equal size here).
	fs := (len(b) - segHeader) / 100
	off := segHeader + 50*fs + 30
	b[off] ^= 0xff
	b[off+1] ^= 0x55
	os.WriteFile(seg, b, 0o640)
	d = openDisk(t, Options{Dir: dir})
	defer d.Close()
	st := d.Stats()
	if st.Corrupt != 1 || st.Records != 99 || st.TruncatedTails != 0 {
		t.Fatalf("stats %+v, want 1 corrupt record skipped, 99 left", st)
	}
	got := readAll(t, d)
	if len(got) != 99 || eventNo(got[49]) != 49 || eventNo(got[50]) != 51 {
		t.Fatalf("read %d records around the corrupt one: %d, %d", len(got), eventNo(got[49]), eventNo(got[50]))
	}
	// Acknowledging all of it leaves nothing: the corrupt seq does not hold
	// the watermark back.
	d.Ack(got[0].Seq, got[len(got)-1].Seq)
	if st := d.Stats(); st.Records != 0 {
		t.Fatalf("%d records left", st.Records)
	}
}

func TestCorruptLengthResyncs(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir})
	appendN(t, d, 0, 100, 100)
	crash(d)
	seg := lastSegment(t, dir)
	b, _ := os.ReadFile(seg)
	fs := (len(b) - segHeader) / 100
	off := segHeader + 20*fs
	copy(b[off:], []byte{0xff, 0xff, 0x00, 0x10}) // a huge length in record 20
	copy(b[segHeader+21*fs:], make([]byte, fs))   // and record 21 zeroed
	os.WriteFile(seg, b, 0o640)
	d = openDisk(t, Options{Dir: dir})
	defer d.Close()
	if st := d.Stats(); st.Corrupt != 2 || st.Records != 98 {
		t.Fatalf("stats %+v, want 2 corrupt, 98 left", st)
	}
	if got := readAll(t, d); len(got) != 98 || eventNo(got[20]) != 22 {
		t.Fatalf("read %d", len(got))
	}
}

func TestZeroFilledSegmentQuarantined(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir, SegmentBytes: 64 << 10})
	for i := 0; i < 1000; i += 100 {
		appendN(t, d, i, 100, 200) // several segments
	}
	crash(d)
	nos, _ := listSegments(dir)
	if len(nos) < 3 {
		t.Fatalf("%d segments", len(nos))
	}
	victim := segPath(dir, nos[1])
	fi, _ := os.Stat(victim)
	os.WriteFile(victim, make([]byte, fi.Size()), 0o640)
	d = openDisk(t, Options{Dir: dir, SegmentBytes: 64 << 10})
	defer d.Close()
	st := d.Stats()
	if st.Quarantined != 1 {
		t.Fatalf("stats %+v, want 1 quarantined", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "quarantine", filepath.Base(victim))); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, d)
	if int64(len(got)) != st.Records || len(got) >= 1000 || len(got) < 500 {
		t.Fatalf("read %d, stats %d records", len(got), st.Records)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq || eventNo(got[i]) <= eventNo(got[i-1]) {
			t.Fatal("out of order after quarantine")
		}
	}
	d.Ack(got[0].Seq, got[len(got)-1].Seq)
	testEventually(t, func() bool { return d.Stats().Records == 0 && d.Stats().Segments <= 1 })
}

func TestZeroFilledTail(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir})
	appendN(t, d, 0, 100, 100)
	crash(d)
	seg := lastSegment(t, dir)
	f, _ := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(make([]byte, 4096)) // what a file system may show after a power loss
	f.Close()
	d = openDisk(t, Options{Dir: dir})
	defer d.Close()
	if st := d.Stats(); st.TruncatedTails != 1 || st.TruncatedBytes != 4096 || st.Records != 100 {
		t.Fatalf("stats %+v", st)
	}
	checkEvents(t, readAll(t, d), 0, 100)
}

func TestMissingCheckpointRedeliversAll(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir})
	appendN(t, d, 0, 100, 100)
	out := readN(t, d, 100)
	d.Ack(out[0].Seq, out[49].Seq)
	d.Close()
	os.Remove(filepath.Join(dir, ckptName))
	os.Remove(filepath.Join(dir, progName))
	d = openDisk(t, Options{Dir: dir})
	got := readAll(t, d)
	// The acknowledgements are gone with the files, the records are not:
	// at-least-once.
	if len(got) < 50 || eventNo(got[len(got)-1]) != 99 {
		t.Fatalf("read %d", len(got))
	}
	last := got[len(got)-1].Seq
	appendN(t, d, 100, 1, 10)
	if rs := readN(t, d, 1); rs[0].Seq <= last {
		t.Fatalf("seq %d reused (last %d)", rs[0].Seq, last)
	}
	d.Close()
}

func TestLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir})
	_, err := Open(Options{Dir: dir})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("error %q does not name the holder (%s)", err, want)
	}
	d.Close()
	d = openDisk(t, Options{Dir: dir})
	d.Close()
}

func TestUnknownVersionRefused(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir})
	appendN(t, d, 0, 10, 10)
	d.Close()
	seg := lastSegment(t, dir)
	b, _ := os.ReadFile(seg)
	h := encodeSegHeader(1, 1)
	copy(b, h)
	b[8] = 99 // version 99, CRC fixed below
	copy(b[segHeader-4:], le32(crcOf(b[:segHeader-4])))
	os.WriteFile(seg, b, 0o640)
	_, err := Open(Options{Dir: dir})
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("open: %v, want ErrVersion", err)
	}
}

func TestSegmentNumbersNeverReused(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, SegmentBytes: 64 << 10}
	var prevMax uint64
	total := 0
	for round := range 4 {
		d := openDisk(t, o)
		for i := 0; i < 500; i += 100 {
			appendN(t, d, round*500+i, 100, 200) // 20 KB per write: several segments
		}
		nos, _ := listSegments(dir)
		if nos[0] <= prevMax && round > 0 {
			t.Fatalf("round %d: segment %d, after %d in an earlier round", round, nos[0], prevMax)
		}
		prevMax = nos[len(nos)-1]
		total += len(nos)
		got := readAll(t, d)
		d.Ack(1, got[len(got)-1].Seq)
		testEventually(t, func() bool { return d.Stats().Segments <= 1 })
		d.Close()
		// Even with every segment gone, numbers continue.
		nos, _ = listSegments(dir)
		for _, n := range nos {
			os.Remove(segPath(dir, n))
		}
	}
	if total < 8 {
		t.Fatalf("only %d segments over 4 rounds", total)
	}
}

// TestNothingDurableBeforeFsync holds the fsync and checks that no durable
// callback fires until it returns, while the committer goes on writing
// what is appended meanwhile: all of it is readable (delivery does not
// wait for an fsync) and none of it durable.
func TestNothingDurableBeforeFsync(t *testing.T) {
	dir := t.TempDir()
	var hold atomic.Bool
	release := make(chan struct{})
	var syncs atomic.Int32
	o := Options{Dir: dir, hooks: &hooks{sync: func(f *os.File) error {
		if hold.Load() && filepath.Ext(f.Name()) == ".seg" {
			syncs.Add(1)
			<-release
		}
		return fdatasync(f)
	}}}
	d := openDisk(t, o)
	var once sync.Once
	unhold := func() { once.Do(func() { hold.Store(false); close(release) }) }
	defer d.Close()
	defer unhold()           // a failure must not leave Close waiting for the fsync
	appendN(t, d, 0, 10, 10) // the segment exists now
	hold.Store(true)
	var fired atomic.Int32
	for i := range 20 {
		if err := d.Append(context.Background(), []Record{rec(100+i, 100)}, func(err error) {
			if err != nil {
				t.Error(err)
			}
			fired.Add(1)
		}); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // written, and its fsync is held
			testEventually(t, func() bool { return syncs.Load() == 1 })
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := fired.Load(); n != 0 {
		t.Fatalf("%d durable callbacks before the fsync returned", n)
	}
	// The 19 appended during the fsync are written (and so readable)
	// while it runs.
	if rs := readN(t, d, 30); eventNo(rs[29]) != 119 {
		t.Fatal(eventNo(rs[29]))
	}
	if n := fired.Load(); n != 0 {
		t.Fatalf("%d durable callbacks before the fsync returned", n)
	}
	unhold()
	testEventually(t, func() bool { return fired.Load() == 20 })
	// One or two fsyncs covered all 20 appends: group commit.
	if n := d.Stats().Fsyncs; n > 6 {
		t.Fatalf("%d fsyncs for 21 appends", n)
	}
}

// TestReadWokenByWrite holds the committer's write: a waiting Read gets
// nothing until the write returns, then it is woken by that write (its
// re-check timer is set to an hour, so only the wake-up can deliver).
func TestReadWokenByWrite(t *testing.T) {
	for _, from := range []string{"memory", "file"} {
		t.Run(from, func(t *testing.T) {
			var hold atomic.Bool
			entered, release := make(chan struct{}, 1), make(chan struct{})
			h := &hooks{recheck: time.Hour, write: func(f *os.File, b []byte, off int64) (int, error) {
				if hold.Load() && filepath.Ext(f.Name()) == ".seg" && off >= segHeader {
					entered <- struct{}{}
					<-release
				}
				return f.WriteAt(b, off)
			}}
			o := Options{Dir: t.TempDir(), hooks: h}
			if from == "file" {
				o.MemBytes = 1 // nothing fits in memory: read back from the file
			}
			d := openDisk(t, o)
			var once sync.Once
			unhold := func() { once.Do(func() { hold.Store(false); close(release) }) }
			defer d.Close()
			defer unhold() // a failure must not leave Close waiting for the write
			appendN(t, d, 0, 5, 100)
			readN(t, d, 5)
			hold.Store(true)
			got := make(chan []Record, 1)
			go func() {
				rs, err := d.Read(context.Background(), 10)
				if err != nil {
					t.Error(err)
				}
				got <- rs
			}()
			time.Sleep(20 * time.Millisecond) // the reader waits
			if err := d.Append(context.Background(), []Record{rec(5, 100)}, nil); err != nil {
				t.Fatal(err)
			}
			<-entered
			select {
			case rs := <-got:
				t.Fatalf("read %d records while their write was held", len(rs))
			case <-time.After(50 * time.Millisecond):
			}
			unhold()
			select {
			case rs := <-got:
				if len(rs) != 1 || eventNo(rs[0]) != 5 {
					t.Fatalf("read %d records", len(rs))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the reader was not woken by the write")
			}
		})
	}
}

// TestFsyncFailsWhileWriting holds an fsync while more is appended (and
// written, and read), then fails it: nothing is reported durable before
// the records are written again into a new segment and synced, each
// record is read once, and after a restart the files hold each once.
func TestFsyncFailsWhileWriting(t *testing.T) {
	dir := t.TempDir()
	var hold atomic.Bool
	entered, release := make(chan struct{}, 1), make(chan struct{})
	h := &hooks{sync: func(f *os.File) error {
		if filepath.Ext(f.Name()) == ".seg" && hold.CompareAndSwap(true, false) {
			entered <- struct{}{}
			<-release
			return syscall.EIO
		}
		return fdatasync(f)
	}}
	d := openDisk(t, Options{Dir: dir, hooks: h})
	var once sync.Once
	unhold := func() { once.Do(func() { close(release) }) }
	defer unhold()
	appendN(t, d, 0, 10, 100)
	if got := readN(t, d, 10); eventNo(got[9]) != 9 {
		t.Fatal(eventNo(got[9]))
	}
	hold.Store(true)
	var mu sync.Mutex
	var durableN int
	for i := range 20 {
		if err := d.Append(context.Background(), []Record{rec(10+i, 100)}, func(err error) {
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			durableN++
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			<-entered // event 10 is written, its fsync held
		}
	}
	got := readN(t, d, 20) // written during the fsync
	checkEvents(t, got, 10, 30)
	mu.Lock()
	if durableN != 0 {
		t.Fatalf("%d reported durable before the fsync returned", durableN)
	}
	mu.Unlock()
	unhold() // the held fsync fails
	testEventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return durableN == 20 })
	if st := d.Stats(); st.WriteErrors == 0 {
		t.Fatal("the failed fsync was not counted")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	if rs, err := d.Read(ctx, 100); err == nil {
		t.Fatalf("read %d records again (first: event %d)", len(rs), eventNo(rs[0]))
	}
	cancel()
	crash(d)
	d = openDisk(t, Options{Dir: dir})
	defer d.Close()
	checkEvents(t, readAll(t, d), 0, 30)
}

// TestWriteErrorsNeverDurable fails writes and fsyncs (ENOSPC, EIO) for a
// while: nothing is reported durable meanwhile, every record is there
// exactly once afterwards, and the errors are counted.
func TestWriteErrorsNeverDurable(t *testing.T) {
	for _, mode := range []string{"write", "fsync"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			var failing atomic.Bool
			h := &hooks{}
			if mode == "write" {
				h.write = func(f *os.File, b []byte, off int64) (int, error) {
					if failing.Load() && filepath.Ext(f.Name()) == ".seg" && off >= segHeader {
						n, _ := f.WriteAt(b[:len(b)/2], off) // half of it lands
						return n, syscall.ENOSPC
					}
					return f.WriteAt(b, off)
				}
			} else {
				h.sync = func(f *os.File) error {
					if failing.Load() && filepath.Ext(f.Name()) == ".seg" {
						return syscall.EIO
					}
					return fdatasync(f)
				}
			}
			d := openDisk(t, Options{Dir: dir, hooks: h})
			appendN(t, d, 0, 50, 100)
			failing.Store(true)
			var mu sync.Mutex
			var durableN int
			for i := range 50 {
				d.Append(context.Background(), []Record{rec(50+i, 100)}, func(err error) {
					if err != nil {
						t.Error(err)
					}
					mu.Lock()
					durableN++
					mu.Unlock()
				})
			}
			testEventually(t, func() bool { return d.Stats().WriteErrors >= 3 })
			mu.Lock()
			if durableN != 0 {
				t.Fatalf("%d reported durable while every write failed", durableN)
			}
			mu.Unlock()
			failing.Store(false)
			testEventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return durableN == 50 })
			got := readAll(t, d)
			checkEvents(t, got, 0, 100)
			crash(d)
			// After a restart the files hold every record once, in order.
			d = openDisk(t, Options{Dir: dir})
			checkEvents(t, readAll(t, d), 0, 100)
			d.Close()
		})
	}
}

func TestStatsOldestUnacked(t *testing.T) {
	d := openDisk(t, Options{Dir: t.TempDir()})
	defer d.Close()
	r := rec(0, 10)
	r.Received = time.Now().Add(-time.Minute)
	appendWait(t, d, []Record{r})
	r2 := rec(1, 10)
	r2.Received = time.Now()
	appendWait(t, d, []Record{r2})
	if age := time.Since(d.Stats().OldestUnacked); age < 59*time.Second || age > 2*time.Minute {
		t.Fatalf("oldest unacked age %v", age)
	}
	rs := readN(t, d, 2)
	d.Ack(rs[0].Seq, rs[0].Seq)
	if age := time.Since(d.Stats().OldestUnacked); age > 30*time.Second {
		t.Fatalf("oldest unacked age %v after acking the old one", age)
	}
}

func crcOf(b []byte) uint32 { return crc32Checksum(b) }

func le32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	d := openDisk(t, Options{Dir: dir})
	appendN(t, d, 0, 100, 100)
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.InUse || rep.Records != 100 || len(rep.Problems) != 0 {
		t.Fatalf("while open: %+v", rep)
	}
	crash(d)
	seg := lastSegment(t, dir)
	b, _ := os.ReadFile(seg)
	fs := (len(b) - segHeader) / 100
	b[segHeader+10*fs+20] ^= 1
	os.WriteFile(seg, b[:len(b)-10], 0o640)
	rep, err = Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Write(&out)
	if rep.InUse || len(rep.Problems) != 2 || rep.Segments[0].Corrupt != 1 || rep.Segments[0].TornTail == 0 {
		t.Fatalf("report:\n%s", out.String())
	}
	// Verify changed nothing.
	if b2, _ := os.ReadFile(seg); len(b2) != len(b)-10 {
		t.Fatal("verify modified the segment")
	}
}
