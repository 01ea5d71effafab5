package auth

import (
	"strings"
	"testing"

	"github.com/latchws/latch/internal/testutil"
)

// auth is imported by the server, the CLI and tests: it depends on the
// standard library and the JWT library only, and on no other latch package.
func TestDeps(t *testing.T) {
	testutil.CheckDeps(t, "github.com/latchws/latch/auth", func(path string) bool {
		return strings.HasPrefix(path, "github.com/golang-jwt/jwt/v5")
	})
}
