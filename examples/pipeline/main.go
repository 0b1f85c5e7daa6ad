// Command pipeline is the seed's batch-acknowledged ventilator → workers →
// sink pipeline over TCP loopback, on this project's ZeroMQ sockets
// (internal/zmq) and its acknowledged sender (internal/ackpipe).
//
//	pipeline [run] [-batch 1000000,1000,100,50,10] [-count 1000000] [-workers 4] [-size 32]
//	pipeline compare [-svg chart.svg] < results.tsv
//	pipeline worker -in tcp://… -out tcp://…   (started by run -procs)
//	pipeline relay -relay bin/relay [-batch 1000,100,50,10] [-window 16] [-plain] [-rsyslogd /usr/sbin/rsyslogd] [-py]
//	pipeline ackworker -in tcp://relay:5557 (-ack tcp://relay:5558 | -out tcp://sink:5560) [-print] [-report FILE]
//	pipeline acksink -in tcp://*:5560 -ack tcp://relay:5558 [-print]
//
// relay runs the pipeline with the relay as the ventilator: syslog →
// relay (an acknowledged PUSH output) → workers → sink, and the sink's
// acks back to the relay. ackworker and acksink are the workers and sink
// for such an output (Go twins of ackworker.py).
//
// run prints msg/s per batch size and checks that the sink received every
// message exactly once; its exit status is 1 when one did not. compare
// reads the -tsv lines of this program and of pipeline.py and prints them
// side by side with the ratio, optionally as an SVG chart.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "run":
		err = runCmd(args, os.Stdout)
	case "compare":
		err = compareCmd(args, os.Stdin, os.Stdout)
	case "relay":
		err = relayCmd(args, os.Stdout)
	case "ackworker", "acksink":
		fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
		in := fs.String("in", "", "endpoint events come from (PULL); tcp://*:port binds, anything else connects")
		out := fs.String("out", "", "ackworker: pass events on to this endpoint (PUSH)")
		ack := fs.String("ack", "", "send acks of complete batches here: the relay's ack endpoint")
		id := fs.String("id", "", "ackworker: append this frame to what is passed on")
		print := fs.Bool("print", false, "print each event, one per line")
		report := fs.String("report", "", "ackworker with -ack: append to this file what each round took (\"holding N SEQ…\") before passing it on, and \"acking\" before acking it (for tests)")
		if err = fs.Parse(args); err == nil {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cmd == "acksink" {
				if *ack == "" {
					err = fmt.Errorf("acksink: -ack is required")
				} else {
					err = ackSinkMain(ctx, *in, *ack, *print, os.Stdout)
				}
			} else {
				var rep io.Writer
				if *report != "" {
					f, ferr := os.OpenFile(*report, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
					if ferr != nil {
						err = fmt.Errorf("ackworker: -report: %w", ferr)
						break
					}
					defer f.Close()
					rep = f
				}
				err = ackWorkerMain(ctx, *in, *out, *ack, *id, *print, os.Stdout, rep)
			}
		}
	case "worker":
		fs := flag.NewFlagSet("worker", flag.ContinueOnError)
		in := fs.String("in", "", "endpoint to PULL tasks from")
		out := fs.String("out", "", "endpoint to PUSH results to")
		if err = fs.Parse(args); err == nil {
			err = workerMain(*in, *out)
		}
	default:
		err = fmt.Errorf("unknown command %q: want run, compare, relay, ackworker or acksink", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(1)
	}
}

