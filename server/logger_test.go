package server_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/server"
)

// JSON logs carry durations as milliseconds; text logs as Go durations.
func TestLoggerDurations(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l, err := server.NewLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("drained", "took", 1500*time.Microsecond, "clients", 3)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not JSON: %q", buf.String())
	}
	if rec["took"] != 1.5 || rec["clients"] != 3.0 {
		t.Fatalf("took = %v, clients = %v; want 1.5 (ms) and 3", rec["took"], rec["clients"])
	}
	buf.Reset()
	l, err = server.NewLogger(&buf, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("drained", "took", 1500*time.Microsecond)
	if !strings.Contains(buf.String(), "took=1.5ms") {
		t.Fatalf("text log %q lacks took=1.5ms", buf.String())
	}
}
