// Command coder is the coder/websocket v1.8.15 echo server of the bench.
package main

import (
	"context"
	"io"
	"net/http"

	"github.com/coder/websocket"
	"github.com/latchws/latch/bench/internal/srvutil"
)

func main() {
	f := srvutil.Parse()
	mode := websocket.CompressionDisabled
	if f.Compress {
		mode = websocket.CompressionNoContextTakeover
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: mode})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(srvutil.ReadLimit)
		ctx := context.Background()
		// As coder's echo example: stream each message from Reader to Writer.
		for {
			typ, rd, err := c.Reader(ctx)
			if err != nil {
				return
			}
			wr, err := c.Writer(ctx, typ)
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
	})
	ln := srvutil.Listen(f.Addr)
	go srvutil.Ready(f.Addr)
	_ = http.Serve(ln, nil)
}
