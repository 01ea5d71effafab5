package testutil

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// CheckDeps lists pkg's dependencies with `go list -deps` and reports
// every one that is not in the standard library and that allowed (nil:
// none) does not accept. Without the go tool it fails in CI and skips
// elsewhere.
func CheckDeps(t *testing.T, pkg string, allowed func(importPath string) bool) {
	t.Helper()
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
		case std == "true", allowed != nil && allowed(path):
		default:
			t.Errorf("%s depends on %s, which is not allowed", pkg, path)
		}
	}
	if !found {
		t.Fatalf("go list output lacks %s itself:\n%s", pkg, out)
	}
}
