package websocket_test

import (
	"strings"
	"testing"

	"github.com/latchws/latch/internal/testutil"
)

// TestDepsStdlibOnly enforces DESIGN.md: the websocket package depends only on
// the standard library, our own internal packages and one compression library.
func TestDepsStdlibOnly(t *testing.T) {
	testutil.CheckDeps(t, "github.com/latchws/latch/websocket", func(path string) bool {
		return strings.HasPrefix(path, "github.com/latchws/latch/internal/") ||
			strings.HasPrefix(path, "github.com/klauspost/compress/")
	})
}
