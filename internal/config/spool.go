package config

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/rsyslog-zmq/relay/internal/spool"
)

// Spool makes an output durable: its events are appended to a disk spool
// first, and a drain loop sends them on from there, so they survive a
// crash, a long stall of the destination and a restart.
type Spool struct {
	// Dir is the spool's directory, one per output; its identity is the
	// directory, so changing the output's other settings keeps its events.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the spool on disk; keep it below the free space.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// Fsync is always (no event counts as handed off before an fdatasync
	// covers it), an interval such as 10ms, or never (a crash of the
	// machine loses what the kernel had not written).
	Fsync string `yaml:"fsync"`
	// Full is block (backpressure to the inputs, as a PUSH without room),
	// drop_oldest or drop_newest; drops are counted.
	Full string `yaml:"full"`
	// SegmentBytes is the size of one segment file (default 64MiB, at most
	// max_bytes/8).
	SegmentBytes ByteSize `yaml:"segment_bytes,omitempty"`
}

// Spool defaults.
var (
	DefaultSpoolMaxBytes ByteSize = spool.DefaultMaxBytes
	DefaultSpoolFsync             = "always"
	DefaultSpoolFull              = "block"
	MinSpoolMaxBytes     ByteSize = spool.MinMaxBytes
)

func (d *decoder) spool(v *yaml.Node, p string, o *Output) {
	o.Spool = &Spool{}
	s := o.Spool
	d.fields(v, p, fieldSet{
		"dir":           func(v *yaml.Node, p string) { d.str(v, p, &s.Dir) },
		"max_bytes":     func(v *yaml.Node, p string) { d.size(v, p, &s.MaxBytes) },
		"fsync":         func(v *yaml.Node, p string) { d.str(v, p, &s.Fsync) },
		"full":          func(v *yaml.Node, p string) { d.str(v, p, &s.Full) },
		"segment_bytes": func(v *yaml.Node, p string) { d.size(v, p, &s.SegmentBytes) },
	}, func(key string) string {
		if key == "type" {
			return spoolTypeHint
		}
		return ""
	})
}

// spoolTypeHint answers a spool section with a type (memory): the relay's
// spools are disk spools only, because an output without one already is
// what a memory spool would be.
const spoolTypeHint = "a spool is always a directory on disk; there is no memory spool: an output without a spool already holds " +
	"its events in memory, bounded, until they are written to a worker (PUSH, hwm) or acknowledged (ack:, window), and only then " +
	"tells the input (a RELP answer) they are safe; remove type, and either give the spool a dir or remove the spool section"

func (c *Config) spoolDefaults(p string, s *Spool) {
	if !c.set(p+".max_bytes") && s.MaxBytes == 0 {
		s.MaxBytes = DefaultSpoolMaxBytes
	}
	if !c.set(p+".fsync") && s.Fsync == "" {
		s.Fsync = DefaultSpoolFsync
	}
	if !c.set(p+".full") && s.Full == "" {
		s.Full = DefaultSpoolFull
	}
}

// spool checks an output's spool section; dirs collects the directories
// of the outputs checked so far (two outputs never share one).
func (k *checker) spool(p string, o *Output, dirs map[string]string) {
	s := o.Spool
	if o.Socket == SocketPub {
		k.add(p, ErrInvalid, "a pub output cannot be spooled: PUB delivers to the subscribers connected at that moment and drops for slow ones by design, "+
			"so a spool would only delay events, never deliver them to a subscriber that was away; spool a push output (or use the relay link) for delivery that must not lose")
	}
	if s.Dir == "" {
		k.add(p+".dir", ErrRequired, "dir is required: the spool's own directory, e.g. dir: /var/lib/relay/spool/%s", o.Name)
	} else {
		clean := filepath.Clean(s.Dir)
		if other, ok := dirs[clean]; ok {
			k.add(p+".dir", ErrDuplicate, "%s is already the spool of output %q; give every output its own directory", s.Dir, other)
		} else {
			dirs[clean] = o.Name
		}
		if err := checkSpoolDir(clean); err != nil {
			k.add(p+".dir", ErrFile, "%v", err)
		}
	}
	if s.MaxBytes < MinSpoolMaxBytes {
		k.add(p+".max_bytes", ErrInvalid, "%s is too small; use at least %s (default %s)", s.MaxBytes, MinSpoolMaxBytes, DefaultSpoolMaxBytes)
	} else if s.Dir != "" {
		if total := fsSize(filepath.Clean(s.Dir)); total > 0 && int64(s.MaxBytes) > total {
			k.add(p+".max_bytes", ErrInvalid, "%s is larger than the file system holding %s (%s); set it below the free space, "+
				"so that the spool fills (and pushes back, or drops by full:) before the disk does", s.MaxBytes, s.Dir, ByteSize(total))
		}
	}
	if s.SegmentBytes != 0 && s.SegmentBytes < 64<<10 {
		k.add(p+".segment_bytes", ErrInvalid, "%s is too small; use at least 64KiB (default 64MiB)", s.SegmentBytes)
	}
	if _, _, err := spool.ParseFsync(s.Fsync); err != nil {
		k.add(p+".fsync", ErrInvalid, "%v", err)
	}
	if _, err := spool.ParseFull(s.Full); err != nil {
		k.add(p+".full", ErrInvalid, "%v", err)
	}
}

// checkSpoolDir checks that dir is a writable directory, or can be created
// (its nearest existing parent is writable).
func checkSpoolDir(dir string) error {
	d := dir
	for {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory; point dir at a directory for this output's spool", d)
			}
			if err := syscall.Access(d, 2|1); err != nil { // W_OK|X_OK
				what := "the spool directory"
				if d != dir {
					what = "the parent of the spool directory, which the relay would create,"
				}
				return fmt.Errorf("%s %s is not writable (%v); make it writable by the relay's user", what, d, err)
			}
			return nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return fmt.Errorf("%s: no existing parent directory", dir)
		}
		d = parent
	}
}

// fsSize returns the size of the file system holding dir (or its nearest
// existing parent), 0 if unknown.
func fsSize(dir string) int64 {
	for d := dir; ; d = filepath.Dir(d) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err == nil {
			return int64(st.Blocks) * st.Bsize
		}
		if filepath.Dir(d) == d {
			return 0
		}
	}
}
