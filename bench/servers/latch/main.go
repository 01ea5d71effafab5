// Command latch is the Latch (github.com/latchws/latch/websocket) echo server, written as for gorilla of the bench.
package main

import (
	"flag"
	"io"
	"net/http"

	"github.com/latchws/latch/bench/internal/srvutil"
	"github.com/latchws/latch/websocket"
)

// The package docs' echo loop is ReadMessage/WriteMessage; -stream streams
// each message from NextReader to NextWriter instead.
var stream = flag.Bool("stream", false, "echo with NextReader/NextWriter and io.Copy")

func main() {
	f := srvutil.Parse()
	up := websocket.Upgrader{
		// Latch pools read and write buffers by default.
		EnableCompression: f.Compress,
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		// As the package docs recommend for many connections: return from
		// the handler so that net/http frees its buffers.
		go serve(c)
	})
	ln := srvutil.Listen(f.Addr)
	go srvutil.Ready(f.Addr)
	_ = http.Serve(ln, nil)
}

func serve(c *websocket.Conn) {
	defer c.Close()
	c.SetReadLimit(srvutil.ReadLimit)
	if !*stream {
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, p); err != nil {
				return
			}
		}
	}
	for {
		mt, rd, err := c.NextReader()
		if err != nil {
			return
		}
		wr, err := c.NextWriter(mt)
		if err != nil {
			return
		}
		if _, err := io.Copy(wr, rd); err != nil {
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
	}
}
