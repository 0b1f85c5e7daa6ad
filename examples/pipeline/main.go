// Command pipeline is the seed's batch-acknowledged ventilator → workers →
// sink pipeline over TCP loopback, on this project's ZeroMQ sockets
// (internal/zmq) and its acknowledged sender (internal/ackpipe).
//
//	pipeline [run] [-batch 1000000,1000,100,50,10] [-count 1000000] [-workers 4] [-size 32]
//	pipeline compare [-svg chart.svg] < results.tsv
//	pipeline worker -in tcp://… -out tcp://…   (started by run -procs)
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
	"runtime/pprof"
	"strconv"
	"strings"
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
	case "worker":
		fs := flag.NewFlagSet("worker", flag.ContinueOnError)
		in := fs.String("in", "", "endpoint to PULL tasks from")
		out := fs.String("out", "", "endpoint to PUSH results to")
		if err = fs.Parse(args); err == nil {
			err = workerMain(*in, *out)
		}
	default:
		err = fmt.Errorf("unknown command %q: want run or compare", cmd)
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
