// Package sdnotify tells systemd how the relay is doing: the sd_notify
// protocol, one datagram of newline-separated KEY=VALUE assignments sent to
// the unix socket named by $NOTIFY_SOCKET (a path, or "@name" for an
// abstract socket). Without $NOTIFY_SOCKET every call is a no-op, so the
// relay runs the same outside systemd.
//
// The states the relay sends (systemd.service(5), sd_notify(3)):
//
//	READY=1                         every input and output is up (Type=notify)
//	RELOADING=1 + MONOTONIC_USEC=…  a SIGHUP reload began; READY=1 again when done
//	STOPPING=1                      shutdown and drain began
//	WATCHDOG=1                      still alive, every WatchdogInterval/2
//	STATUS=…                        a line for `systemctl status`
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrUnsupportedSocket is returned by New for a $NOTIFY_SOCKET that is not
// a unix socket path or an abstract name (systemd 254's vsock: addresses).
var ErrUnsupportedSocket = errors.New("sdnotify: unsupported NOTIFY_SOCKET")

// Notifier sends states to the service manager. A nil *Notifier, or one
// made without $NOTIFY_SOCKET, does nothing. It is safe for concurrent use:
// every Send is one datagram on a socket of its own, as sd_notify(3) does,
// so a manager that re-created its socket (daemon-reexec) still hears us.
type Notifier struct {
	addr *net.UnixAddr
}

// New returns a Notifier for $NOTIFY_SOCKET; without it, a no-op one.
func New() (*Notifier, error) {
	return NewFor(os.Getenv("NOTIFY_SOCKET"))
}

// NewFor returns a Notifier for the socket name given as in $NOTIFY_SOCKET:
// an absolute path, or "@name" for an abstract socket. "" gives a no-op.
func NewFor(socket string) (*Notifier, error) {
	switch {
	case socket == "":
		return &Notifier{}, nil
	case strings.HasPrefix(socket, "/"), strings.HasPrefix(socket, "@"):
		// Go's net package maps a leading '@' to the abstract namespace's NUL.
		return &Notifier{addr: &net.UnixAddr{Name: socket, Net: "unixgram"}}, nil
	}
	return &Notifier{}, fmt.Errorf("%w %q: want an absolute path or @abstract name", ErrUnsupportedSocket, socket)
}

// Enabled reports whether states go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Send sends the assignments (e.g. "READY=1", "STATUS=…") in one datagram.
func (n *Notifier) Send(assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	msg := strings.Join(assignments, "\n")
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sdnotify: send %q: %w", msg, err)
	}
	return nil
}

// Ready says startup (or a reload) is complete; status, if not empty, is
// shown by systemctl status.
func (n *Notifier) Ready(status string) error {
	return n.Send(withStatus([]string{"READY=1"}, status)...)
}

// Reloading says a reload began. MONOTONIC_USEC lets systemd tell this
// reload from an earlier one (systemd.service(5), Type=notify-reload).
func (n *Notifier) Reloading(status string) error {
	return n.Send(withStatus([]string{"RELOADING=1", "MONOTONIC_USEC=" + strconv.FormatInt(Monotonic().Microseconds(), 10)}, status)...)
}

// Stopping says shutdown began: the relay drains, then exits.
func (n *Notifier) Stopping(status string) error {
	return n.Send(withStatus([]string{"STOPPING=1"}, status)...)
}

// Status updates the line systemctl status shows.
func (n *Notifier) Status(status string) error { return n.Send("STATUS=" + oneLine(status)) }

// Watchdog is the keep-alive ping for WatchdogSec=.
func (n *Notifier) Watchdog() error { return n.Send("WATCHDOG=1") }

func withStatus(a []string, status string) []string {
	if status != "" {
		a = append(a, "STATUS="+oneLine(status))
	}
	return a
}

// oneLine keeps a status from injecting further assignments.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// Monotonic returns CLOCK_MONOTONIC, the clock MONOTONIC_USEC is read on.
func Monotonic() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// WatchdogInterval returns the watchdog timeout systemd expects pings
// within ($WATCHDOG_USEC), if it is meant for this process: $WATCHDOG_PID
// is unset or our pid, as sd_watchdog_enabled(3) checks. Ping at half of it.
func WatchdogInterval() (time.Duration, bool) {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogInterval(usec, pid string, self int) (time.Duration, bool) {
	if usec == "" {
		return 0, false
	}
	u, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || u == 0 {
		return 0, false
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil || p != self {
			return 0, false
		}
	}
	return time.Duration(u) * time.Microsecond, true
}

// KeepAlive sends WATCHDOG=1 every interval/2 until ctx ends, each time
// only if alive answers nil within interval/4: a wedged process stops
// pinging and systemd restarts it (WatchdogSec=). A missed ping is
// reported to miss (may be nil), once per failed check.
func (n *Notifier) KeepAlive(ctx context.Context, interval time.Duration, alive func(timeout time.Duration) error, miss func(error)) {
	if !n.Enabled() || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := alive(interval / 4)
		if err == nil {
			err = n.Watchdog()
		}
		if err != nil && miss != nil {
			miss(err)
		}
	}
}
