package websocket

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// WebSockets over HTTP/2 (RFC 8441). A browser opens one as an extended
// CONNECT with :protocol websocket on a stream of an HTTP/2 connection;
// the stream then carries the WebSocket frames both ways: the request body
// in, the response body out. net/http hands such a request to the handler
// with Method "CONNECT" and the protocol in Header[":protocol"].
//
// net/http ends the stream when the handler returns, and its ResponseWriter
// must not be used after that. So over HTTP/2 the handler that called
// Upgrade must not return before the connection is closed: it waits on
// [Conn.Done] (or reads until the connection ends, as an echo loop does).

// h2Protocol is the :protocol pseudo-header of a WebSocket (RFC 8441 §4).
const h2Protocol = "websocket"

// isExtendedConnect reports whether r is an HTTP/2 (or later) CONNECT.
func isExtendedConnect(r *http.Request) bool {
	return r.ProtoMajor >= 2 && r.Method == http.MethodConnect
}

// upgradeHTTP2 answers an extended CONNECT: the same checks as an HTTP/1.1
// upgrade (RFC 8441 §5: version, origin, subprotocols and extensions as in
// RFC 6455 §4; no Sec-WebSocket-Key or Accept), then 200 and a Conn over
// the stream.
func (u *Upgrader) upgradeHTTP2(w http.ResponseWriter, r *http.Request, responseHeader http.Header) (*Conn, error) {
	protocol := r.Header[":protocol"]
	switch {
	case len(protocol) == 0:
		// A plain CONNECT asks for a tunnel, which this handler is not.
		return u.returnError(w, r, http.StatusBadRequest, "websocket: CONNECT without :protocol is not a WebSocket request (RFC 8441 §4)")
	case len(protocol) > 1 || protocol[0] != h2Protocol:
		return u.returnError(w, r, http.StatusNotImplemented, "websocket: CONNECT for a protocol other than websocket")
	}
	if err := u.checkRequest(w, r, responseHeader); err != nil {
		return nil, err
	}
	subprotocol := u.selectSubprotocol(r, responseHeader)
	extensionResponse, compression := u.negotiateCompression(r)

	h := w.Header()
	for k, vs := range responseHeader {
		if !isToken(k) || h1OnlyHeader[k] {
			continue
		}
		for _, v := range vs {
			h.Add(k, headerValue(v))
		}
	}
	h.Del("Sec-Websocket-Protocol")
	if subprotocol != "" {
		h.Set("Sec-Websocket-Protocol", subprotocol)
	}
	if extensionResponse != "" {
		h.Set("Sec-Websocket-Extensions", extensionResponse)
	}

	rc := http.NewResponseController(w)
	// The http.Server's ReadTimeout and WriteTimeout apply per stream on
	// HTTP/2: a WebSocket's deadlines are its own from here on, as they
	// are after a hijack.
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		return u.returnError(w, r, http.StatusInternalServerError, "websocket: response does not support deadlines: "+err.Error())
	}
	var writeBound time.Time
	if u.HandshakeTimeout > 0 {
		writeBound = time.Now().Add(u.HandshakeTimeout)
	}
	rc.SetWriteDeadline(writeBound)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, err
	}
	rc.SetWriteDeadline(time.Time{})

	nc := newH2Conn(w, r, rc)
	return newConn(nc, u.connConfig(subprotocol, nil, compression)), nil
}

// h1OnlyHeader lists response headers that HTTP/2 forbids (RFC 9113
// §8.2.2) or that only an HTTP/1.1 upgrade carries.
var h1OnlyHeader = map[string]bool{
	"Connection":           true,
	"Upgrade":              true,
	"Keep-Alive":           true,
	"Proxy-Connection":     true,
	"Transfer-Encoding":    true,
	"Sec-Websocket-Accept": true,
}

// headerValue keeps control characters out of a header value.
func headerValue(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] <= 31 {
			b := []byte(v)
			for j := i; j < len(b); j++ {
				if b[j] <= 31 {
					b[j] = ' '
				}
			}
			return string(b)
		}
	}
	return v
}

// errStreamEnded is what reads and writes return once the stream's
// handler may have returned.
var errStreamEnded = errors.New("websocket: HTTP/2 stream closed")

