//go:build !gorilla

package conformance

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	websocket "github.com/latchws/latch/websocket"
	_ "github.com/latchws/latch/websocket/xconnect" // RFC 8441 on this binary's servers
)

// Every case also runs over HTTP/2 (RFC 8441): the raw peer's bytes travel
// in the DATA frames of an extended CONNECT stream instead of over TCP,
// and "TCP closed" is the end of the stream (END_STREAM, or a reset). The
// raw peer reaches the stream through net/http's own HTTP/2 client and
// server, so the frames it crafts reach the implementation unchanged.
func init() {
	targets = append(targets,
		target{name: "server-stream-h2", role: "server", start: func(t *testing.T, tc tcase, r <-chan struct{}) (*peer, <-chan error) {
			return startServerH2(t, tc, r, echoStream)
		}},
		target{name: "server-message-h2", role: "server", start: func(t *testing.T, tc tcase, r <-chan struct{}) (*peer, <-chan error) {
			return startServerH2(t, tc, r, echoMessages)
		}},
		target{name: "client-message-h2", role: "client", start: startClientH2},
	)
}

// streamConn is the raw peer's net.Conn over one HTTP/2 stream. A deadline
// that passes ends the stream (abort) and fails the blocked call with a
// timeout: the raw peer only sets deadlines that fail the case when they
// fire.
type streamConn struct {
	r          io.ReadCloser
	w          io.Writer
	flush      func() error // nil: writes need no flush
	abort      func()       // ends the stream's body for reads
	abortWrite func()       // fails a write stuck on flow control
	end        func()       // ends our half of the stream cleanly

	writeMu  sync.Mutex // held by a write; Close waits for it
	mu       sync.Mutex // guards the timer
	timer    *time.Timer
	expired  atomic.Bool
	closed   atomic.Bool
	closeOne sync.Once
}

func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	switch {
	case err == nil || err == io.EOF: // EOF: END_STREAM, TCP's FIN
	case c.expired.Load():
		err = &net.OpError{Op: "read", Net: "http2", Err: os.ErrDeadlineExceeded}
	default:
		// RST_STREAM is TCP's reset (RFC 8441 §5).
		err = fmt.Errorf("%w (%v)", syscall.ECONNRESET, err)
	}
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	n, err := c.w.Write(p)
	if err == nil && c.flush != nil {
		err = c.flush()
	}
	return n, err
}

func (c *streamConn) Close() error {
	c.closeOne.Do(func() {
		c.closed.Store(true)
		c.mu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
		if !c.writeMu.TryLock() {
			c.abortWrite()
			c.writeMu.Lock()
		}
		c.end() // no write runs, or will: closed is set
		c.writeMu.Unlock()
	})
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	if !t.IsZero() && !c.closed.Load() {
		c.timer = time.AfterFunc(time.Until(t), func() {
			c.expired.Store(true)
			c.abort()
		})
	}
	return nil
}

func (c *streamConn) SetDeadline(t time.Time) error      { return c.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return nil }
func (c *streamConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *streamConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }

// startServerH2 is startServer over an HTTP/2 stream: the implementation's
// Upgrader behind an HTTP/2 (TLS) server, the raw client on a CONNECT.
func startServerH2(t *testing.T, tc tcase, release <-chan struct{}, app func(wsConn) error) (*peer, <-chan error) {
	appErr := make(chan error, 1)
	done := make(chan struct{})
	compCh := make(chan bool, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		c, err := upgrade(w, r, tc.comp)
		if err != nil {
			appErr <- fmt.Errorf("upgrade: %w", err)
			return
		}
		compCh <- compressed(c)
		if tc.readLimit > 0 {
			c.SetReadLimit(tc.readLimit)
		}
		appErr <- app(c)
		// The stream ends when this handler returns, so the handler waits
		// for the library to close the connection by itself, as an HTTP/2
		// handler must (websocket package doc, "HTTP/2"), rather than for
		// the case's release: the application still never calls Close
		// before the case has checked the wire.
		select {
		case <-c.(interface{ Done() <-chan struct{} }).Done():
		case <-release:
		case <-time.After(10 * time.Second):
		}
		c.Close()
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { waitApp(t, done) })
	var offers []string
	if tc.comp != nil {
		offers = tc.comp.offers
	}
	p, ext, err := rawH2ClientHandshake(t, srv, offers)
	if err != nil {
		t.Fatalf("opening handshake with %s server over HTTP/2: %v", implName, err)
	}
	p.sutCompressed = compCh
	wantResp := ""
	if tc.comp != nil {
		wantResp = tc.comp.wantResp
	}
	if ext != wantResp {
		p.conn.Close()
		t.Fatalf("%s server answered offer %q with Sec-WebSocket-Extensions %q, want %q", implName, offers, ext, wantResp)
	}
	if ext != "" {
		if p.z, err = newPMD(ext, strings.Join(offers, ", "), true); err != nil {
			p.conn.Close()
			t.Fatalf("raw client cannot use the response %q: %v", ext, err)
		}
	}
	return p, appErr
}

