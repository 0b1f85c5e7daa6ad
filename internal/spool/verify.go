package spool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Report is what Verify found in a spool directory.
type Report struct {
	Dir string
	// InUse is true when a process holds the directory's lock: the tail of
	// the segment it writes may then look torn.
	InUse      bool
	Checkpoint string // "ok", "missing" or what is wrong
	Acked      uint64 // every seq up to this is acknowledged (checkpoint, or progress if newer)
	Progress   string // "ok", "missing" or "unreadable"
	Segments   []SegmentReport
	Records    int64 // records above the acknowledged position (some may be acknowledged out of order)
	Bytes      int64
	// Problems lists what a spool would truncate, skip or quarantine at
	// open; empty means the directory is clean.
	Problems []string
}

// SegmentReport describes one segment file.
type SegmentReport struct {
	File        string
	Bytes       int64
	First, Last uint64 // seqs of its first and last valid record
	Records     int
	TornTail    int64  // bytes after the last valid record; Open truncates them
	Corrupt     uint64 // records missing inside it; Open skips them
	Header      string // "ok" or what is wrong (Open quarantines it)
}

// Verify checks a spool directory without changing it: headers, every
// frame's length and CRC, torn tails, corrupt records, the checkpoint and
// progress files. It is what `relay spool verify DIR` runs; it may be run
// while a relay holds the directory (InUse says so).
func Verify(dir string) (*Report, error) {
	r := &Report{Dir: dir, Checkpoint: "missing", Progress: "missing"}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("spool directory %s: %w", dir, err)
	}
	if f, err := os.Open(filepath.Join(dir, lockName)); err == nil {
		if ok, _ := lockFile(f); !ok {
			r.InUse = true
		}
		f.Close()
	}
	if f, err := os.Open(filepath.Join(dir, ckptName)); err == nil {
		st, found, err := readCkpt(f)
		f.Close()
		switch {
		case err != nil:
			r.Checkpoint = err.Error()
			r.Problems = append(r.Problems, "checkpoint: "+err.Error())
		case !found:
			r.Checkpoint = "unreadable (both slots fail their checks)"
			r.Problems = append(r.Problems, "checkpoint unreadable: every record left would be delivered again")
		default:
			r.Checkpoint = "ok"
			r.Acked = st.acked
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if f, err := os.Open(filepath.Join(dir, progName)); err == nil {
		p, ok := readProg(f)
		f.Close()
		if ok {
			r.Progress = "ok"
			if p.acked > r.Acked {
				r.Acked = p.acked
			}
		} else {
			r.Progress = "unreadable"
		}
	}
	nos, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	if r.Checkpoint == "missing" && len(nos) > 0 {
		r.Problems = append(r.Problems, "checkpoint missing: every record left would be delivered again")
	}
	for _, no := range nos {
		sr := verifySegment(segPath(dir, no), no)
		r.Bytes += sr.Bytes
		r.Segments = append(r.Segments, sr.SegmentReport)
		if sr.Header != "ok" {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %s: Open moves it to quarantine/", sr.File, sr.Header))
			continue
		}
		for _, rr := range sr.runs {
			if rr.Last > r.Acked {
				r.Records += int64(rr.Last - max(rr.First, r.Acked+1) + 1)
			}
		}
		if sr.TornTail > 0 && !(r.InUse && no == nos[len(nos)-1]) {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: torn tail of %d bytes at offset %d: Open truncates it", sr.File, sr.TornTail, sr.Bytes-sr.TornTail))
		}
		if sr.Corrupt > 0 {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %d corrupt records inside: Open skips them (they are lost)", sr.File, sr.Corrupt))
		}
	}
	return r, nil
}

func verifySegment(path string, no uint64) (sr struct {
	SegmentReport
	runs rangeSet
}) {
	sr.File = path
	f, err := os.Open(path)
	if err != nil {
		sr.Header = err.Error()
		return sr
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		sr.Header = err.Error()
		return sr
	}
	sr.Bytes = fi.Size()
	hdr := make([]byte, segHeader)
	n, _ := io.ReadFull(f, hdr)
	hno, base, err := decodeSegHeader(hdr[:n])
	switch {
	case err != nil:
		sr.Header = err.Error()
		return sr
	case hno != no:
		sr.Header = fmt.Sprintf("header names segment %d", hno)
		return sr
	case base == 0:
		sr.Header = "header has base seq 0"
		return sr
	}
	sr.Header = "ok"
	sc := scanSegment(f, fi.Size(), base, nil)
	sr.Records, sr.TornTail, sr.Corrupt, sr.runs = sc.records, sc.tail, sc.corrupt, sc.runs
	if len(sc.runs) > 0 {
		sr.First, sr.Last = sc.runs[0].First, sc.last
	}
	return sr
}

// Write prints the report for an operator.
func (r *Report) Write(w io.Writer) {
	fmt.Fprintf(w, "spool %s\n", r.Dir)
	if r.InUse {
		fmt.Fprintln(w, "  in use by a running process: the segment it writes may show a torn tail")
	}
	fmt.Fprintf(w, "  checkpoint: %s; progress: %s; acknowledged up to seq %d\n", r.Checkpoint, r.Progress, r.Acked)
	for _, s := range r.Segments {
		if s.Header != "ok" {
			fmt.Fprintf(w, "  %s: %d bytes, header: %s\n", filepath.Base(s.File), s.Bytes, s.Header)
			continue
		}
		fmt.Fprintf(w, "  %s: %d bytes, %d records, seq %d..%d", filepath.Base(s.File), s.Bytes, s.Records, s.First, s.Last)
		if s.TornTail > 0 {
			fmt.Fprintf(w, ", torn tail %d bytes", s.TornTail)
		}
		if s.Corrupt > 0 {
			fmt.Fprintf(w, ", %d corrupt records", s.Corrupt)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  %d segments, %d bytes, %d records not acknowledged\n", len(r.Segments), r.Bytes, r.Records)
	if len(r.Problems) == 0 {
		fmt.Fprintln(w, "  ok")
		return
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "  problem:", p)
	}
}
