package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"testing"

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
			stopped := false
			stop := func() {
				if !stopped {
					stopped = true
					in.Close()
					_ = cmd.Wait()
				}
			}
			defer stop()
			out := bufio.NewReader(outp)
			if _, err := out.ReadString('\n'); err != nil {
				b.Fatal(err)
			}
			line := []byte(fmt.Sprintf("impression <14>1 2026-01-01T00:00:00Z host impression - - - %s\n", "msgnum:00000001"))
			b.ResetTimer()
			for range b.N {
				if _, err := in.Write(line); err != nil {
					b.Fatal(err)
				}
				if st, err := out.ReadString('\n'); err != nil || st != "OK\n" {
					b.Fatalf("%q %v", st, err)
				}
			}
			b.StopTimer()
			// The program's own CPU per message (user + system, including
			// its start-up, negligible at these counts): what it adds to
			// the round trip beyond waiting.
			stop()
			if ps := cmd.ProcessState; ps != nil {
				b.ReportMetric(float64((ps.UserTime()+ps.SystemTime()).Nanoseconds())/float64(b.N), "prog-cpu-ns/op")
			}
		})
	}
}
