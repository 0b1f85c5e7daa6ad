package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/testpeer"
)

// benchMode is one omprog configuration of the benchmark.
type benchMode struct {
	name        string
	confirm, tx bool
}

var benchModes = []benchMode{
	{"confirmMessages", true, false},
	{"transactions", true, true},
	{"fire-and-forget", false, false},
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkOmprog measures rsyslog omprog → omzmq-bridge → libzmq PULL
// against rsyslog omprog → okprog (answers OK at once), with the same
// messages, interleaved in one run, for each omprog mode, and prints the
// rates side by side with their ratio. BRIDGE_BENCH_N (100000) messages
// per run, BRIDGE_BENCH_ROUNDS (3) runs per target; the best run counts.
// Extra bridge arguments (e.g. "--confirm-when queued") in
// BRIDGE_BENCH_ARGS add a third column.
func BenchmarkOmprog(b *testing.B) {
	n := envInt("BRIDGE_BENCH_N", 100_000)
	rounds := envInt("BRIDGE_BENCH_ROUNDS", 3)
	extra := strings.Fields(os.Getenv("BRIDGE_BENCH_ARGS"))
	okprog := filepath.Join(b.TempDir(), "okprog")
	if out, err := exec.Command("go", "build", "-o", okprog, "../bench/bridge/okprog").CombinedOutput(); err != nil {
		b.Fatalf("build okprog: %v\n%s", err, out)
	}
	type result struct{ base, bridge, extra []float64 }
	results := map[string]*result{}
	for range b.N {
		for _, m := range benchModes {
			res := &result{}
			results[m.name] = res
			for range rounds {
				res.base = append(res.base, benchRun(b, m, n, okprog, nil, true))
				res.bridge = append(res.bridge, benchRun(b, m, n, bridgeBin, nil, false))
				if len(extra) > 0 {
					res.extra = append(res.extra, benchRun(b, m, n, bridgeBin, extra, false))
				}
			}
		}
	}
	fmt.Printf("\nrsyslog omprog, %d messages per run, best of %d (msg/s):\n", n, rounds)
	head := fmt.Sprintf("%-17s %12s %12s %7s", "mode", "okprog", "bridge", "ratio")
	if len(extra) > 0 {
		head += fmt.Sprintf(" %12s %7s", "bridge+args", "ratio")
	}
	fmt.Println(head)
	for _, m := range benchModes {
		r := results[m.name]
		base, br := slices.Max(r.base), slices.Max(r.bridge)
		line := fmt.Sprintf("%-17s %12.0f %12.0f %6.0f%%", m.name, base, br, 100*br/base)
		if len(extra) > 0 {
			ex := slices.Max(r.extra)
			line += fmt.Sprintf(" %12.0f %6.0f%%", ex, 100*ex/base)
		}
		fmt.Println(line)
		b.ReportMetric(br/base, m.name+"-ratio")
	}
	if len(extra) > 0 {
		fmt.Printf("bridge+args: %s\n", strings.Join(extra, " "))
	}
}

// benchRun runs rsyslogd with one omprog action and returns messages per
// second from the first message sent to the last one processed.
func benchRun(b *testing.B, m benchMode, n int, binary string, args []string, baseline bool) float64 {
	dir := b.TempDir()
	onoff := map[bool]string{true: "on", false: "off"}
	done := filepath.Join(dir, "done")
	var pull *testpeer.Pull
	cmdline := binary
	if baseline {
		cmdline += fmt.Sprintf(" -n %d -done %s -confirm=%v", n, done, m.confirm)
	} else {
		pull = testpeer.StartCountingPull(b, "tcp://127.0.0.1:0")
		defer pull.Stop()
		cmdline += " --relay " + pull.Endpoint + " --topic-from-field " + strings.Join(args, " ")
	}
	conf := fmt.Sprintf(`module(load="omprog")
template(name="bridge-line" type="string"
         string="%%programname%% <%%PRI%%>1 %%TIMESTAMP:::date-rfc3339%% %%HOSTNAME%% %%APP-NAME%% %%PROCID%% %%MSGID%% %%STRUCTURED-DATA%% %%msg%%\n")
if $msg contains "msgnum:" then {
  action(type="omprog" binary=%q template="bridge-line"
         confirmMessages=%q useTransactions=%q
         output=%q
         queue.type="LinkedList" queue.size="%d" queue.dequeueBatchSize="1024"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}
`, cmdline, onoff[m.confirm], onoff[m.tx], filepath.Join(dir, "prog.log"), 2*n)
	r := testpeer.StartRsyslogd(b, dir, conf)
	defer r.Stop()
	start := time.Now()
	r.SendNumbered(b, "impression", 0, n)
	testpeer.Eventually(b, 5*time.Minute, func() string {
		log, _ := os.ReadFile(filepath.Join(dir, "prog.log"))
		return fmt.Sprintf("%s %s: not all %d processed\n%s", m.name, filepath.Base(binary), n, log)
	}, func() bool {
		if baseline {
			_, err := os.Stat(done)
			return err == nil
		}
		return pull.Count() >= n
	})
	return float64(n) / time.Since(start).Seconds()
}
