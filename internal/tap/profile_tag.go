//go:build tapprofile

package tap

// A test-only CPU profiler for the tap benchmark (BenchmarkRelayTaps with
// TAP_BENCH_PROFILE=DIR): a relay built with -tags tapprofile and run with
// TAP_CPUPROFILE=PREFIX starts a CPU profile on SIGUSR1 and writes it to
// PREFIX.N.pprof on SIGUSR2 (renamed into place once complete, so a reader
// never sees half a file), so the benchmark profiles exactly its measured
// phases. Release builds have none of this.

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func init() {
	prefix := os.Getenv("TAP_CPUPROFILE")
	if prefix == "" {
		return
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		var f *os.File
		var name string
		n := 0
		for s := range sigs {
			switch {
			case s == syscall.SIGUSR1 && f == nil:
				var err error
				name = fmt.Sprintf("%s.%d.pprof", prefix, n)
				if f, err = os.Create(name + ".tmp"); err != nil {
					fmt.Fprintln(os.Stderr, "tapprofile:", err)
					continue
				}
				n++
				if err := pprof.StartCPUProfile(f); err != nil {
					fmt.Fprintln(os.Stderr, "tapprofile:", err)
					f.Close()
					f = nil
				}
			case s == syscall.SIGUSR2 && f != nil:
				pprof.StopCPUProfile()
				f.Close()
				f = nil
				if err := os.Rename(name+".tmp", name); err != nil {
					fmt.Fprintln(os.Stderr, "tapprofile:", err)
				}
			}
		}
	}()
}
