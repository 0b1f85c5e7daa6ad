//go:build !unix

package relay

// raiseFDLimit is a no-op where there is no RLIMIT_NOFILE.
func raiseFDLimit() (uint64, bool, error) { return 0, false, nil }
