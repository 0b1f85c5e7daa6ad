package relay

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/output"
	"github.com/rsyslog-zmq/relay/internal/spool"
)

// spooledStub is a stub output whose spool holds events.
type spooledStub struct {
	*stubOutput
	records int64
}

func (o spooledStub) SpoolStats() spool.Stats { return spool.Stats{Records: o.records} }

// TestRefusedReloadKeepsSecrets: a reload refused (here: it would strand a
// non-empty spool) keeps everything as it was, the secrets included; it
// used to swap in the re-read token first, so a reload reported as failed
// had already changed who may tap.
func TestRefusedReloadKeepsSecrets(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "tap.token")
	os.WriteFile(tok, []byte("old-token\n"), 0o600)
	conf := func(spoolSection string) string {
		return fmt.Sprintf(`
inputs:
  - name: syslog
    type: syslog
    listen: tcp://127.0.0.1:0
outputs:
  - name: a
    type: zmq
    socket: push
    bind: tcp://127.0.0.1:0
%s
http:
  listen: ""
  tap_token_file: %s
`, spoolSection, tok)
	}
	spooled := fmt.Sprintf("    spool: {dir: %s}", filepath.Join(dir, "spool"))
	r := newRelay(t, conf(spooled))
	r.newOutput = func(c config.Output, _ *slog.Logger) (output.Output, error) {
		return spooledStub{&stubOutput{name: c.Name}, 5}, nil
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	refused := func(token string) bool {
		w := httptest.NewRecorder()
		r.hub.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/v1/tap?token="+token, nil))
		return w.Code == http.StatusUnauthorized
	}
	if refused("old-token") || !refused("new-token") {
		t.Fatal("the tap does not take the token file's token")
	}
	os.WriteFile(tok, []byte("new-token\n"), 0o600)
	if err := r.Reload(parseConfig(t, conf(""))); err == nil {
		t.Fatal("a reload dropping a non-empty spool was applied")
	}
	if refused("old-token") || !refused("new-token") {
		t.Fatal("the refused reload changed the tap token")
	}
	if err := r.Reload(parseConfig(t, conf(spooled))); err != nil {
		t.Fatal(err)
	}
	if !refused("old-token") || refused("new-token") {
		t.Fatal("the applied reload did not change the tap token")
	}
}
