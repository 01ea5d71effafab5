//go:build !unix

package server

import "os"

// Without RLIMIT_NOFILE there is no descriptor budget to keep: the
// connection count is not bounded and no spare is held.

func connectionBudget() int64 { return 0 }

func isDescriptorExhausted(error) bool { return false }

func openSpare() *os.File { return nil }