// rawH2ClientHandshake opens an extended CONNECT to srv on a connection
// of its own (RFC 8441 §4) and returns the raw client on its stream.
func rawH2ClientHandshake(t *testing.T, srv *httptest.Server, offers []string) (*peer, string, error) {
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	tr := &http.Transport{}
	tr.Clone() // sets TLSNextProto up
	t.Cleanup(tr.CloseIdleConnections)
	addr := srv.Listener.Addr().String()
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, "", err
	}
	rt := tr.TLSNextProto["h2"](addr, tc)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(ctx, http.MethodConnect, srv.URL+"/echo", pr)
	req.Header = http.Header{":protocol": {"websocket"}, "Sec-Websocket-Version": {"13"}}
	for _, o := range offers {
		req.Header.Add("Sec-Websocket-Extensions", o)
	}
	hctx, hcancel := context.WithTimeout(ctx, 3*time.Second)
	defer hcancel()
	stop := context.AfterFunc(hctx, cancel)
	resp, err := rt.RoundTrip(req)
	if !stop() && err == nil {
		err = errors.New("handshake timed out")
	}
	if err != nil {
		cancel()
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		return nil, "", fmt.Errorf("handshake: status %s", resp.Status)
	}
	if resp.Header.Get("Sec-Websocket-Accept") != "" {
		cancel()
		return nil, "", errors.New("handshake: Sec-WebSocket-Accept on HTTP/2 (RFC 8441 §5)")
	}
	c := &streamConn{r: resp.Body, w: pw, abort: func() { cancel(); resp.Body.Close() }, abortWrite: cancel, end: func() {
		pw.Close()
		resp.Body.Close()
		cancel()
	}}
	t.Cleanup(func() { c.Close() })
	ext := strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
	return &peer{conn: c, br: bufio.NewReaderSize(c, 64<<10), isClient: true}, ext, nil
}

// startClientH2 is startClient over an HTTP/2 stream: the implementation's
// Dialer (with an HTTP2Pool) connects to an HTTP/2 server that hands the
// CONNECT stream to the raw server.
func startClientH2(t *testing.T, tc tcase, release <-chan struct{}) (*peer, <-chan error) {
	var resp string
	if tc.comp != nil {
		resp = tc.comp.resp
	}
	type accepted struct {
		p     *peer
		offer string
		err   error
	}
	acc := make(chan accepted, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Header.Get(":protocol") != "websocket" || r.Header.Get("Sec-Websocket-Version") != "13" {
			acc <- accepted{err: fmt.Errorf("bad opening handshake from client: %s %v", r.Method, r.Header)}
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		if resp != "" {
			w.Header().Set("Sec-WebSocket-Extensions", resp)
		}
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		rc.Flush()
		ended := make(chan struct{})
		c := &streamConn{r: r.Body, w: w, flush: rc.Flush,
			abort:      func() { r.Body.Close() },
			abortWrite: func() { rc.SetWriteDeadline(time.Unix(1, 0)) }, // resets the stream
			end:        func() { close(ended) },
		}
		acc <- accepted{p: &peer{conn: c, br: bufio.NewReaderSize(c, 64<<10), keys: map[[4]byte]int{}},
			offer: strings.Join(r.Header.Values("Sec-WebSocket-Extensions"), ", ")}
		select {
		case <-ended: // the raw server closes: END_STREAM
		case <-time.After(30 * time.Second):
		}
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	appErr := make(chan error, 1)
	done := make(chan struct{})
	compCh := make(chan bool, 1)
	t.Cleanup(func() { waitApp(t, done) })
	pool := &websocket.HTTP2Pool{}
	t.Cleanup(pool.CloseIdleConnections)
	go func() {
		defer close(done)
		d := websocket.Dialer{HandshakeTimeout: 3 * time.Second, HTTP2: pool,
			TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
		tc.comp.configure(&d)
		c, hresp, err := d.Dial("wss"+strings.TrimPrefix(srv.URL, "https")+"/echo", nil)
		if err != nil {
			appErr <- fmt.Errorf("dial: %w", err)
			return
		}
		if hresp.ProtoMajor != 2 {
			c.CloseNow()
			appErr <- fmt.Errorf("dial: over %s, want HTTP/2", hresp.Proto)
			return
		}
		compCh <- compressed(c)
		if tc.readLimit > 0 {
			c.SetReadLimit(tc.readLimit)
		}
		appErr <- echoMessages(c)
		closeAfter(c, release)
	}()
	var a accepted
	select {
	case a = <-acc:
	case err := <-appErr:
		t.Fatalf("%s client did not connect over HTTP/2: %v", implName, err)
	case <-time.After(3 * time.Second):
		t.Fatalf("%s client did not connect over HTTP/2", implName)
	}
	if a.err != nil {
		t.Fatalf("opening handshake with %s client: %v", implName, a.err)
	}
	p := a.p
	t.Cleanup(func() { p.conn.Close() })
	p.sutCompressed = compCh
	if tc.comp == nil {
		if a.offer != "" {
			t.Fatalf("%s client offered extensions %q without compression enabled", implName, a.offer)
		}
		return p, appErr
	}
	if a.offer != tc.comp.latchOffer() {
		t.Fatalf("%s client offered Sec-WebSocket-Extensions %q, want %q", implName, a.offer, tc.comp.latchOffer())
	}
	if resp != "" {
		var err error
		if p.z, err = newPMD(resp, a.offer, false); err != nil {
			t.Fatalf("raw server cannot use its own response %q: %v", resp, err)
		}
	}
	return p, appErr
}
