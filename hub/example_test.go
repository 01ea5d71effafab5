package hub_test

import (
	"context"
	"fmt"
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
