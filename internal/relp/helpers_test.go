package relp

import (
	"net"
	"sync"
	"testing"
)

var (
	pairOnce sync.Once
	pairLn   net.Listener
	pairErr  error
)

// tcpPair returns the two ends of a loopback TCP connection (client,
// server); both are closed when the test ends.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	pairOnce.Do(func() { pairLn, pairErr = net.Listen("tcp", "127.0.0.1:0") })
	if pairErr != nil {
		t.Fatal(pairErr)
	}
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := pairLn.Accept()
		ch <- res{c, err}
	}()
	client, err := net.Dial("tcp", pairLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}
