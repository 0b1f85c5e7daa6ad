package main

import (
	"fmt"
	"io"

	"github.com/rsyslog-zmq/relay/internal/spool"
)

const spoolUsage = `Usage:
  relay spool verify DIR   check a spool directory offline: every segment header,
                           record length and CRC, torn tails, corrupt records, the
                           checkpoint; changes nothing. Exit 0 if clean, 1 if the
                           next start would truncate, skip or quarantine something.
`

// spoolCmd runs `relay spool …`.
func spoolCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 || args[0] != "verify" {
		fmt.Fprint(stderr, spoolUsage)
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return 0
		}
		return 2
	}
	rep, err := spool.Verify(args[1])
	if err != nil {
		fmt.Fprintln(stderr, "relay spool verify:", err)
		return 2
	}
	rep.Write(stdout)
	if len(rep.Problems) > 0 {
		return 1
	}
	return 0
}
