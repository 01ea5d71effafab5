package interop

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// debianPython is the interpreter that sees Debian's python3-websockets.
const debianPython = "/usr/bin/python3"

// TestPythonWebsockets runs the matrix against Python websockets 10.4
// (legacy asyncio API, interop/python).
func TestPythonWebsockets(t *testing.T) {
	t.Parallel()
	err := exec.Command(debianPython, "-c", "import websockets").Run()
	requirePeer(t, err == nil, "Python websockets ("+debianPython+" with python3-websockets)")
	p := startProcPeer(t, debianPython, filepath.Join("python", "peer.py"))
	runMatrix(t, p, caps{}, newLatchServer(t, nil), false)
}