// h2Conn is a net.Conn over one HTTP/2 stream: reads take the request
// body, writes go to the response and are flushed at once. Deadlines are
// the stream's, set through the http.ResponseController. net/http makes a
// passed read deadline break the body for good and a passed write deadline
// reset the stream; the Conn treats every timeout as the end of the
// connection, except the progress bounds, which re-arm before they can
// fire early (see progress.go).
//
// Close ends the stream's use: a clean close (after the closing handshake)
// lets the handler return, and net/http ends the stream with END_STREAM;
// an abortive one resets the stream first. Either way the TCP connection
// and its other streams go on.
type h2Conn struct {
	w      http.ResponseWriter // used only under mu (deadlines) or writeMu (writes), and never once closed
	rc     *http.ResponseController
	body   io.ReadCloser
	local  net.Addr // immutable
	remote net.Addr // immutable

	writeMu sync.Mutex // serialises writes; held while a write waits for flow control
	mu      sync.Mutex // guards closed and deadline calls
	closed  atomic.Bool
	abort   atomic.Bool // set before Close: reset the stream instead of ending it
}

func newH2Conn(w http.ResponseWriter, r *http.Request, rc *http.ResponseController) *h2Conn {
	c := &h2Conn{w: w, rc: rc, body: r.Body}
	c.local, _ = r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if c.local == nil {
		c.local = h2Addr("")
	}
	c.remote = h2Addr(r.RemoteAddr)
	if ap, err := net.ResolveTCPAddr("tcp", r.RemoteAddr); err == nil {
		c.remote = ap
	}
	return c
}

func (c *h2Conn) Read(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.body.Read(p)
	switch {
	case err == nil:
	case c.closed.Load():
		err = net.ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		// net/http wraps it in an error that is no net.Error.
		err = errH2Timeout
	}
	return n, err
}

func (c *h2Conn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.w.Write(p)
	if err == nil {
		err = c.rc.Flush()
	}
	if err != nil {
		if c.closed.Load() {
			return n, net.ErrClosed
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, &net.OpError{Op: "write", Net: "http2", Err: os.ErrDeadlineExceeded}
		}
	}
	return n, err
}

// closeWriteWait is how long Close waits for a write in progress before it
// resets the stream under it.
const closeWriteWait = 100 * time.Millisecond

// Close ends the stream: see h2Conn. It waits for a write in progress,
// resetting the stream first if the close is abortive or the write stays
// stuck on the peer's flow-control window.
func (c *h2Conn) Close() error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	if c.abort.Load() {
		c.reset()
	}
	if !c.writeMu.TryLock() {
		t := time.AfterFunc(closeWriteWait, c.reset)
		c.writeMu.Lock()
		t.Stop()
	}
	c.mu.Lock()
	c.closed.Store(true)
	c.mu.Unlock()
	c.writeMu.Unlock()
	c.body.Close() // wakes a blocked read
	return nil
}

// CloseWrite is what a failing Conn calls after its close frame, where TCP
// would send FIN: a server stream cannot end its half and still be read
// (net/http sends END_STREAM when the handler returns), so it ends the
// stream cleanly now; a peer that waits for END_STREAM after answering the
// close frame (as browsers do) then sees a clean close at once.
func (c *h2Conn) CloseWrite() error { return c.Close() }

// reset sends RST_STREAM: net/http resets the stream at once when its write
// deadline is set in the past, and fails the write that waits.
func (c *h2Conn) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed.Load() {
		c.rc.SetWriteDeadline(time.Unix(1, 0))
	}
}

func (c *h2Conn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *h2Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return net.ErrClosed
	}
	return c.rc.SetReadDeadline(t)
}

func (c *h2Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return net.ErrClosed
	}
	return c.rc.SetWriteDeadline(t)
}

func (c *h2Conn) LocalAddr() net.Addr  { return c.local }
func (c *h2Conn) RemoteAddr() net.Addr { return c.remote }

// h2Addr is an address net/http gave as a string only.
type h2Addr string

func (a h2Addr) Network() string { return "tcp" }
func (a h2Addr) String() string  { return string(a) }
