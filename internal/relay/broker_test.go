package relay

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/link"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// TestLinkMsgID: an event that came over a relay link is published with
// its origin's id (the same on every receiving relay); others get none
// here (their spool's id is used).
func TestLinkMsgID(t *testing.T) {
	meta := make([]byte, link.MetaLen)
	for i := 0; i < 16; i++ {
		meta[i] = byte(i + 1)
	}
	binary.BigEndian.PutUint64(meta[16:], 42)
	id := linkMsgID(&spool.Record{Seq: 7, Meta: meta})
	if id != "l0102030405060708090a0b0c0d0e0f10-42" {
		t.Fatalf("link id %q", id)
	}
	if id := linkMsgID(&spool.Record{Seq: 7}); id != "" {
		t.Fatalf("id %q for an event without link meta", id)
	}
	if id := linkMsgID(&spool.Record{Seq: 7, Meta: []byte("short")}); id != "" || strings.Contains(id, "-") {
		t.Fatalf("id %q for foreign meta", id)
	}
}
