// Command latch is the Latch (github.com/latchws/latch/websocket) echo server, written as for gorilla of the bench.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/latchws/latch/bench/internal/srvutil"
	"github.com/latchws/latch/websocket"
)

// defaultAPI is the read call of the echo loop: "append" is the package
// docs' fast path (AppendMessage into one reused buffer), "readmessage" is
// gorilla's loop unchanged (ReadMessage allocates each message). run.sh
// builds bin/latch-readmessage with -ldflags "-X main.defaultAPI=readmessage".
var defaultAPI = "append"

var (
	api    = flag.String("api", defaultAPI, "echo loop: append (AppendMessage, reused buffer) or readmessage (ReadMessage)")
	stream = flag.Bool("stream", false, "echo with NextReader/NextWriter and io.Copy instead")
)

func main() {
	f := srvutil.Parse()
	if *api != "append" && *api != "readmessage" {
		fmt.Fprintln(os.Stderr, "bench latch: -api must be append or readmessage")
		os.Exit(2)
	}
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
	if !*stream && *api == "append" {
		var buf []byte
		for {
			mt, p, err := c.AppendMessage(buf[:0])
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, p); err != nil {
				return
			}
			buf = p
		}
	}
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
