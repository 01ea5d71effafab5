package broker_test

import (
	"testing"

	"github.com/latchws/latch/internal/testutil"
)

// Importing broker (and so the hub or server wiring it) must never pull in
// NATS or anything else outside the standard library (issue 6).
func TestDepsStdlibOnly(t *testing.T) {
	testutil.CheckDeps(t, "github.com/latchws/latch/broker", nil)
}
