// Command latch-serve is `latch serve` (package server: the hub, pub/sub
// state, limits and metrics) as a bench server: the runner dials /ws, with
// the pub/sub protocol, or /echo. It exists for the idle-memory cells,
// which compare what a connection costs the whole application with what it
// costs the library.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/latchws/latch/bench/internal/srvutil"
	"github.com/latchws/latch/server"
)

// engine is set at build time (-ldflags -X main.engine=goroutines).
var engine = server.EngineAuto

func main() {
	f := srvutil.Parse()
	srv, err := server.New(server.Config{
		Addr:           f.Addr,
		Engine:         engine,
		LogOutput:      io.Discard,
		MaxMessageRate: -1, // off: the bench client is not abusive
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "latch-serve:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "latch-serve: engine %s\n", srv.Engine())
	ln := srvutil.Listen(f.Addr)
	go srvutil.Ready(f.Addr)
	_ = srv.Serve(ln)
}
