package websocket

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HTTP2Pool lets a [Dialer] open WebSockets as streams of HTTP/2
// connections (RFC 8441), and holds those connections: the WebSockets a
// Dialer opens to one server share one TCP+TLS connection, up to the
// number of streams the server allows at once, then the next one opens.
// The zero value is ready to use; it is safe for concurrent use.
//
// A wss:// dial offers ALPN "h2" and "http/1.1". When the server picks h2
// and announces SETTINGS_ENABLE_CONNECT_PROTOCOL in its first SETTINGS
// frame, the WebSocket is an extended CONNECT on a new stream. When it
// picks HTTP/1.1, the dial goes on with an HTTP/1.1 upgrade on the same
// connection; when it speaks h2 without extended CONNECT (Go servers by
// default), the dial makes an HTTP/1.1 connection and the pool remembers
// that server for later dials.
type HTTP2Pool struct {
	// PriorKnowledge dials ws:// URLs as cleartext HTTP/2 without
	// negotiation (RFC 9113 §3.3), for servers and proxies that speak h2c.
	// A server that does not gets an HTTP/2 preface it cannot parse: the
	// dial fails.
	PriorKnowledge bool

	once   sync.Once
	h2     func(authority string, c *tls.Conn) http.RoundTripper // hands a connection to net/http's HTTP/2 client
	h2c    func(authority string, c *tls.Conn) http.RoundTripper
	closer *http.Transport // CloseIdleConnections reaches the HTTP/2 pool through it

	mu         sync.Mutex
	rt         http.RoundTripper // guarded by mu; nil until the first connection
	rtc        http.RoundTripper // guarded by mu; the cleartext one
	noXConnect map[string]bool   // guarded by mu; servers speaking h2 without extended CONNECT
}

// maxRemembered bounds HTTP2Pool.noXConnect.
const maxRemembered = 1024

func (p *HTTP2Pool) init() {
	p.once.Do(func() {
		t := &http.Transport{IdleConnTimeout: 90 * time.Second}
		t.Clone() // sets t.TLSNextProto up, as the first request would
		p.h2 = t.TLSNextProto["h2"]
		p.h2c = t.TLSNextProto["unencrypted_http2"]
		p.closer = t
	})
}

// CloseIdleConnections closes the pool's connections that carry no
// WebSocket.
func (p *HTTP2Pool) CloseIdleConnections() {
	p.init()
	p.closer.CloseIdleConnections()
}

// errNoExtendedConnect is how net/http's HTTP/2 client reports a server
// without SETTINGS_ENABLE_CONNECT_PROTOCOL (the error is not exported).
const errNoExtendedConnect = "extended connect not supported by peer"

func isNoCachedConn(err error) bool {
	var nc interface{ IsHTTP2NoCachedConnError() }
	return errors.As(err, &nc)
}

// dialHTTP2 opens a WebSocket over HTTP/2 for DialContext, or returns the
// connection DialContext should upgrade over HTTP/1.1 instead (nil: dial
// one). req is DialContext's HTTP/1.1 request.
func (d *Dialer) dialHTTP2(ctx context.Context, req *http.Request, hs handshakeCheck) (*Conn, *http.Response, net.Conn, error) {
	p := d.HTTP2
	p.init()
	cleartext := req.URL.Scheme == "http"
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), defaultPort(req.URL.Scheme))
	}
	p.mu.Lock()
	rt := p.rt
	if cleartext {
		rt = p.rtc
	}
	skip := p.noXConnect[addr]
	p.mu.Unlock()
	if skip {
		return nil, nil, nil, nil
	}
	for range 2 {
		if rt != nil {
			c, resp, err := d.roundTripHTTP2(ctx, rt, req, hs)
			switch {
			case err == nil:
				return c, resp, nil, nil
			case isNoCachedConn(err):
				// Every connection is busy or gone: open one.
			case strings.Contains(err.Error(), errNoExtendedConnect):
				p.remember(addr)
				return nil, nil, nil, nil
			default:
				return nil, resp, nil, err
			}
		}
		if cleartext {
			nc, err := d.dialConn(ctx, req, nil)
			if err != nil {
				return nil, nil, nil, err
			}
			// net/http takes a cleartext connection for HTTP/2 wrapped in
			// a *tls.Conn that is never used, through this method.
			rt = p.h2c(addr, tls.Client(unencrypted{nc}, &tls.Config{}))
			p.mu.Lock()
			p.rtc = rt
			p.mu.Unlock()
			continue
		}
		nc, err := d.dialConn(ctx, req, []string{"h2", "http/1.1"})
		if err != nil {
			return nil, nil, nil, err
		}
		tc, ok := nc.(*tls.Conn)
		if !ok || tc.ConnectionState().NegotiatedProtocol != "h2" {
			return nil, nil, nc, nil // HTTP/1.1 on this connection
		}
		rt = p.h2(addr, tc)
		p.mu.Lock()
		p.rt = rt
		p.mu.Unlock()
	}
	return nil, nil, nil, errors.New("websocket: no HTTP/2 connection could take the stream")
}

func (p *HTTP2Pool) remember(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.noXConnect == nil || len(p.noXConnect) >= maxRemembered {
		p.noXConnect = make(map[string]bool)
	}
	p.noXConnect[addr] = true
}

// unencrypted carries a cleartext connection through net/http's TLSNextProto
// hand-off (see http.Transport's "unencrypted_http2" entry).
type unencrypted struct{ net.Conn }

func (u unencrypted) UnencryptedNetConn() net.Conn { return u.Conn }

