package broker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// IDFile holds a spool's identity in its directory.
const IDFile = "broker-id"

// spoolCheckpoint is the file a disk spool writes when it is created; a
// directory without it is a new spool (see internal/spool), whose seqs
// start again, so it must get a new identity too.
const spoolCheckpoint = "checkpoint"

// SpoolID returns the identity of the disk spool in dir, for message ids:
// a random 64-bit id kept in dir/broker-id. Call it before the spool is
// opened: a directory that holds no spool yet (no checkpoint) gets a new
// id even if an old id file is left, because the new spool's seqs start
// again at 1 and must not repeat an old id's messages.
func SpoolID(dir string) (string, error) {
	path := filepath.Join(dir, IDFile)
	_, cerr := os.Stat(filepath.Join(dir, spoolCheckpoint))
	if cerr == nil {
		b, err := os.ReadFile(path)
		if err == nil {
			id := strings.TrimSpace(string(b))
			if _, perr := strconv.ParseUint(id, 16, 64); perr != nil || len(id) != 16 {
				return "", fmt.Errorf("spool id %s is not 16 hex digits; restore it, or delete it together with the spool's other files to start the spool anew", path)
			}
			return id, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("spool id %s: %w", path, err)
		}
		// A spool from before ids: its records have never carried one.
	} else if !errors.Is(cerr, fs.ErrNotExist) {
		return "", fmt.Errorf("spool directory %s: %w", dir, cerr)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b[:])
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", fmt.Errorf("spool id: %w; create %s for the relay's user", err, dir)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return "", fmt.Errorf("spool id: %w; make %s writable by the relay's user", err, dir)
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return "", fmt.Errorf("spool id %s: %w", path, err)
	}
	return id, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// MsgID is the Nats-Msg-Id of the record with seq in the spool with id:
// the same for every attempt to send that record, and never the same for
// two records.
func MsgID(spoolID string, seq uint64) string {
	return spoolID + "-" + strconv.FormatUint(seq, 10)
}
