package omprog

import (
	"fmt"
	"os"
	"syscall"
)

// DetectConfirm tells whether omprog runs with confirmMessages="on". With
// it, stdout is a pipe of its own that omprog reads; without it, omprog
// points stdout and stderr at the same place (the output= file or
// /dev/null), so answering would only pollute the log.
func DetectConfirm(stdout, stderr *os.File) (bool, error) {
	var o, e syscall.Stat_t
	if err := syscall.Fstat(int(stdout.Fd()), &o); err != nil {
		return false, fmt.Errorf("stat stdout: %w", err)
	}
	if err := syscall.Fstat(int(stderr.Fd()), &e); err != nil {
		return false, fmt.Errorf("stat stderr: %w", err)
	}
	return o.Dev != e.Dev || o.Ino != e.Ino, nil
}
