// Command latch-engine is the Latch echo server of the bench on a
// websocket.Engine: every upgraded connection is handed to the engine's
// event loops (epoll on Linux, GOMAXPROCS loops) and the HTTP handler
// returns, so an idle connection holds no goroutine and no read buffer.
package main

import (
	"fmt"
	"net/http"
	"os"
	"runtime"

	"github.com/latchws/latch/bench/internal/srvutil"
	"github.com/latchws/latch/websocket"
)

func main() {
	f := srvutil.Parse()
	e, err := websocket.NewEngine(websocket.EngineConfig{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "latch-engine:", err)
		os.Exit(1)
	}
	// The figures are meant to be the event loop's: a silent fallback to a
	// goroutine per connection would measure something else.
	if runtime.GOOS == "linux" && e.Driver() != "epoll" {
		fmt.Fprintf(os.Stderr, "latch-engine: driver %q on Linux, want epoll\n", e.Driver())
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "latch-engine: driver %s, GOMAXPROCS %d\n", e.Driver(), runtime.GOMAXPROCS(0))
	up := websocket.Upgrader{EnableCompression: f.Compress}
	cb := websocket.Callbacks{
		OnMessage: func(c *websocket.Conn, mt int, p []byte) {
			// p is valid during the call only; WriteMessage queues a copy
			// without blocking the loop.
			_ = c.WriteMessage(mt, p)
		},
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(srvutil.ReadLimit)
		if err := e.Serve(c, cb); err != nil {
			c.CloseNow()
		}
		// Return at once: over HTTP/1.1 the engine owns the connection.
	})
	ln := srvutil.Listen(f.Addr)
	go srvutil.Ready(f.Addr)
	_ = http.Serve(ln, nil)
}
