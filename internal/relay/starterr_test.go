package relay

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// TestStartErrAddressInUse: an input or output whose port another process
// holds stops the start with an error that names the part once (the
// ZeroMQ input named itself, and the relay named it again: `input "z":
// input "z": bind …`) and says what to change, not only the system's
// "address already in use".
func TestStartErrAddressInUse(t *testing.T) {
	for _, c := range []struct{ kind, part, yaml string }{
		{"zmq input", `input "z"`, "inputs:\n  - {name: z, type: zmq, socket: pull, bind: tcp://127.0.0.1:%d}\noutputs:\n  - {name: o, type: zmq, socket: pub, bind: tcp://127.0.0.1:0}\n"},
		{"syslog input", `input "s"`, "inputs:\n  - {name: s, type: syslog, listen: tcp://127.0.0.1:%d}\noutputs:\n  - {name: o, type: zmq, socket: pub, bind: tcp://127.0.0.1:0}\n"},
		{"relp input", `input "r"`, "inputs:\n  - {name: r, type: relp, listen: tcp://127.0.0.1:%d}\noutputs:\n  - {name: o, type: zmq, socket: pub, bind: tcp://127.0.0.1:0}\n"},
		{"push output", `output "o"`, "inputs:\n  - {name: s, type: syslog, listen: tcp://127.0.0.1:0}\noutputs:\n  - {name: o, type: zmq, socket: push, bind: tcp://127.0.0.1:%d}\n"},
	} {
		t.Run(c.kind, func(t *testing.T) {
			port, _ := occupy(t)
			r := newRelay(t, fmt.Sprintf(c.yaml+"http: {listen: ''}\n", port))
			err := r.Start()
			if err == nil {
				t.Fatal("Start succeeded on a port another listener holds")
			}
			msg := err.Error()
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("Start = %v, want EADDRINUSE in the chain", err)
			}
			if !strings.HasPrefix(msg, c.part+": ") || strings.Contains(msg, c.part+": "+c.part) {
				t.Errorf("Start = %q: want it to begin with %s, once", msg, c.part)
			}
			if !strings.Contains(msg, "give "+c.part+" a free port") {
				t.Errorf("Start = %q: does not say what to change", msg)
			}
		})
	}
}
