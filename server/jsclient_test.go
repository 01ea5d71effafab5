package server_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/auth"
	"github.com/latchws/latch/server"
)

// requireNode finds node and the ws package the JavaScript client's tests
// use: a failure in CI, a skip elsewhere.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("..", "interop", "node", "node_modules", "ws", "package.json"))
	}
	if err != nil {
		msg := "node and interop/node/node_modules/ws are needed; run scripts/install-peers.sh"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return node
}

// The JavaScript client's own tests, in Node with the ws package as its
// WebSocket (Node 20 has none).
func TestJSClientUnit(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--test", "web/test/").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test web/test/: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "# fail 0") {
		t.Fatalf("node --test reported failures:\n%s", out)
	}
}

// latch.js against the real server: a token by connect, a history
// channel, a connection dropped without a close frame while messages are
// published, and a recovery of exactly the missed ones.
func TestJSClientRecoversFromRealServer(t *testing.T) {
	t.Parallel()
	node := requireNode(t)
	secret := "js-client-test-secret-32-bytes!!"
	srv, addr := serve(t, server.Config{
		Auth:       server.AuthConfig{HMACSecret: secret},
		Namespaces: []server.Namespace{{Name: "chat", HistorySize: 50}},
	})
	_ = srv
	tok, err := auth.SignHS256([]byte(secret), auth.Identity{User: "ann", ExpiresAt: time.Now().Add(time.Hour)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "web/test/real-server.mjs", "ws://"+addr+"/ws", "chat:js", "20", "7")
	cmd.Env = append(os.Environ(), "LATCH_TOKEN="+tok)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("real-server.mjs: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
	var res struct {
		OK        bool `json:"ok"`
		Recovered bool `json:"recovered"`
		Published int  `json:"published"`
		Missed    int  `json:"missed"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("real-server.mjs printed %q: %v", out, err)
	}
	if !res.OK || !res.Recovered || res.Published != 20 || res.Missed != 7 {
		t.Fatalf("real-server.mjs: %s", out)
	}
}