// h2RequestHeader is the request header of the extended CONNECT: the
// handshake's, less what HTTP/2 forbids or RFC 8441 §5 leaves out.
func h2RequestHeader(h http.Header) http.Header {
	out := make(http.Header, len(h)+1)
	for k, vs := range h {
		switch http.CanonicalHeaderKey(k) {
		case "Upgrade", "Connection", "Sec-Websocket-Key", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Host":
			continue
		}
		out[k] = vs
	}
	out[":protocol"] = []string{h2Protocol}
	return out
}

// roundTripHTTP2 sends the extended CONNECT on rt and checks the answer.
func (d *Dialer) roundTripHTTP2(ctx context.Context, rt http.RoundTripper, req *http.Request, hs handshakeCheck) (*Conn, *http.Response, error) {
	// The stream lives as long as its request's context: not the dial's.
	streamCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var tcp net.Conn
	streamCtx = httptrace.WithClientTrace(streamCtx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { tcp = info.Conn },
	})
	stop := context.AfterFunc(ctx, cancel)
	pr, pw := io.Pipe()
	u := *req.URL
	h2req := &http.Request{
		Method:        http.MethodConnect,
		URL:           &u,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        h2RequestHeader(req.Header),
		Host:          req.Host,
		Body:          pr,
		ContentLength: -1,
	}
	h2req = h2req.WithContext(streamCtx)
	resp, err := rt.RoundTrip(h2req)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		pw.Close()
		if resp != nil {
			resp.Body.Close()
		}
		return nil, nil, ctxErr(ctx, err)
	}
	// RFC 8441 §5: a 2xx answer opens the WebSocket.
	if resp.StatusCode != http.StatusOK {
		cancel()
		pw.Close()
		keepBody(resp)
		return nil, resp, ErrBadHandshake
	}
	subprotocol, compression, err := hs.check(resp)
	if err != nil {
		cancel()
		pw.Close()
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(""))
		return nil, resp, err
	}
	nc := &h2ClientConn{body: resp.Body, pw: pw, cancel: cancel}
	if tcp != nil {
		nc.local, nc.remote = tcp.LocalAddr(), tcp.RemoteAddr()
	} else {
		nc.local, nc.remote = h2Addr(""), h2Addr(req.URL.Host)
	}
	resp.Body = io.NopCloser(strings.NewReader(""))
	return newConn(nc, d.connConfig(subprotocol, nil, compression)), resp, nil
}

// h2ClientConn is a net.Conn over one client HTTP/2 stream: reads take the
// response body, writes feed the request body. A deadline that passes
// resets the stream (as on the server side, see h2Conn): reads and writes
// then fail with a timeout.
type h2ClientConn struct {
	body          io.ReadCloser
	pw            *io.PipeWriter
	cancel        context.CancelFunc // resets the stream
	local, remote net.Addr           // immutable

	mu      sync.Mutex  // guards the timers
	rTimer  *time.Timer // read deadline
	wTimer  *time.Timer // write deadline
	expired atomic.Bool // a deadline passed: the stream is reset
	closed  atomic.Bool
	abort   atomic.Bool // set before Close: reset instead of END_STREAM
}

var errH2Timeout = &net.OpError{Op: "read", Net: "http2", Err: os.ErrDeadlineExceeded}

func (c *h2ClientConn) Read(p []byte) (int, error) {
	n, err := c.body.Read(p)
	if err != nil && c.expired.Load() {
		err = errH2Timeout
	} else if err != nil && c.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

func (c *h2ClientConn) Write(p []byte) (int, error) {
	n, err := c.pw.Write(p)
	if err != nil && c.expired.Load() {
		err = &net.OpError{Op: "write", Net: "http2", Err: os.ErrDeadlineExceeded}
	} else if err != nil && c.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

// Close ends the stream with END_STREAM after a closing handshake,
// otherwise resets it.
func (c *h2ClientConn) Close() error {
	if c.closed.Swap(true) {
		return net.ErrClosed
	}
	c.mu.Lock()
	for _, t := range []*time.Timer{c.rTimer, c.wTimer} {
		if t != nil {
			t.Stop()
		}
	}
	c.mu.Unlock()
	if c.abort.Load() {
		c.cancel() // RST_STREAM (RFC 8441 §5)
	}
	c.pw.Close() // END_STREAM
	c.body.Close()
	c.cancel()
	return nil
}

// CloseWrite ends the client's half of the stream (END_STREAM), where TCP
// would send FIN; the server's answer can still be read.
func (c *h2ClientConn) CloseWrite() error { return c.pw.Close() }

func (c *h2ClientConn) expire() {
	c.expired.Store(true)
	c.cancel()
	c.pw.CloseWithError(os.ErrDeadlineExceeded)
}

func (c *h2ClientConn) setTimer(t **time.Timer, deadline time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
	if deadline.IsZero() || c.closed.Load() {
		return
	}
	d := time.Until(deadline)
	if d <= 0 {
		go c.expire()
		return
	}
	*t = time.AfterFunc(d, c.expire)
}

func (c *h2ClientConn) SetReadDeadline(t time.Time) error {
	c.setTimer(&c.rTimer, t)
	return nil
}

func (c *h2ClientConn) SetWriteDeadline(t time.Time) error {
	c.setTimer(&c.wTimer, t)
	return nil
}

func (c *h2ClientConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *h2ClientConn) LocalAddr() net.Addr  { return c.local }
func (c *h2ClientConn) RemoteAddr() net.Addr { return c.remote }

// streamConn is a WebSocket's HTTP/2 stream, h2Conn or h2ClientConn: a
// deadline that passes ends the stream, and a close without the closing
// handshake resets it.
type streamConn interface {
	net.Conn
	abortOnClose()
}

func (c *h2Conn) abortOnClose()       { c.abort.Store(true) }
func (c *h2ClientConn) abortOnClose() { c.abort.Store(true) }
