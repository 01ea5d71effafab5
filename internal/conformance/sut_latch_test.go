//go:build !gorilla

package conformance

import (
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	websocket "github.com/latchws/latch/websocket"
)

// The implementation under test. Build with -tags gorilla to run the same
// suite against gorilla/websocket v1.5.3 (see sut_gorilla_test.go).
const implName = "latch"

const defaultReadLimit = int64(websocket.DefaultReadLimit)

var errReadLimit = websocket.ErrReadLimit

func closeStatus(err error) int { return websocket.CloseStatus(err) }

func asCloseError(err error) (code int, text string, ok bool) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Text, true
	}
	return 0, "", false
}

// compressedKnown: the implementation reports whether it negotiated
// permessage-deflate.
const compressedKnown = true

func compressed(c wsConn) bool { return c.(*websocket.Conn).Compressed() }

// upgrade accepts a connection; z != nil enables compression.
func upgrade(w http.ResponseWriter, r *http.Request, z *zconf) (wsConn, error) {
	u := websocket.Upgrader{HandshakeTimeout: 3 * time.Second}
	if z != nil {
		u.EnableCompression = true
		u.CompressionContextTakeover = z.takeover
		u.CompressionThreshold = z.threshold
	}
	c, err := u.Upgrade(w, r, nil)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// configure sets d's compression as z says; a nil z leaves it off.
func (z *zconf) configure(d *websocket.Dialer) {
	if z != nil {
		d.EnableCompression = true
		d.CompressionContextTakeover = z.takeover
		d.CompressionThreshold = z.threshold
		d.CompressionMaxWindowBits = z.maxWindowBits
	}
}

// dial connects; z != nil enables compression.
func dial(url string, z *zconf) (wsConn, error) {
	d := websocket.Dialer{HandshakeTimeout: 3 * time.Second}
	z.configure(&d)
	c, resp, err := d.Dial(url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// The same cases against connections served by an Engine (on Linux, its
// epoll loops): server and client.
func init() {
	targets = append(targets,
		target{name: "server-engine", role: "server", start: func(t *testing.T, tc tcase, r <-chan struct{}) (*peer, <-chan error) {
			return startServer(t, tc, r, echoOnEngine)
		}},
		target{name: "client-engine", role: "client", start: func(t *testing.T, tc tcase, r <-chan struct{}) (*peer, <-chan error) {
			return startClientApp(t, tc, r, echoOnEngine)
		}},
	)
}

var testEngine = sync.OnceValue(func() *websocket.Engine {
	e, err := websocket.NewEngine(websocket.EngineConfig{})
	if err != nil {
		panic(err)
	}
	return e
})

// echoOnEngine is echoMessages on an engine: it returns what OnClose
// reports.
func echoOnEngine(c wsConn) error {
	done := make(chan error, 1)
	err := testEngine().Serve(c.(*websocket.Conn), websocket.Callbacks{
		OnMessage: func(c *websocket.Conn, mt int, p []byte) {
			c.WriteMessage(mt, p) // a failed write closes the connection: OnClose says why
		},
		OnClose: func(_ *websocket.Conn, err error) { done <- err },
	})
	if err != nil {
		return err
	}
	return <-done
}