func runCmd(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	batches := fs.String("batch", "1000000,1000,100,50,10", "comma-separated batch sizes (messages per acknowledgement)")
	p := Params{}
	fs.IntVar(&p.Count, "count", 1_000_000, "messages per run")
	fs.IntVar(&p.Workers, "workers", 4, "workers")
	fs.IntVar(&p.Size, "size", 32, "payload bytes per message (at least 8)")
	fs.IntVar(&p.Window, "window", 1, "batches in flight (1 is the seed's pattern)")
	fs.DurationVar(&p.ResendAfter, "resend", 0, "resend a batch unacknowledged this long (0: never; a loss stalls the run)")
	fs.BoolVar(&p.Procs, "procs", false, "run each worker as a child process, like pipeline.py (default: goroutines)")
	fs.IntVar(&p.KillAfter, "kill-after", 0, "kill worker 0 once the sink has this many messages (0: never)")
	fs.DurationVar(&p.Stall, "stall", 5*time.Second, "end a run that made no progress for this long")
	tsv := fs.Bool("tsv", false, "machine-readable lines for bench/pipeline.sh and compare")
	label := fs.String("label", "", "implementation name in -tsv lines (default go, or go-procs with -procs)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the runs to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	var sizes []int
	for _, s := range strings.Split(*batches, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-batch %q: want positive integers separated by commas", *batches)
		}
		sizes = append(sizes, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	if !*tsv {
		fmt.Fprintf(w, "%10s %10s %10s %12s  %s\n", "batch", "messages", "seconds", "msg/s", "exactly-once")
	}
	failed := false
	for _, b := range sizes {
		p.Batch = b
		r, err := Run(ctx, p)
		if err != nil {
			return err
		}
		ok := r.ExactlyOnce()
		failed = failed || !ok
		if *tsv {
			impl := *label
			switch {
			case impl != "":
			case p.Procs:
				impl = "go-procs"
			default:
				impl = "go"
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%.6f\t%.0f\t%s\n", impl, b, p.Count, r.Seconds, r.Rate(), yes(ok))
			continue
		}
		verdict := yes(ok)
		if !ok {
			verdict = fmt.Sprintf("NO (missing %d, repeated %d)", r.Missing, r.Repeats)
		}
		fmt.Fprintf(w, "%10d %10d %10.3f %12.0f  %s\n", b, p.Count, r.Seconds, r.Rate(), verdict)
		if r.Killed {
			fmt.Fprintf(w, "%10s worker 0 killed after %d messages: %d lost in flight (at risk: window×batch = %d, most seen %d); %d recovered by %d batch resends (%d copies dropped), %d never arrived\n",
				"", p.KillAfter, r.Lost, p.Window*b, r.MaxAtRisk, r.Recovered, r.Resends, r.Copies, r.Missing)
		}
	}
	if failed {
		return fmt.Errorf("a run did not deliver every message exactly once")
	}
	return nil
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// perEvent is the CPU time of a run per event received, in nanoseconds.
func perEvent(r RelayResult) float64 {
	if r.Received == 0 {
		return 0
	}
	return float64(r.CPU) / float64(r.Received)
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func relayCmd(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	batches := fs.String("batch", "1000,100,50,10", "comma-separated batch sizes (events per acknowledgement)")
	p := RelayParams{}
	fs.StringVar(&p.Relay, "relay", "bin/relay", "the relay binary (make build)")
	fs.IntVar(&p.Count, "count", 200_000, "events per run")
	fs.IntVar(&p.Workers, "workers", 4, "workers")
	fs.IntVar(&p.Size, "size", 64, "bytes per syslog message (at least 48)")
	fs.IntVar(&p.Window, "window", 0, "batches in flight (ack.window; 1 is the seed's pattern; 0: the relay's default, 16,000 events' worth, at least 16)")
	fs.DurationVar(&p.Timeout, "timeout", 5*time.Second, "ack.timeout: resend a batch unacknowledged this long")
	fs.BoolVar(&p.Plain, "plain", false, "a plain PUSH output (no acks): the baseline")
	fs.StringVar(&p.Rsyslogd, "rsyslogd", "", "send the events through this rsyslogd (imtcp → omfwd → relay), as in production")
	py := fs.Bool("py", false, "workers are ackworker.py processes (/usr/bin/python3, pyzmq)")
	tsv := fs.Bool("tsv", false, "machine-readable lines for bench/ackpush.sh")
	label := fs.String("label", "", "implementation name in -tsv lines (default relay-ack-wN or relay-push)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the workers and the sink (this process) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *py {
		p.Python = "/usr/bin/python3"
		self, _ := os.Executable()
		p.Script = "examples/pipeline/ackworker.py"
		if _, err := os.Stat(p.Script); err != nil {
			p.Script = filepath.Join(filepath.Dir(self), "ackworker.py")
		}
		if abs, err := filepath.Abs(p.Script); err == nil {
			p.Script = abs
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	impl := *label
	if impl == "" {
		impl = "relay-ack"
		if p.Window > 0 {
			impl = fmt.Sprintf("relay-ack-w%d", p.Window)
		}
		if p.Plain {
			impl = "relay-push"
		}
	}
	if !*tsv {
		fmt.Fprintf(w, "%-16s %8s %10s %10s %12s %6s  %-12s %8s %8s %8s %7s %7s\n", "output", "batch", "events", "seconds", "events/s", "dups", "exactly-once", "ack-ms", "wait-ms", "full-ms", "window", "cpu-ns")
	}
	failed := false
	for _, s := range strings.Split(*batches, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || b <= 0 {
			return fmt.Errorf("-batch %q: want positive integers separated by commas", *batches)
		}
		p.Batch = b
		r, err := RunRelay(ctx, p)
		window := 0
		if !p.Plain {
			window = p.window()
		}
		if err != nil {
			return err
		}
		ok := !r.Stalled && r.Received == p.Count && r.Duplicates == 0
		failed = failed || r.Stalled || r.Received != p.Count
		if r.Diag != "" {
			fmt.Fprintf(os.Stderr, "%s batch %d: %s\n", impl, b, r.Diag)
		}
		if *tsv {
			fmt.Fprintf(w, "%s\t%d\t%d\t%.6f\t%.0f\t%s\t%.3f\t%.1f\t%.1f\t%d\t%.0f\n", impl, b, p.Count, r.Seconds, r.Rate(), yes(ok), ms(r.AckLatency), ms(r.Blocked), ms(r.WindowWait), window, perEvent(r))
			continue
		}
		fmt.Fprintf(w, "%-16s %8d %10d %10.3f %12.0f %6d  %-12s %8.3f %8.1f %8.1f %7d %7.0f\n", impl, b, r.Received, r.Seconds, r.Rate(), r.Duplicates, yes(ok), ms(r.AckLatency), ms(r.Blocked), ms(r.WindowWait), window, perEvent(r))
	}
	if failed {
		return fmt.Errorf("a run did not deliver every event")
	}
	return nil
}
