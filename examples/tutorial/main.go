package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/latchws/latch/websocket"
)

// addr is glue the article leaves implicit; its default is the article's port.
var addr = flag.String("addr", ":8080", "http service address")

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	CheckOrigin:     func(r *http.Request) bool { return true },
}

func websocketHandler(w http.ResponseWriter, r *http.Request) {
	// Upgrade to a WebSocket connection.
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		log.Println(err)
		return
	}
	defer ws.Close() // Close the WebSocket connection when the function returns.
	for {
		// Read a message.
		messageType, message, err := ws.ReadMessage()
		if err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseGoingAway) {
				log.Printf("error: %v", err)
			}
			break
		}
		// Handle the message.
		var reply string
		switch messageType {
		case websocket.CloseMessage:
			// Close message received: close the connection. (ReadMessage
			// reports a close as an error, so this case is never taken; it
			// is kept as the article wrote it.)
			return
		case websocket.TextMessage:
			// Text message received: the reply echoes it.
			reply = string(message)
		case websocket.BinaryMessage:
			// Binary message received: echo it as binary, since it need
			// not be valid UTF-8 (RFC 6455 §5.6).
			if err := ws.WriteMessage(websocket.BinaryMessage, message); err != nil {
				log.Println(err)
				return
			}
			continue
		}
		// Send the reply.
		err = ws.WriteMessage(websocket.TextMessage, []byte(reply))
		if err != nil {
			log.Println(err)
			break
		}
	}
}

// newMux maps "/ws" to websocketHandler, as the article's main does; it is
// separate so that tests can serve the same routes.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", websocketHandler)
	return mux
}

func main() {
	flag.Parse()
	log.Println("Server started at http://" + *addr)
	log.Fatal(http.ListenAndServe(*addr, newMux()))
}
