// Command latch-fanout is `latch serve` configured the way the fan-out
// benchmark (bench/cmd/fanout) needs it: tokens required (HS256 with the
// secret in $LATCH_BENCH_SECRET) and a namespace "bench" with history, in
// which any authenticated connection may subscribe and publish. It builds
// server.Config in code rather than through the CLI, so it does not depend
// on which command-line or config-file options main has.
package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/latchws/latch/bench/internal/srvutil"
	"github.com/latchws/latch/server"
)

func main() {
	f := srvutil.Parse()
	secret := os.Getenv("LATCH_BENCH_SECRET")
	if len(secret) < 32 {
		fmt.Fprintln(os.Stderr, "latch-fanout: LATCH_BENCH_SECRET must hold at least 32 bytes")
		os.Exit(2)
	}
	srv, err := server.New(server.Config{
		Addr:      f.Addr,
		LogOutput: io.Discard,
		Namespaces: []server.Namespace{{
			Name:        "bench",
			Subscribe:   server.AccessUser,
			Publish:     server.AccessUser,
			HistorySize: 100,
			HistoryTTL:  time.Minute,
		}},
		Auth: server.AuthConfig{HMACSecret: secret},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "latch-fanout:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "latch-fanout: engine %s\n", srv.Engine())
	ln := srvutil.Listen(f.Addr)
	go srvutil.Ready(f.Addr)
	_ = srv.Serve(ln)
}
