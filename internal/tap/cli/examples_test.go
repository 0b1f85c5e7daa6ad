package cli

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// Both examples (Go and Python) count events and unique users per stream
// off a live relay; their numbers must match the generated truth.
func TestLiveExamples(t *testing.T) {
	r := startRelay(t, "")
	testpeer.NeedPyzmq(t) // the Python example
	goBin := filepath.Join(t.TempDir(), "consumer-go")
	if out, err := exec.Command("go", "build", "-o", goBin, "github.com/rsyslog-zmq/relay/examples/consumer-go").CombinedOutput(); err != nil {
		t.Fatalf("build consumer-go: %v\n%s", err, out)
	}
	const n = 20000
	pyScript, _ := filepath.Abs("../../../examples/consumer-py/consumer.py")
	procs := map[string]*tapProc{
		"go": startTap(t, goBin, "-source", r.pub, "-user", "sd:u@32473.id", "-n", strconv.Itoa(n), "-every", "1h"),
		"py": startTap(t, "/usr/bin/python3", pyScript, r.pub, "--user", "sd:u@32473.id", "-n", strconv.Itoa(n), "--every", "3600"),
	}
	eventually(t, 20*time.Second, "both examples subscribed", func() bool {
		return r.metric(`relay_output_subscribers{output="taps"}`) == 2
	})

	rng := rand.New(rand.NewPCG(3, 4))
	truth := map[string]map[string]bool{"click": {}, "view": {}}
	counts := map[string]int{}
	g := newGenerator(t, r.syslog)
	for i := 0; i < n; i += 1000 {
		batch := make([]genEvent, 0, 1000)
		for j := range 1000 {
			s := []string{"click", "view"}[rng.IntN(2)]
			u := strconv.Itoa(rng.IntN(8000))
			truth[s][u] = true
			counts[s]++
			batch = append(batch, genEvent{s, u, i + j})
		}
		g.send(batch, 0)
		time.Sleep(20 * time.Millisecond)
	}
	line := regexp.MustCompile(`^(\S+) events=(\d+) unique_users=(\d+)$`)
	for name, p := range procs {
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s example did not finish: %v", name, p.snapshot())
		}
		if code := p.exitCode(); code != 0 {
			t.Fatalf("%s example: exit %d: %s", name, code, p.stderr.String())
		}
		seen := 0
		for _, l := range p.snapshot() {
			m := line.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			seen++
			ev, _ := strconv.Atoi(m[2])
			est, _ := strconv.ParseFloat(m[3], 64)
			want := float64(len(truth[m[1]]))
			errPct := 100 * math.Abs(est-want) / want
			t.Logf("%s example: %s events=%d (truth %d) unique=%.0f (truth %.0f, error %.2f%%)", name, m[1], ev, counts[m[1]], est, want, errPct)
			if ev != counts[m[1]] || errPct > 2 {
				t.Errorf("%s example: %s", name, fmt.Sprint(l))
			}
		}
		if seen != 2 {
			t.Errorf("%s example printed %d stream lines: %q", name, seen, p.snapshot())
		}
	}
}
