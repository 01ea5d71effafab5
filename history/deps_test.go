package history_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The package is imported by the server and by broker/nats: it must stay
// on the standard library alone.
func TestDepsStdlibOnly(t *testing.T) {
	const pkg = "github.com/latchws/latch/history"
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go tool not on PATH in CI: %v", err)
		}
		t.Skipf("go tool not on PATH: %v", err)
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
		case std != "true":
			t.Errorf("history depends on %s; only the standard library is allowed", path)
		}
	}
	if !found {
		t.Fatalf("go list output lacks %s:\n%s", pkg, out)
	}
}
