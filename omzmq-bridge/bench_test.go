package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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
// BRIDGE_BENCH_ARGS add a third column. BRIDGE_BENCH_MODES (e.g.
// "confirmMessages,transactions") runs only those modes.
func BenchmarkOmprog(b *testing.B) {
	modes := benchModes
	if only := os.Getenv("BRIDGE_BENCH_MODES"); only != "" {
		modes = slices.DeleteFunc(slices.Clone(modes), func(m benchMode) bool {
			return !slices.Contains(strings.Split(only, ","), m.name)
		})
	}
	n := envInt("BRIDGE_BENCH_N", 100_000)
	rounds := envInt("BRIDGE_BENCH_ROUNDS", 3)
	extra := strings.Fields(os.Getenv("BRIDGE_BENCH_ARGS"))
	okprog := buildOkprog(b)
	consumer := os.Getenv("BRIDGE_BENCH_CONSUMER")
	switch consumer {
	case "", "c":
		consumer = buildPull(b)
	case "pyzmq":
		consumer = ""
	default:
		b.Fatalf("BRIDGE_BENCH_CONSUMER=%q: want c or pyzmq", consumer)
	}
	type result struct{ base, bridge, extra []float64 }
	results := map[string]*result{}
	for range b.N {
		for _, m := range modes {
			res := &result{}
			results[m.name] = res
			for range rounds {
				res.base = append(res.base, benchRun(b, m, n, okprog, nil, baselineRun))
				res.bridge = append(res.bridge, benchRun(b, m, n, bridgeBin, nil, consumer))
				if len(extra) > 0 {
					res.extra = append(res.extra, benchRun(b, m, n, bridgeBin, extra, consumer))
				}
			}
		}
	}
	cname := "libzmq C PULL (bench/bridge/pull.c)"
	if consumer == "" {
		cname = "pyzmq PULL"
	}
	fmt.Printf("\nrsyslog omprog, %d messages per run, best of %d (msg/s), consumer %s:\n", n, rounds, cname)
	head := fmt.Sprintf("%-17s %12s %12s %7s", "mode", "okprog", "bridge", "ratio")
	if len(extra) > 0 {
		head += fmt.Sprintf(" %12s %7s", "bridge+args", "ratio")
	}
	fmt.Println(head)
	for _, m := range modes {
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

// baselineRun as benchRun's consumer runs okprog instead of the bridge.
const baselineRun = "-"

// benchRun runs rsyslogd with one omprog action and returns messages per
// second from the first message sent to the last one processed. consumer
// is the C PULL's binary, "" for pyzmq, or baselineRun.
func benchRun(b *testing.B, m benchMode, n int, binary string, args []string, consumer string) float64 {
	dir := b.TempDir()
	onoff := map[bool]string{true: "on", false: "off"}
	done := filepath.Join(dir, "done")
	baseline := consumer == baselineRun
	var count func() int
	cmdline := binary
	switch {
	case baseline:
		cmdline += fmt.Sprintf(" -n %d -done %s -confirm=%v", n, done, m.confirm)
	case consumer == "":
		pull := testpeer.StartCountingPull(b, "tcp://127.0.0.1:0")
		defer pull.Stop()
		count = pull.Count
		cmdline += " --relay " + pull.Endpoint + " --topic-from-field " + strings.Join(args, " ")
	default:
		pull := startCPull(b, consumer, n)
		defer pull.stop()
		count = pull.count
		cmdline += " --relay " + pull.endpoint + " --topic-from-field " + strings.Join(args, " ")
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
		return count() >= n
	})
	return float64(n) / time.Since(start).Seconds()
}

// buildPull compiles bench/bridge/pull.c against Debian's libzmq5 (no
// headers needed: pull.c declares what it uses).
func buildPull(b *testing.B) string {
	const libzmq = "/usr/lib/x86_64-linux-gnu/libzmq.so.5"
	if _, err := os.Stat(libzmq); err != nil {
		b.Fatalf("the C consumer needs %s (apt-get install libzmq5), or set BRIDGE_BENCH_CONSUMER=pyzmq", libzmq)
	}
	bin := filepath.Join(b.TempDir(), "pull")
	if out, err := exec.Command("cc", "-O2", "-o", bin, "../bench/bridge/pull.c", libzmq).CombinedOutput(); err != nil {
		b.Fatalf("build bench/bridge/pull.c (needs a C compiler; or BRIDGE_BENCH_CONSUMER=pyzmq): %v\n%s", err, out)
	}
	return bin
}

// cPull is a running bench/bridge/pull.c.
type cPull struct {
	cmd      *exec.Cmd
	endpoint string
	n        atomic.Int64
	exited   chan struct{}
}

func startCPull(b *testing.B, bin string, n int) *cPull {
	b.Helper()
	p := &cPull{cmd: exec.Command(bin, "tcp://127.0.0.1:*", strconv.Itoa(n)), exited: make(chan struct{})}
	p.cmd.Stderr = os.Stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", bin, err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "READY ") {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		b.Fatalf("%s did not start: %q", bin, sc.Text())
	}
	p.endpoint = strings.TrimPrefix(sc.Text(), "READY ")
	go func() {
		defer close(p.exited)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 && (f[0] == "C" || f[0] == "DONE") {
				k, _ := strconv.Atoi(f[1])
				p.n.Store(int64(k))
			}
		}
		_ = p.cmd.Wait()
	}()
	return p
}

func (p *cPull) count() int { return int(p.n.Load()) }

func (p *cPull) stop() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// buildOkprog builds the baseline bench/bridge/okprog.
func buildOkprog(b *testing.B) string {
	okprog := filepath.Join(b.TempDir(), "okprog")
	if out, err := exec.Command("go", "build", "-o", okprog, "../bench/bridge/okprog").CombinedOutput(); err != nil {
		b.Fatalf("build okprog: %v\n%s", err, out)
	}
	return okprog
}
