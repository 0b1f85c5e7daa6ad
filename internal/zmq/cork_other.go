//go:build !linux

package zmq

import "net"

// setCork is Linux-only (TCP_CORK); elsewhere writes go out at once.
func setCork(net.Conn, bool) bool { return false }
