package config

import (
	"strings"
	"testing"
)

// TestSpoolTypeMemoryExplained: a spool section asking for a memory spool
// is refused with the reason (an output without a spool is one already),
// not only as an unknown key.
func TestSpoolTypeMemoryExplained(t *testing.T) {
	_, err := Parse([]byte(`
inputs:
  - {name: in, type: syslog, listen: "tcp://127.0.0.1:0"}
outputs:
  - name: workers
    socket: push
    bind: tcp://127.0.0.1:5557
    spool: {type: memory}
`), "relay.yaml")
	if err == nil {
		t.Fatal("a memory spool was accepted")
	}
	for _, want := range []string{"relay.yaml:8:13: outputs[0].spool.type:", "there is no memory spool", "without a spool already holds"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
