package testpeer

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// ZMTPHandshake does a ZMTP 3.0 NULL-mechanism handshake on c as a socket
// of socketType ("PUSH", "SUB"…), so a test can then write frames that
// libzmq would never send. c's deadline, if any, is the caller's.
func ZMTPHandshake(t testing.TB, c net.Conn, socketType string) {
	t.Helper()
	// Signature (0xff, 8 bytes of padding, 0x7f), version 3.0, mechanism
	// "NULL" zero-padded to 20 bytes, as-server 0, zero filler: 64 bytes.
	greeting := make([]byte, 64)
	greeting[0], greeting[9], greeting[10], greeting[11] = 0xff, 0x7f, 3, 0
	copy(greeting[12:], "NULL")
	if _, err := c.Write(greeting); err != nil {
		t.Fatalf("write ZMTP greeting: %v", err)
	}
	if _, err := io.ReadFull(c, make([]byte, 64)); err != nil {
		t.Fatalf("read greeting: %v", err)
	}
	// READY command: name, then the Socket-Type property.
	var body []byte
	body = append(body, 5)
	body = append(body, "READY"...)
	body = append(body, 11)
	body = append(body, "Socket-Type"...)
	body = binary.BigEndian.AppendUint32(body, uint32(len(socketType)))
	body = append(body, socketType...)
	if _, err := c.Write(append([]byte{0x04, byte(len(body))}, body...)); err != nil {
		t.Fatalf("write ZMTP READY: %v", err)
	}
	h := make([]byte, 2)
	if _, err := io.ReadFull(c, h); err != nil || h[0]&0x04 == 0 {
		t.Fatalf("read READY header %x: %v", h, err)
	}
	if _, err := io.ReadFull(c, make([]byte, h[1])); err != nil {
		t.Fatalf("read READY: %v", err)
	}
}
