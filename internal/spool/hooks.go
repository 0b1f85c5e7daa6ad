package spool

import (
	"os"
	"time"
)

// writeFunc writes b at off; syncFunc fdatasyncs. Tests replace them to
// inject ENOSPC and EIO, or to hold an fsync while they check that nothing
// is reported durable before it returns.
type (
	writeFunc func(f *os.File, b []byte, off int64) (int, error)
	syncFunc  func(f *os.File) error
)

type hooks struct {
	write writeFunc
	sync  syncFunc
	// recheck replaces the reader's re-check interval (a test that
	// proves the wake-up sets it to hours).
	recheck time.Duration
}

// readRecheck is how often a waiting Read re-checks without a wake-up.
const readRecheck = 200 * time.Millisecond

func (d *Disk) recheck() time.Duration {
	if d.opt.hooks != nil && d.opt.hooks.recheck > 0 {
		return d.opt.hooks.recheck
	}
	return readRecheck
}

func (d *Disk) writeAt(f *os.File, b []byte, off int64) (int, error) {
	if d.opt.hooks != nil && d.opt.hooks.write != nil {
		return d.opt.hooks.write(f, b, off)
	}
	return f.WriteAt(b, off)
}

func (d *Disk) fdatasync(f *os.File) error {
	if d.opt.hooks != nil && d.opt.hooks.sync != nil {
		return d.opt.hooks.sync(f)
	}
	return fdatasync(f)
}
