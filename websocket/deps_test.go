package websocket_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDepsStdlibOnly enforces DESIGN.md: the websocket package depends only on
// the standard library, our own internal packages and one compression library.
func TestDepsStdlibOnly(t *testing.T) {
	const self = "github.com/latchws/latch/websocket"
	allowed := []string{
		"github.com/latchws/latch/internal/",
		"github.com/klauspost/compress/",
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("go tool not on PATH in CI: %v", err)
		}
		t.Skipf("go tool not on PATH, cannot list dependencies: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}}", self)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", self, err, stderr.String())
	}

	sawSelf := false
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, std, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("unexpected go list output line %q", line)
		}
		if path == self {
			sawSelf = true
			continue
		}
		if std == "true" {
			continue
		}
		ok = false
		for _, prefix := range allowed {
			if strings.HasPrefix(path, prefix) {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("websocket depends on %s: only the standard library, %s may be imported", path, strings.Join(allowed, ", "))
		}
	}
	// Guards against an empty listing passing silently.
	if !sawSelf {
		t.Fatalf("go list -deps output does not include %s itself:\n%s", self, out)
	}
}
