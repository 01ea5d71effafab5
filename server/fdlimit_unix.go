//go:build unix

package server

import (
	"errors"
	"os"
	"syscall"
)

// connectionBudget returns how many connections may be open at once
// without running out of descriptors: the soft RLIMIT_NOFILE (which the Go
// runtime raises to the hard limit at start) less the descriptors open now
// and descriptorReserve; at least 1. It returns 0 (no bound) when the
// limit is unknown or unlimited.
func connectionBudget() int64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	soft := uint64(lim.Cur) // int64 on some systems; "infinity" is huge either way
	open := openDescriptors()
	if open < 0 || soft > 1<<40 {
		return 0
	}
	budget := int64(soft) - int64(open) - descriptorReserve
	return max(budget, 1)
}

// openDescriptors counts this process's open descriptors, or returns -1.
func openDescriptors() int {
	for _, dir := range []string{"/proc/self/fd", "/dev/fd"} {
		if entries, err := os.ReadDir(dir); err == nil {
			return len(entries) - 1 // the directory's own descriptor while read
		}
	}
	return -1
}

// isDescriptorExhausted reports whether err means the process or system
// had no descriptor for a new connection.
func isDescriptorExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// openSpare opens the descriptor a limitListener holds back, or returns nil.
func openSpare() *os.File {
	f, err := os.Open(os.DevNull)
	if err != nil {
		return nil
	}
	return f
}
