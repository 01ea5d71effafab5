//go:build gorilla

package conformance

import (
	"errors"
	"net/http"
	"time"

	websocket "github.com/gorilla/websocket"
)

// gorilla/websocket v1.5.3 as the implementation under test, to compare
// with Latch (go test -tags gorilla); gorilla has neither limit nor helper.
const implName = "gorilla"

const defaultReadLimit = int64(16 << 20) // Latch's default

var errReadLimit = websocket.ErrReadLimit

func closeStatus(err error) int {
	if code, _, ok := asCloseError(err); ok {
		return code
	}
	return -1
}

func asCloseError(err error) (code int, text string, ok bool) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Text, true
	}
	return 0, "", false
}

// gorilla does not report whether compression was negotiated.
const compressedKnown = false

func compressed(c wsConn) bool { return false }

// upgrade accepts a connection; z != nil enables compression (gorilla has
// neither context takeover nor a threshold).
func upgrade(w http.ResponseWriter, r *http.Request, z *zconf) (wsConn, error) {
	u := websocket.Upgrader{HandshakeTimeout: 3 * time.Second, EnableCompression: z != nil}
	c, err := u.Upgrade(w, r, nil)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// dial connects; z != nil enables compression.
func dial(url string, z *zconf) (wsConn, error) {
	d := websocket.Dialer{HandshakeTimeout: 3 * time.Second, EnableCompression: z != nil}
	c, resp, err := d.Dial(url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}
