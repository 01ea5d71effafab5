package websocket_test

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/latchws/latch/websocket"
)

// echo is the handler of the examples: it sends every message back.
func echo(w http.ResponseWriter, r *http.Request) {
	upgrader := websocket.Upgrader{}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has answered with an HTTP error
	}
	defer conn.Close()
	for {
		messageType, p, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := conn.WriteMessage(messageType, p); err != nil {
			return
		}
	}
}

func wsURL(s *httptest.Server) string { return "ws" + strings.TrimPrefix(s.URL, "http") }

// A server upgrades requests with an Upgrader and a client dials it.
func ExampleUpgrader() {
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, p, _ := conn.ReadMessage()
	fmt.Println(string(p))
	// Output: hello
}

// AppendMessage reads each message into the same buffer, so the loop
// allocates nothing per message once the buffer is large enough.
func ExampleConn_AppendMessage() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		var buf []byte
		for {
			messageType, p, err := conn.AppendMessage(buf[:0])
			if err != nil {
				return
			}
			if err := conn.WriteMessage(messageType, p); err != nil {
				return
			}
			buf = p // hand the memory back next time
		}
	}))
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	for _, msg := range []string{"one", "two", "three"} {
		conn.WriteMessage(websocket.TextMessage, []byte(msg))
		_, p, _ := conn.ReadMessage()
		fmt.Println(string(p))
	}
	// Output:
	// one
	// two
	// three
}

// Close performs the closing handshake: the server's read loop sees a
// clean close with the client's code.
func ExampleConn_CloseWithCode() {
	ended := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		_, _, err = conn.ReadMessage()
		ended <- err
	}))
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err != nil {
		log.Fatal(err)
	}
	conn.CloseWithCode(websocket.CloseGoingAway, "bye")
	err = <-ended
	fmt.Println(websocket.CloseStatus(err), websocket.IsCloseError(err, websocket.CloseGoingAway))
	// Output: 1001 true
}

// CloseStatus tells a close from the peer from other errors, through any
// wrapping.
func ExampleCloseStatus() {
	err := fmt.Errorf("reading chat: %w", &websocket.CloseError{Code: websocket.CloseNormalClosure})
	fmt.Println(websocket.CloseStatus(err))
	fmt.Println(websocket.CloseStatus(errors.New("something else")))
	// Output:
	// 1000
	// -1
}

// Many goroutines may write to one connection: no mutex of your own.
func ExampleConn_WriteMessage_concurrent() {
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	conn, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	for i := 0; i < 3; i++ {
		go conn.WriteMessage(websocket.TextMessage, []byte("tick"))
	}
	for i := 0; i < 3; i++ {
		_, p, _ := conn.ReadMessage()
		fmt.Println(string(p))
	}
	// Output:
	// tick
	// tick
	// tick
}

// The heartbeat finds a peer that went away without closing: here the
// server checks every 50ms and the client never answers.
func ExampleConn_SetHeartbeat() {
	ended := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetHeartbeat(50*time.Millisecond, 50*time.Millisecond)
		_, _, err = conn.ReadMessage()
		ended <- err
	}))
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.CloseNow()
	// The client never reads, so it never answers the server's pings.
	err = <-ended
	fmt.Println(errors.Is(err, websocket.ErrHeartbeatTimeout))
	// Output: true
}

// Compression is negotiated when both sides enable it.
func ExampleDialer_compression() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{EnableCompression: true}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		conn.ReadMessage()
	}))
	defer srv.Close()

	d := websocket.Dialer{EnableCompression: true}
	conn, resp, err := d.Dial(wsURL(srv), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Println(conn.Compressed())
	fmt.Println(resp.Header.Get("Sec-WebSocket-Extensions"))
	// Output:
	// true
	// permessage-deflate; server_no_context_takeover; client_no_context_takeover
}

// An Engine serves connections without a goroutine each: the handler hands
// the connection over and returns, and messages arrive by callback.
func ExampleEngine() {
	engine, err := websocket.NewEngine(websocket.EngineConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer engine.Close()
	closed := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		engine.Serve(conn, websocket.Callbacks{
			OnMessage: func(c *websocket.Conn, messageType int, p []byte) {
				c.WriteMessage(messageType, p) // p is valid during the call only
			},
			OnClose: func(c *websocket.Conn, err error) { closed <- err },
		})
		// The handler returns: net/http lets go of the connection.
	}))
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err != nil {
		log.Fatal(err)
	}
	conn.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, p, _ := conn.ReadMessage()
	fmt.Println(string(p))
	conn.Close()
	fmt.Println(<-closed)
	// Output:
	// hello
	// websocket: close 1000 (normal)
}

// The same echo server on goroutines, the way a gorilla program serves
// it: one goroutine per connection reads in a loop.
func ExampleEngine_goroutines() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		go func() { // returning from the handler frees net/http's buffers
			defer conn.Close()
			for {
				messageType, p, err := conn.ReadMessage()
				if err != nil {
					return
				}
				conn.WriteMessage(messageType, p)
			}
		}()
	}))
	defer srv.Close()

	conn, _, err := websocket.DefaultDialer.Dial(wsURL(srv), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, p, _ := conn.ReadMessage()
	fmt.Println(string(p))
	// Output: hello
}
