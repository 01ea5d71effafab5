package server_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/latchws/latch/server"
	"github.com/latchws/latch/websocket"
)

func ExampleNewEchoHandler() {
	mux := http.NewServeMux()
	mux.Handle("/echo", server.NewEchoHandler(nil, 1<<20, nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/echo", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	if err := conn.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	typ, msg, err := conn.ReadMessage()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(typ == websocket.TextMessage, string(msg))
	// Output: true hello
}
