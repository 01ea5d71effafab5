package auth

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// auth is imported by the server, the CLI and tests: it depends on the
// standard library and the JWT library only, and on no other latch package.
func TestDeps(t *testing.T) {
	const pkg = "github.com/latchws/latch/auth"
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go tool not on PATH in CI: %v", err)
		}
		t.Skipf("go tool not on PATH, cannot list dependencies: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, std, _ := strings.Cut(line, " ")
		switch {
		case path == pkg:
			found = true
		case std == "true", strings.HasPrefix(path, "github.com/golang-jwt/jwt/v5"):
		default:
			t.Errorf("auth depends on %s; only the standard library and golang-jwt/jwt/v5 are allowed", path)
		}
	}
	if !found {
		t.Fatalf("go list output lacks %s itself:\n%s", pkg, out)
	}
}
