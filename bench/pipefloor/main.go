// Command pipefloor runs the seed's batch-acknowledged pipeline
// (ventilator → workers → sink, an ack per batch, one batch in flight)
// over bare TCP loopback, with none of ZeroMQ: a 4-byte length and an
// 8-byte id per message, one buffered write per connection per batch, no
// handshake, no queues, no headers. Nothing real should use it; it
// measures what the kernel and the Go runtime alone cost for the pattern on
// this machine, the floor under any ZeroMQ implementation's numbers.
// bench/pipeline.sh prints it beside the Go and Python pipelines.
//
//	pipefloor -batch 1000000,1000,100,50,10 -count 1000000 -workers 4 -size 32
//
// Output lines are examples/pipeline's -tsv lines, labelled "raw-tcp".
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	batches := flag.String("batch", "1000000,1000,100,50,10", "comma-separated batch sizes")
	count := flag.Int("count", 1_000_000, "messages per run")
	workers := flag.Int("workers", 4, "workers")
	size := flag.Int("size", 32, "payload bytes per message")
	label := flag.String("label", "raw-tcp", "implementation name in the output lines")
	flag.Parse()
	for _, s := range strings.Split(*batches, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || b < 1 {
			fmt.Fprintf(os.Stderr, "pipefloor: -batch %q: want positive integers, e.g. 1000,10\n", s)
			os.Exit(2)
		}
		d, dup, missing, err := run(b, *count, *workers, *size)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pipefloor: batch %d: %v\n", b, err)
			os.Exit(1)
		}
		ok := "yes"
		if dup != 0 || missing != 0 {
			ok = "no"
		}
		fmt.Printf("%s\t%d\t%d\t%.3f\t%.0f\t%s\n", *label, b, *count, d.Seconds(), float64(*count)/d.Seconds(), ok)
		if ok != "yes" {
			os.Exit(1)
		}
	}
}

// pair returns the two ends of a loopback TCP connection.
func pair() (net.Conn, net.Conn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := ln.Accept(); ch <- res{c, err} }()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("accept: %w", r.err)
	}
	return a, r.c, nil
}

// run moves count messages through workers in batches of batch and
// reports the time taken and the sink's duplicates and missing ids.
func run(batch, count, workers, size int) (time.Duration, int, int, error) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	connect := func() (net.Conn, net.Conn, error) {
		a, b, err := pair()
		if err == nil {
			conns = append(conns, a, b)
		}
		return a, b, err
	}
	ackSink, ackVent, err := connect()
	if err != nil {
		return 0, 0, 0, err
	}
	toWorker := make([]*bufio.Writer, workers)
	var wg sync.WaitGroup
	seen := make([]uint32, count)
	var received atomic.Int64
	var ackMu sync.Mutex
	ackBuf := make([]byte, 8)
	errc := make(chan error, 2*workers)
	for w := range workers {
		vent, work, err := connect()
		if err != nil {
			return 0, 0, 0, err
		}
		toSink, sink, err := connect()
		if err != nil {
			return 0, 0, 0, err
		}
		toWorker[w] = bufio.NewWriterSize(vent, 64<<10)
		wg.Add(2)
		go func() { defer wg.Done(); errc <- worker(work, toSink) }()
		go func() {
			defer wg.Done()
			errc <- sinkReader(sink, func(id uint64) error {
				if id >= uint64(count) {
					return fmt.Errorf("id %d out of range", id)
				}
				atomic.AddUint32(&seen[id], 1)
				n := received.Add(1)
				if n%int64(batch) != 0 && n != int64(count) {
					return nil
				}
				ackMu.Lock()
				defer ackMu.Unlock()
				binary.LittleEndian.PutUint64(ackBuf, uint64(n))
				_, err := ackSink.Write(ackBuf)
				return err
			})
		}()
	}
	msg := make([]byte, 4+8+size)
	binary.LittleEndian.PutUint32(msg, uint32(8+size))
	ack := make([]byte, 8)
	start := time.Now()
	for sent := 0; sent < count; {
		end := min(sent+batch, count)
		for id := sent; id < end; id++ {
			binary.LittleEndian.PutUint64(msg[4:], uint64(id))
			if _, err := toWorker[id%workers].Write(msg); err != nil {
				return 0, 0, 0, err
			}
		}
		for _, w := range toWorker {
			if err := w.Flush(); err != nil {
				return 0, 0, 0, err
			}
		}
		if _, err := io.ReadFull(ackVent, ack); err != nil {
			return 0, 0, 0, fmt.Errorf("read ack: %w", err)
		}
		if got := binary.LittleEndian.Uint64(ack); got != uint64(end) {
			return 0, 0, 0, fmt.Errorf("ack for %d messages, want %d", got, end)
		}
		sent = end
	}
	d := time.Since(start)
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) {
			return 0, 0, 0, err
		}
	}
	dup, missing := 0, 0
	for _, n := range seen {
		switch {
		case n == 0:
			missing++
		case n > 1:
			dup += int(n) - 1
		}
	}
	return d, dup, missing, nil
}

// worker passes every message from in to out, flushing whenever it has
// nothing more to read, as a ZeroMQ writer batches what is queued.
func worker(in, out net.Conn) error {
	r := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriterSize(out, 64<<10)
	var hdr [4]byte
	buf := make([]byte, 0, 1024)
	for {
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if int(n) > cap(buf) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		w.Write(hdr[:])
		w.Write(buf)
	}
}

// sinkReader calls got with the id of every message read from in.
func sinkReader(in net.Conn, got func(uint64) error) error {
	r := bufio.NewReaderSize(in, 64<<10)
	var hdr [4]byte
	buf := make([]byte, 0, 1024)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return err
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n < 8 {
			return fmt.Errorf("message of %d bytes, want at least 8", n)
		}
		if int(n) > cap(buf) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		if err := got(binary.LittleEndian.Uint64(buf)); err != nil {
			return err
		}
	}
}
