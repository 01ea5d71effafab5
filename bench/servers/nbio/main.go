// Command nbio is the lesismal/nbio echo server of the bench, in nbio's
// event-driven (non-blocking, epoll) mode with the nbhttp engine, as nbio's
// websocket examples set it up.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/latchws/latch/bench/internal/srvutil"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

func main() {
	f := srvutil.Parse()
	logging.SetLevel(logging.LevelNone)
	up := websocket.NewUpgrader()
	up.EnableCompression(f.Compress)
	up.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		_ = c.WriteMessage(mt, data)
	})
	mux := &http.ServeMux{}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = up.Upgrade(w, r, nil)
	})
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                      "tcp",
		Addrs:                        []string{f.Addr},
		IOMod:                        nbhttp.IOModNonBlocking,
		MaxWebsocketFramePayloadSize: srvutil.ReadLimit,
		ReleaseWebsocketPayload:      true,
		Handler:                      mux,
	})
	if err := engine.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "nbio:", err)
		os.Exit(1)
	}
	srvutil.Ready(f.Addr)
	select {}
}
