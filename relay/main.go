// Command relay receives syslog from rsyslog, derives each event's stream
// type and routes it to ZeroMQ PUSH (worker pools) and PUB (taps) outputs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/rsyslog-zmq/relay/internal/config"
	"github.com/rsyslog-zmq/relay/internal/relay"
)

// version is set at build time (-ldflags -X main.version=…).
var version = "dev"

const usage = `Usage:
  relay [-c FILE]          run (no -c: the embedded default config)
  relay check -c FILE      validate FILE, report every problem, exit 0 if valid
  relay default-config     print the embedded default config (a commented sample)
  relay spool verify DIR   check a spool directory offline (see relay spool --help)
  relay --version

With no -c the relay listens for syslog on tcp:// and udp://127.0.0.1:10514,
publishes every event on tcp://127.0.0.1:5556 (PUB, topic = stream) and serves
/healthz, /metrics, /v1/tap and a live web view on http://127.0.0.1:8080.

Signals: SIGHUP reloads the config (an invalid one is refused and the old one
keeps running); SIGTERM or SIGINT stops accepting, drains in-flight events to
the outputs within drain_timeout, and exits 0.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or invalid config.

Garbage collection runs with GOGC=400 unless the GOGC environment variable
is set: the relay's live heap is small (queues of events), so the default
of 100 spends much of the CPU on collections.

Flags:
`

// defaultGOGC trades a few MB of heap for far less GC work: at 1M msg/s
// the relay allocates ~500 MB/s (events and their bytes) over a live heap
// of a few MB, so GOGC=100 collects hundreds of times a second.
// bench/relay.sh: roughly 1.5–2x the throughput of GOGC=100.
const defaultGOGC = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "spool" {
		return spoolCmd(args[1:], stdout, stderr)
	}
	cmd := ""
	if len(args) > 0 && (args[0] == "check" || args[0] == "default-config") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "config `FILE` (YAML); default: the embedded config")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "relay: unexpected argument %q; see relay --help\n", fs.Arg(0))
		return 2
	}
	switch {
	case *showVersion:
		fmt.Fprintln(stdout, "relay", version)
		return 0
	case cmd == "default-config":
		stdout.Write(config.DefaultYAML)
		return 0
	}
	cfg, err := load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if cmd == "check" {
		fmt.Fprintf(stdout, "%s: ok\n%s", nameOf(*file), cfg.Summary())
		return 0
	}
	log := slog.New(cfg.Log.Handler(stderr))
	r, err := relay.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if err := r.Start(); err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	for sig := range sigs {
		if sig != syscall.SIGHUP {
			log.Info("shutting down", "signal", sig.String())
			if err := r.Shutdown(context.Background()); err != nil {
				log.Warn("drain incomplete", "err", err)
			}
			return 0
		}
		if *file == "" {
			log.Warn("SIGHUP: running the embedded default config; nothing to reload")
			continue
		}
		next, err := config.Load(*file)
		if err != nil {
			log.Error("reload refused; the old config keeps running", "err", err)
			r.ReloadRefused()
			continue
		}
		if err := r.Reload(next); err != nil {
			log.Error("reload failed", "err", err)
		}
	}
	return 0
}

func load(file string) (*config.Config, error) {
	if file == "" {
		return config.Default(), nil
	}
	return config.Load(file)
}

func nameOf(file string) string {
	if file == "" {
		return "embedded default config"
	}
	return file
}
