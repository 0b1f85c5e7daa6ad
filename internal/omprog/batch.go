package omprog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// Fire-and-forget reads stdin in large chunks and hands the sink the lines
// as slices of the chunk, so no line is copied: a chunk is never written
// again once lines of it were handed off, and a new one is started when
// the free space runs low (the incomplete last line moves over).
const (
	batchBufSize = 256 << 10
	batchMinFree = 16 << 10
)

// serveBatches is Serve without Confirm, for a BatchSink: nothing is
// answered, so every complete line read is handed off in one call.
func (s *Server) serveBatches(ctx context.Context, sink BatchSink) error {
	tx := s.opts.Transactions
	first := true
	buf := make([]byte, 0, batchBufSize)
	start := 0        // where the incomplete line begins in buf
	skipping := false // inside an oversize line: drop up to its LF
	var lines [][]byte
	take := func(line []byte) {
		s.lines.Add(1)
		if first {
			first = false
			if tx == TxAuto {
				tx = TxOff
				if string(line) == s.opts.BeginMark {
					tx = TxOn
				}
			}
		}
		// Without confirmations the marks mean nothing to answer.
		if tx == TxOn && (string(line) == s.opts.BeginMark || string(line) == s.opts.CommitMark) {
			return
		}
		lines = append(lines, line)
	}
	oversize := func() { s.discardOversize(&first, &tx) }
	for {
		if cap(buf)-len(buf) < batchMinFree {
			tail := buf[start:]
			buf = append(make([]byte, 0, max(batchBufSize, 2*len(tail))), tail...)
			start = 0
		}
		n, err := s.in.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		lines = lines[:0]
		for {
			i := bytes.IndexByte(buf[start:], '\n')
			if i < 0 {
				break
			}
			line := buf[start : start+i : start+i] // capped: appending cannot reach the next line
			start += i + 1
			switch {
			case skipping:
				skipping = false
			case len(line) > s.opts.MaxLine:
				oversize()
			default:
				take(line)
			}
		}
		if !skipping && len(buf)-start > s.opts.MaxLine {
			oversize()
			skipping = true
		}
		if skipping {
			start = len(buf)
		}
		if errors.Is(err, io.EOF) && start < len(buf) {
			take(buf[start:len(buf):len(buf)]) // a last line without LF
			start = len(buf)
		}
		if len(lines) > 0 {
			k, serr := sink.SendBatch(ctx, lines)
			s.messages.Add(uint64(k))
			if serr != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// Nobody to tell: log it; rsyslog has already forgotten these.
				s.failed.Add(uint64(len(lines) - k))
				s.opts.Logger.Warn("messages not handed off (fire-and-forget: lost)", "count", len(lines)-k, "err", serr)
			}
			clear(lines) // the sink owns them; don't keep them alive here
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return s.flushAtEOF(ctx)
			}
			return fmt.Errorf("read stdin: %w", err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
