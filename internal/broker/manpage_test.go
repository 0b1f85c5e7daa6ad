package broker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// manExample returns the commented example that starts with "- name: NAME"
// in relay.yaml(5), uncommented and unescaped.
func manExample(t *testing.T, page, name string) string {
	t.Helper()
	var out []string
	in := false
	for _, l := range strings.Split(page, "\n") {
		l = strings.ReplaceAll(l, `\-`, "-")
		switch {
		case strings.TrimSpace(l) == "# - name: "+name:
			in = true
		case in && !strings.HasPrefix(l, "  #   "):
			in = false
		}
		if in {
			out = append(out, "  "+strings.TrimPrefix(l, "  # "))
		}
	}
	if len(out) == 0 {
		t.Fatalf("relay.yaml(5) has no example named %s", name)
	}
	return strings.Join(out, "\n") + "\n"
}

// TestManPageBrokerExamples: the broker examples of relay.yaml(5) (the
// jetstream input, the jetstream output with creds and create_stream, the
// kafka output with SASL SCRAM-SHA-512 and tls: {ca}) pass the checks of
// `relay check` as written, given the files they name (a real .creds
// file, a CA certificate).
func TestManPageBrokerExamples(t *testing.T) {
	b, err := os.ReadFile("../../docs/man/relay.yaml.5")
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	dir := t.TempDir()
	_, creds, _ := operatorSetup(t, t.TempDir())
	cb, _ := os.ReadFile(creds)
	os.WriteFile(filepath.Join(dir, "relay.creds"), cb, 0o600)
	ca := testpeer.NewCA(t, t.TempDir())
	pem, _ := os.ReadFile(ca.File)
	os.WriteFile(filepath.Join(dir, "kafka-ca.pem"), pem, 0o600)

	yaml := "inputs:\n" + manExample(t, page, "from-nats") + "outputs:\n" + manExample(t, page, "to-nats") + manExample(t, page, "to-kafka")
	yaml = strings.ReplaceAll(yaml, "/var/lib/relay", dir)
	for _, want := range []string{"creds: relay.creds", "SCRAM-SHA-512", "tls: {ca: kafka-ca.pem}", "create_stream:"} {
		if !strings.Contains(yaml, want) {
			t.Fatalf("the examples lack %q:\n%s", want, yaml)
		}
	}
	file := filepath.Join(dir, "relay.yaml")
	os.WriteFile(file, []byte(yaml), 0o600)
	c, err := config.Load(file)
	if err != nil {
		t.Fatalf("relay check refuses the man page's broker examples: %v\n%s", err, yaml)
	}
	if len(c.Inputs) != 1 || len(c.Outputs) != 2 {
		t.Fatalf("%d inputs, %d outputs:\n%s", len(c.Inputs), len(c.Outputs), yaml)
	}
}
