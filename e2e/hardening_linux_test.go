//go:build linux

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/latchws/latch/internal/testutil"
)

// With its descriptor limit lowered by prlimit, latch answers 503 at the
// limit instead of leaving clients to time out, and serves again once
// connections close.
func TestProcDescriptorLimit503(t *testing.T) {
	t.Parallel()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	const nofile = 160
	p := startLatchUnder(t, []string{prlimit, fmt.Sprintf("--nofile=%d:%d", nofile, nofile)})
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	refused := false
	for range nofile {
		start := time.Now()
		status, conn, err := testutil.TryUpgrade(p.addr, "/echo")
		if err != nil {
			t.Fatalf("upgrade %d: %v after %v (a client must get an answer, not a timeout)", len(open)+1, err, time.Since(start))
		}
		if status == http.StatusServiceUnavailable {
			refused = true
			break
		}
		if status != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade %d: status %d", len(open)+1, status)
		}
		open = append(open, conn)
	}
	if !refused || len(open) < 10 {
		t.Fatalf("%d upgrades before a 503 (refused %v); want a 503 after at least 10", len(open), refused)
	}
	t.Logf("%d WebSockets open under RLIMIT_NOFILE %d, then 503", len(open), nofile)
	for _, c := range open {
		c.Close()
	}
	open = nil

	deadline := time.Now().Add(5 * time.Second)
	for {
		status, conn, err := testutil.TryUpgrade(p.addr, "/echo")
		if status == http.StatusSwitchingProtocols {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service did not resume: status %d, %v", status, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := p.metric(t, `latch_upgrades_rejected_total{reason="descriptors"}`); n < 1 {
		t.Errorf("descriptor refusals counted %v, want at least 1", n)
	}
}
