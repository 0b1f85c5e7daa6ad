//go:build unix

package relay

import "syscall"

// raiseFDLimit sets the soft limit on open files to the hard limit (Go
// does so at start too, but says nothing) and returns the limit, and
// whether it was raised here.
func raiseFDLimit() (limit uint64, raised bool, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false, err
	}
	if rl.Cur < rl.Max {
		old := rl.Cur
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return old, false, err
		}
		raised = true
	}
	return uint64(rl.Cur), raised, nil
}
