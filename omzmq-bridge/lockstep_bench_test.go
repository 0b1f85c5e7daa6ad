package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rsyslog-zmq/relay/internal/zmq"
)

// BenchmarkLockstep drives the bridge binary the way omprog does (one line,
// then wait for its status) into an in-process PULL, without rsyslog, to
// isolate the bridge's per-message cost by --confirm-when; okprog (answers
// at once, writes nothing) is the pipe round trip alone.
func BenchmarkLockstep(b *testing.B) {
	for _, when := range []string{"okprog", "queued", "written"} {
		b.Run("confirm-when="+when, func(b *testing.B) {
			pull := zmq.NewPull(zmq.Options{})
			defer pull.Close()
			if err := pull.Listen("tcp://127.0.0.1:0"); err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() {
				for {
					if _, err := pull.Recv(ctx); err != nil {
						return
					}
				}
			}()
			cmd := exec.Command(bridgeBin, "--relay", "tcp://"+pull.Addrs()[0].String(), "--confirm", "on", "--confirm-when", when)
			if when == "okprog" {
				cmd = exec.Command(buildOkprog(b))
			}
			in, _ := cmd.StdinPipe()
			outp, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { in.Close(); _ = cmd.Wait() }()
			out := bufio.NewReader(outp)
			if _, err := out.ReadString('\n'); err != nil {
				b.Fatal(err)
			}
			line := []byte(fmt.Sprintf("impression <14>1 2026-01-01T00:00:00Z host impression - - - %s\n", "msgnum:00000001"))
			roundTrip := func() {
				if _, err := in.Write(line); err != nil {
					b.Fatal(err)
				}
				if st, err := out.ReadString('\n'); err != nil || st != "OK\n" {
					b.Fatalf("%q %v", st, err)
				}
			}
			// Untimed warm-up: whichever program ran first measured up to
			// twice as slow (and busy) as in later runs.
			for range 20_000 {
				roundTrip()
			}
			cpu0 := procCPU(b, cmd.Process.Pid)
			b.ResetTimer()
			for range b.N {
				roundTrip()
			}
			b.StopTimer()
			// The program's own CPU per message (user + system): what it
			// adds to the round trip beyond waiting.
			b.ReportMetric(float64((procCPU(b, cmd.Process.Pid)-cpu0).Nanoseconds())/float64(b.N), "prog-cpu-ns/op")
		})
	}
}

// procCPU is a process's user + system CPU time so far, from
// /proc/PID/stat (clock ticks: 10 ms resolution, fine over seconds).
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the line.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parse /proc/%d/stat: %q", pid, raw)
	}
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
