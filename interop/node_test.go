package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestNodeWS runs the matrix against Node.js ws 8 (interop/node).
func TestNodeWS(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	requirePeer(t, err == nil, "node")
	_, err = os.Stat(filepath.Join("node", "node_modules", "ws", "package.json"))
	requirePeer(t, err == nil, "Node.js ws (interop/node/node_modules)")
	p := startProcPeer(t, node, filepath.Join("node", "peer.js"))
	runMatrix(t, p, caps{}, newLatchServer(t, nil), false)
}
