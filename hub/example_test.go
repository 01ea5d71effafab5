package hub_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
)

// A chat room: every client joins "lobby" and what one sends is published
// to all.
func Example() {
	var h *hub.Hub
	joined := make(chan struct{})
	h = hub.New(hub.Config{
		OnConnect: func(c *hub.Client) {
			h.Subscribe(c, "lobby")
			joined <- struct{}{}
		},
		OnMessage: func(c *hub.Client, messageType int, data []byte) {
			h.Publish("lobby", messageType, data)
		},
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	alice, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	<-joined
	bob, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	<-joined

	alice.WriteMessage(websocket.TextMessage, []byte("hi, it's alice"))
	_, msg, _ := bob.ReadMessage()
	fmt.Printf("bob got %q\n", msg)
	alice.ReadMessage() // her own message

	// Clients must be reading to answer the server's close frame.
	ended := make(chan error, 2)
	for _, c := range []*websocket.Conn{alice, bob} {
		go func() {
			_, _, err := c.ReadMessage()
			ended <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("shutdown:", h.Shutdown(ctx))
	fmt.Println(<-ended)
	fmt.Println(<-ended)
	// Output:
	// bob got "hi, it's alice"
	// shutdown: <nil>
	// websocket: close 1001 (going away): server shutting down
	// websocket: close 1001 (going away): server shutting down
}

// A hub behind an http.Server with every bound set: the WebSocket routes
// need them as much as any HTTP route, for the time before the upgrade.
// Once upgraded, a connection keeps its own deadlines (heartbeat, write
// timeout): the Upgrader clears the server's after Hijack, so ReadTimeout
// and WriteTimeout never cut a WebSocket.
func Example_httpServer() {
	h := hub.New(hub.Config{
		OnMessage: func(c *hub.Client, messageType int, data []byte) { c.Send(messageType, data) },
	})
	mux := http.NewServeMux()
	mux.Handle("/ws", h)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second, // slowloris on the request head
		ReadTimeout:       30 * time.Second, // a whole request, head and body
		WriteTimeout:      30 * time.Second, // a whole response
		IdleTimeout:       60 * time.Second, // a keep-alive connection between requests
		MaxHeaderBytes:    32 << 10,         // room for cookies, not 1 MiB per pending handshake
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	go srv.Serve(ln)

	c, _, err := websocket.DefaultDialer.Dial("ws://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, msg, err := c.ReadMessage()
	fmt.Printf("%s %v\n", msg, err)

	go c.ReadMessage() // answers the server's close frame
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// http.Server.Shutdown does not see hijacked connections: the hub first.
	fmt.Println("hub:", h.Shutdown(ctx))
	fmt.Println("http:", srv.Shutdown(ctx))
	// Output:
	// hello <nil>
	// hub: <nil>
	// http: <nil>
}

// Stats after a message was published to two subscribers.
func ExampleHub_Stats() {
	var h *hub.Hub
	joined := make(chan struct{}, 2)
	h = hub.New(hub.Config{OnConnect: func(c *hub.Client) {
		h.Subscribe(c, "ticks")
		joined <- struct{}{}
	}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	var conns []*websocket.Conn
	for range 2 {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		<-joined
		conns = append(conns, c)
	}
	fmt.Println("queued for", h.Publish("ticks", websocket.TextMessage, []byte("tick")))
	for _, c := range conns {
		c.ReadMessage()
		c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.Shutdown(ctx)
	st := h.Stats()
	fmt.Println("connected", st.Connected, "out", st.MessagesOut, "bytes", st.BytesOut, "codes", st.CloseCodes)
	// Output:
	// queued for 2
	// connected 2 out 2 bytes 8 codes map[1000:2]
}

// The same kind of hub on an event engine: clients hold no goroutine, and
// OnMessage runs on the engine's loop, so it must not block (Reply and
// Publish never do).
func ExampleConfig_engine() {
	engine, err := websocket.NewEngine(websocket.EngineConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer engine.Close() // after the hub's Shutdown
	h := hub.New(hub.Config{
		Engine: engine,
		OnMessage: func(c *hub.Client, messageType int, data []byte) {
			c.Reply(messageType, append([]byte("echo: "), data...)) // data is valid during the call only; Reply copies
		},
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	conn.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, msg, _ := conn.ReadMessage()
	fmt.Printf("%s\n", msg)

	go conn.ReadMessage() // answers the server's close frame
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("shutdown:", h.Shutdown(ctx))
	// Output:
	// echo: hello
	// shutdown: <nil>
}
