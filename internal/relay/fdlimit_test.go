package relay

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/config"
)

// TestFDBudgetCountsEveryStreamInput: RELP and link inputs hold
// connections as syslog inputs do, so the descriptor budget counts their
// max_connections too (it counted syslog inputs only, and warned about
// an over-committed limit too late or never).
func TestFDBudgetCountsEveryStreamInput(t *testing.T) {
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
inputs:
  - {name: s, type: syslog, listen: "tcp://127.0.0.1:0", max_connections: 100}
  - {name: r, type: relp, listen: "tcp://127.0.0.1:0", max_connections: 200}
  - {name: l, type: link, bind: ["tcp://127.0.0.1:0"], state_dir: %s, max_connections: 300}
outputs: [{name: o, socket: pub, bind: "tcp://127.0.0.1:0"}]
http: {listen: ""}
`, t.TempDir())), "x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	r := &Relay{log: slog.New(slog.NewTextHandler(&buf, nil))}
	r.fdBudget(cfg)
	if !strings.Contains(buf.String(), "stream_max_connections=600") {
		t.Errorf("the budget does not count every stream input's max_connections (100+200+300):\n%s", buf.String())
	}
}
