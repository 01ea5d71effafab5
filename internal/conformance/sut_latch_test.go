//go:build !gorilla

package conformance

import (
	"errors"
	"net/http"
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
