package history_test

import (
	"testing"

	"github.com/latchws/latch/internal/testutil"
)

// The package is imported by the server and by broker/nats: it depends on
// the standard library only.
func TestDeps(t *testing.T) {
	testutil.CheckDeps(t, "github.com/latchws/latch/history", nil)
}
