// Command okprog is the omprog benchmark baseline: it answers OK to every
// line at once (OK first, as omprog's confirmMessages expects) and touches
// -done FILE once it has seen -n lines containing "msgnum:".
package main

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"runtime"
)

func main() {
	runtime.GOMAXPROCS(1) // as omzmq-bridge: one lock-step stream, one P
	n := flag.Int("n", 0, "touch -done after this many msgnum lines")
	done := flag.String("done", "", "file to create after -n messages")
	confirm := flag.Bool("confirm", true, "answer OK (omprog confirmMessages=on)")
	flag.Parse()
	in := bufio.NewReaderSize(os.Stdin, 64<<10)
	ok := []byte("OK\n")
	if *confirm {
		os.Stdout.Write(ok)
	}
	seen := 0
	for {
		line, err := in.ReadSlice('\n')
		if len(line) == 0 && err != nil {
			return
		}
		if *confirm {
			os.Stdout.Write(ok)
		}
		if bytes.Contains(line, []byte("msgnum:")) {
			seen++
			if seen == *n && *done != "" {
				os.WriteFile(*done, nil, 0o644)
			}
		}
	}
}
