package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/tidwall/wal"
)

// The measurement behind the choice of an own segmented log over
// tidwall/wal (see doc.go): the same 200-byte records, encoded the same
// way, appended in batches with one fsync per batch before the batch
// counts as durable.
//
//	go test -run '^$' -bench 'Append' -benchtime 3s ./internal/spool/

func benchRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = rec(i, 200)
	}
	return recs
}

// walEntries encodes recs as tidwall/wal entries: our frames (it has no
// record fields of its own, and frames entries with a length only, no
// checksum). Its TruncateFront rewrites the first segment, so the
// benchmarks leave its files growing; the spool deletes acknowledged
// segments as it goes.
func walEntries(recs []Record) [][]byte {
	out := make([][]byte, len(recs))
	for i := range recs {
		out[i] = appendFrame(nil, &recs[i])
	}
	return out
}

// BenchmarkAppend: one writer, a batch per iteration, waiting until it is
// durable (fsync'd) before the next.
func BenchmarkAppend(b *testing.B) {
	for _, batch := range []int{64, 1024, 4096} {
		b.Run(fmt.Sprintf("impl=spool/batch=%d", batch), func(b *testing.B) {
			d, err := Open(Options{Dir: b.TempDir(), Fsync: FsyncAlways, MaxBytes: 64 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			recs := benchRecords(batch)
			done := make(chan error, 1)
			go drainAck(d)
			b.SetBytes(int64(200 * batch))
			b.ResetTimer()
			for range b.N {
				if err := d.Append(context.Background(), recs, func(err error) { done <- err }); err != nil {
					b.Fatal(err)
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rec/s")
		})
		b.Run(fmt.Sprintf("impl=tidwall/batch=%d", batch), func(b *testing.B) {
			l, err := wal.Open(b.TempDir(), &wal.Options{NoSync: false, SegmentSize: 64 << 20, NoCopy: true})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ents := walEntries(benchRecords(batch))
			var wb wal.Batch
			idx := uint64(1)
			b.SetBytes(int64(200 * batch))
			b.ResetTimer()
			for range b.N {
				for _, e := range ents {
					wb.Write(idx, e)
					idx++
				}
				if err := l.WriteBatch(&wb); err != nil { // one write + fsync
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rec/s")
		})
	}
}

// drainAck reads and acknowledges everything, so the spool deletes
// segments as a real one does.
func drainAck(d *Disk) {
	for {
		rs, err := d.Read(context.Background(), 4096)
		if err != nil {
			return
		}
		d.Ack(rs[0].Seq, rs[len(rs)-1].Seq)
	}
}

// BenchmarkAppendConcurrent: 4 writers (the relay's input connections),
// each waiting for its own batch to be durable. The spool's group commit
// covers all of them with one fsync; tidwall/wal serialises WriteBatch,
// one fsync each.
func BenchmarkAppendConcurrent(b *testing.B) {
	const writers = 4
	for _, batch := range []int{64, 512} {
		b.Run(fmt.Sprintf("impl=spool/writers=%d/batch=%d", writers, batch), func(b *testing.B) {
			d, err := Open(Options{Dir: b.TempDir(), Fsync: FsyncAlways, MaxBytes: 64 << 30})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			go drainAck(d)
			b.SetBytes(int64(200 * batch))
			b.ResetTimer()
			runWriters(b, writers, func(recs []Record, done chan error) {
				if err := d.Append(context.Background(), recs, func(err error) { done <- err }); err != nil {
					b.Error(err)
					return
				}
				if err := <-done; err != nil {
					b.Error(err)
				}
			}, batch)
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rec/s")
			b.ReportMetric(float64(d.Stats().Fsyncs)/float64(b.N), "fsyncs/batch")
		})
		b.Run(fmt.Sprintf("impl=tidwall/writers=%d/batch=%d", writers, batch), func(b *testing.B) {
			l, err := wal.Open(b.TempDir(), &wal.Options{SegmentSize: 64 << 20, NoCopy: true})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			var mu sync.Mutex // WriteBatch needs the next index: one writer at a time
			idx := uint64(1)
			ents := walEntries(benchRecords(batch))
			b.SetBytes(int64(200 * batch))
			b.ResetTimer()
			runWriters(b, writers, func([]Record, chan error) {
				var wb wal.Batch
				mu.Lock()
				defer mu.Unlock()
				for _, e := range ents {
					wb.Write(idx, e)
					idx++
				}
				if err := l.WriteBatch(&wb); err != nil {
					b.Error(err)
				}
			}, batch)
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rec/s")
		})
	}
}

// runWriters runs b.N batches over n goroutines.
func runWriters(b *testing.B, n int, one func([]Record, chan error), batch int) {
	var wg sync.WaitGroup
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs := benchRecords(batch)
			done := make(chan error, 1)
			for range work {
				one(recs, done)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkReadBack reads records back from the files (a reader that fell
// behind), 1000 per call.
func BenchmarkReadBack(b *testing.B) {
	const n = 200_000
	b.Run("impl=spool", func(b *testing.B) {
		dir := b.TempDir()
		d, err := Open(Options{Dir: dir, MemBytes: 1})
		if err != nil {
			b.Fatal(err)
		}
		recs := benchRecords(1000)
		for i := 0; i < n; i += 1000 {
			appendWaitB(b, d, recs)
		}
		d.Close()
		b.SetBytes(200)
		b.ResetTimer()
		read := 0
		for read < b.N {
			if read%n == 0 {
				b.StopTimer() // reopen to read the same records again
				d.Close()
				if d, err = Open(Options{Dir: dir, MemBytes: 1}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			rs, err := d.Read(context.Background(), min(1000, b.N-read))
			if err != nil {
				b.Fatal(err)
			}
			read += len(rs)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rec/s")
		d.Close()
	})
	b.Run("impl=tidwall", func(b *testing.B) {
		l, err := wal.Open(b.TempDir(), &wal.Options{NoSync: true, SegmentSize: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		var wb wal.Batch
		for i, e := range walEntries(benchRecords(n)) {
			wb.Write(uint64(i+1), e)
		}
		l.WriteBatch(&wb)
		var slab []byte
		b.SetBytes(200)
		b.ResetTimer()
		for i := range b.N {
			data, err := l.Read(uint64(i%n + 1))
			if err != nil {
				b.Fatal(err)
			}
			var v frameView
			if !decodeFrame(data, &v) {
				b.Fatal("bad entry")
			}
			slab = slab[:0]
			_ = recordFrom(&v, &slab, nil)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rec/s")
	})
}

func appendWaitB(b *testing.B, d *Disk, recs []Record) {
	done := make(chan error, 1)
	if err := d.Append(context.Background(), recs, func(err error) { done <- err }); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// TestTidwallTornTail records the crash behaviour that weighs against
// tidwall/wal (telegraf#18528): a torn last entry makes Open fail with
// "log corrupt" until someone repairs the files by hand, where the spool
// truncates the tail, counts it and goes on (TestTornTailTruncated).
func TestTidwallTornTail(t *testing.T) {
	dir := t.TempDir()
	l, err := wal.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		l.Write(uint64(i+1), []byte("entry with some bytes"))
	}
	l.Close()
	ents, _ := os.ReadDir(dir)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	last := filepath.Join(dir, ents[len(ents)-1].Name())
	fi, _ := os.Stat(last)
	os.Truncate(last, fi.Size()-5)
	l, err = wal.Open(dir, nil)
	if err == nil {
		defer l.Close()
		// Opening may be lazy: reading the torn entry fails then.
		_, err = l.Read(10)
	}
	if !errors.Is(err, wal.ErrCorrupt) {
		t.Fatalf("tidwall/wal on a torn tail: %v; if it now recovers, weigh it again (doc.go)", err)
	}
}
