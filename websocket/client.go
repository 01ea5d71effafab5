package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"github.com/latchws/latch/internal/deflate"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// A Dialer contains options for connecting to a WebSocket server. It is
// safe to call Dialer's methods concurrently.
type Dialer struct {
	// NetDial specifies the dial function for creating TCP connections. If
	// NetDial is nil, net.Dialer DialContext is used.
	NetDial func(network, addr string) (net.Conn, error)

	// NetDialContext specifies the dial function for creating TCP
	// connections. If NetDialContext is nil, NetDial is used.
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// NetDialTLSContext specifies the dial function for creating TLS/TCP
	// connections. If NetDialTLSContext is nil, NetDialContext is used and
	// TLS runs on top of it. If it is set, the connection it returns is used
	// as is for wss URLs (and TLSClientConfig is ignored).
	NetDialTLSContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// Proxy specifies a function to return a proxy for a given Request. If
	// the function returns a non-nil error, the request is aborted with the
	// provided error. If Proxy is nil or returns a nil *URL, no proxy is
	// used. HTTP and HTTPS proxies are supported, through CONNECT.
	Proxy func(*http.Request) (*url.URL, error)

	// TLSClientConfig specifies the TLS configuration to use with tls.Client.
	// If nil, the default configuration is used.
	TLSClientConfig *tls.Config

	// HandshakeTimeout specifies the duration for the handshake to complete.
	HandshakeTimeout time.Duration

	// ReadBufferSize and WriteBufferSize specify I/O buffer sizes in bytes. If
	// a buffer size is zero, a size of 4096 is used. The sizes do not limit
	// the size of the messages that can be sent or received.
	ReadBufferSize, WriteBufferSize int

	// WriteBufferPool is a pool of buffers for write operations. If nil, a
	// pool shared by the package is used.
	WriteBufferPool BufferPool

	// Subprotocols specifies the client's requested subprotocols.
	Subprotocols []string

	// EnableCompression specifies if the client should attempt to negotiate
	// per message compression (RFC 7692).
	EnableCompression bool

	// CompressionLevel, CompressionThreshold and CompressionContextTakeover
	// have the meaning of the Upgrader fields of the same names.
	CompressionLevel           int
	CompressionThreshold       int
	CompressionContextTakeover bool

	// CompressionMaxWindowBits is the LZ77 window (RFC 7692 §7.1.2) the
	// client asks for. 8..14 asks for at most 2^N bytes both ways: the
	// offer gets server_max_window_bits=N and client_max_window_bits=N, and
	// a server that cannot honour them declines compression. 15 only offers
	// client_max_window_bits, which lets the server pick a smaller window
	// for this client. Either way the client compresses within the window
	// the response names. 0: neither parameter is offered. Smaller windows
	// compress worse (docs/compression.md).
	CompressionMaxWindowBits int

	// Jar specifies the cookie jar. If Jar is nil, cookies are not sent in
	// requests and ignored in responses.
	Jar http.CookieJar

	// ReadLimit is the initial read limit of connections (see
	// Conn.SetReadLimit): 0 means DefaultReadLimit, < 0 no limit.
	ReadLimit int64

	// CloseTimeout bounds the closing handshake (see Conn.SetCloseTimeout);
	// 0 means DefaultCloseTimeout.
	CloseTimeout time.Duration

	// HeartbeatInterval and HeartbeatTimeout configure the heartbeat of new
	// connections (see Conn.SetHeartbeat). Unlike on the server, the
	// heartbeat is off unless HeartbeatInterval > 0.
	HeartbeatInterval, HeartbeatTimeout time.Duration

	// MessageTimeout and MinMessageRate bound how slowly the server may
	// send a message it has begun (see Conn.SetMessageTimeout), and
	// WriteStallTimeout how long a write may wait for the server to take a
	// byte (see Conn.SetWriteStallTimeout). Unlike on the server, both are
	// off unless set > 0; a MinMessageRate of 0 means
	// DefaultMinMessageRate, < 0 no extension.
	MessageTimeout    time.Duration
	MinMessageRate    int
	WriteStallTimeout time.Duration

	// HTTP2, when set, opens wss:// WebSockets over HTTP/2 (RFC 8441) where
	// the server offers it, sharing the pool's connections, and falls back
	// to HTTP/1.1 where it does not (see HTTP2Pool). nil: HTTP/1.1 only,
	// as gorilla. A proxy (Proxy) or NetDialTLSContext connection is used
	// for HTTP/2 as well when it negotiates h2.
	HTTP2 *HTTP2Pool
}

// DefaultDialer is a dialer with all fields set to the default values.
var DefaultDialer = &Dialer{
	Proxy:            http.ProxyFromEnvironment,
	HandshakeTimeout: 45 * time.Second,
}

// nilDialer is used when Dial is called on a nil *Dialer.
var nilDialer = *DefaultDialer

// Dial creates a new client connection by calling DialContext with a
// background context.
func (d *Dialer) Dial(urlStr string, requestHeader http.Header) (*Conn, *http.Response, error) {
	return d.DialContext(context.Background(), urlStr, requestHeader)
}

var (
	errMalformedURL  = errors.New("websocket: malformed ws or wss URL")
	errBadWindowBits = errors.New("websocket: Dialer.CompressionMaxWindowBits must be 0 or 8..15")
)

// DialContext creates a new client connection. Use requestHeader to specify
// the origin (Origin), subprotocols (Sec-WebSocket-Protocol) and cookies
// (Cookie). Use the response.Header to get the selected subprotocol
// (Sec-WebSocket-Protocol) and cookies (Set-Cookie).
//
// The context bounds the dial and the handshake, together with
// HandshakeTimeout; it does not affect the connection once established.
//
// If the WebSocket handshake fails, ErrBadHandshake is returned along with
// a non-nil *http.Response so that callers can handle redirects,
// authentication, etcetera. Up to 1 KiB of the response body is kept.
func (d *Dialer) DialContext(ctx context.Context, urlStr string, requestHeader http.Header) (*Conn, *http.Response, error) {
	if d == nil {
		d = &nilDialer
	}
	u, err := url.Parse(urlStr)
	if err != nil {
		return nil, nil, err
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return nil, nil, errMalformedURL
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, nil, errMalformedURL
	}
	if u.User != nil {
		// User name and password are not allowed in websocket URIs.
		return nil, nil, errMalformedURL
	}
	if b := d.CompressionMaxWindowBits; b != 0 && (b < minWindowBits || b > maxWindowBits) {
		return nil, nil, errBadWindowBits
	}

	req := &http.Request{
		Method:     http.MethodGet,
		URL:        u,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header),
		Host:       u.Host,
	}
	req = req.WithContext(ctx)
	if d.Jar != nil {
		for _, cookie := range d.Jar.Cookies(u) {
			req.AddCookie(cookie)
		}
	}
	challengeKey, err := newChallengeKey()
	if err != nil {
		return nil, nil, err
	}
	// RFC 6455 §4.1: the handshake's required headers.
	req.Header["Upgrade"] = []string{"websocket"}
	req.Header["Connection"] = []string{"Upgrade"}
	req.Header["Sec-WebSocket-Key"] = []string{challengeKey}
	req.Header["Sec-WebSocket-Version"] = []string{"13"}
	if len(d.Subprotocols) > 0 {
		req.Header["Sec-WebSocket-Protocol"] = []string{strings.Join(d.Subprotocols, ", ")}
	}
	deflateConfig := deflate.Config{ContextTakeover: d.CompressionContextTakeover, MaxWindowBits: d.CompressionMaxWindowBits}
	if d.EnableCompression {
		req.Header["Sec-WebSocket-Extensions"] = []string{deflate.Offer(deflateConfig)}
	}
	for k, vs := range requestHeader {
		switch {
		case k == "Host":
			if len(vs) > 0 {
				req.Host = vs[0]
			}
		case k == "Upgrade" || k == "Connection" || k == "Sec-Websocket-Key" ||
			k == "Sec-Websocket-Version" || k == "Sec-Websocket-Extensions" ||
			(k == "Sec-Websocket-Protocol" && len(d.Subprotocols) > 0):
			return nil, nil, errors.New("websocket: duplicate header not allowed: " + k)
		case k == "Sec-Websocket-Protocol":
			req.Header["Sec-WebSocket-Protocol"] = vs
		default:
			req.Header[k] = vs
		}
	}

	if d.HandshakeTimeout != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.HandshakeTimeout)
		defer cancel()
	}

	hs := handshakeCheck{d: d, requestHeader: requestHeader, deflate: deflateConfig, url: u}
	var netConn net.Conn
	if d.HTTP2 != nil && (u.Scheme == "https" || d.HTTP2.PriorKnowledge) {
		var c *Conn
		var resp *http.Response
		c, resp, netConn, err = d.dialHTTP2(ctx, req, hs)
		if c != nil || err != nil {
			return c, resp, err
		}
	}
	if netConn == nil {
		netConn, err = d.dialConn(ctx, req, []string{"http/1.1"})
		if err != nil {
			return nil, nil, err
		}
	}
	ok := false
	defer func() {
		if !ok {
			netConn.Close()
		}
	}()
	// Let the context interrupt the handshake I/O.
	stop := context.AfterFunc(ctx, func() { netConn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, has := ctx.Deadline(); has {
		netConn.SetDeadline(dl)
	}

	if err := req.Write(netConn); err != nil {
		return nil, nil, ctxErr(ctx, err)
	}
	br := bufio.NewReaderSize(&headLimit{r: netConn, left: maxResponseHead}, 1024)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, ctxErr(ctx, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		!headerHasToken(resp.Header, "Upgrade", "websocket") ||
		!headerHasToken(resp.Header, "Connection", "upgrade") ||
		resp.Header.Get("Sec-Websocket-Accept") != acceptKey(challengeKey) {
		hs.cookies(resp)
		keepBody(resp)
		return nil, resp, ErrBadHandshake
	}
	subprotocol, compression, err := hs.check(resp)
	resp.Body = io.NopCloser(bytes.NewReader(nil))
	if err != nil {
		return nil, resp, err
	}

	var buffered []byte
	if n := br.Buffered(); n > 0 {
		buffered, _ = br.Peek(n)
		buffered = append([]byte(nil), buffered...)
	}
	stop()
	netConn.SetDeadline(time.Time{})
	ok = true
	return newConn(netConn, d.connConfig(subprotocol, buffered, compression)), resp, nil
}

// handshakeCheck checks a handshake response, over HTTP/1.1 or HTTP/2.
type handshakeCheck struct {
	d             *Dialer
	requestHeader http.Header
	deflate       deflate.Config
	url           *url.URL
}

func (hs handshakeCheck) cookies(resp *http.Response) {
	if hs.d.Jar != nil {
		if rc := resp.Cookies(); len(rc) > 0 {
			hs.d.Jar.SetCookies(hs.url, rc)
		}
	}
}

// check takes the cookies of a successful handshake response and checks
// its extensions and subprotocol: RFC 6455 §4.1, fail on an extension or
// subprotocol we did not offer.
func (hs handshakeCheck) check(resp *http.Response) (subprotocol string, compression *compressionConfig, err error) {
	d := hs.d
	hs.cookies(resp)
	if ext := resp.Header["Sec-Websocket-Extensions"]; len(ext) > 0 {
		if !d.EnableCompression {
			return "", nil, errors.New("websocket: server selected an extension that was not offered")
		}
		exts, err := deflate.ParseExtensions(ext)
		var params deflate.Params
		if err == nil {
			params, err = deflate.Verify(exts, hs.deflate)
		}
		if err != nil {
			return "", nil, errors.New("websocket: bad Sec-WebSocket-Extensions in response: " + err.Error())
		}
		compression = &compressionConfig{params: params, level: d.CompressionLevel, threshold: d.CompressionThreshold}
	}
	subprotocol = resp.Header.Get("Sec-Websocket-Protocol")
	if subprotocol != "" && !contains(d.Subprotocols, subprotocol) && !contains(headerTokens(hs.requestHeader, "Sec-Websocket-Protocol"), subprotocol) {
		return "", nil, errors.New("websocket: server selected a subprotocol that was not offered: " + subprotocol)
	}
	return subprotocol, compression, nil
}

// keepBody keeps a little of a refusal's body for the caller to read.
func keepBody(resp *http.Response) {
	buf := make([]byte, 1024)
	n, _ := io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(buf[:n]))
}

// connConfig is the configuration of a client Conn made by d.
func (d *Dialer) connConfig(subprotocol string, buffered []byte, compression *compressionConfig) connConfig {
	return connConfig{
		isServer:          false,
		subprotocol:       subprotocol,
		readBufSize:       d.ReadBufferSize,
		writeBufSize:      d.WriteBufferSize,
		writePool:         d.WriteBufferPool,
		readLimit:         d.ReadLimit,
		closeTimeout:      d.CloseTimeout,
		heartbeatInterval: d.HeartbeatInterval,
		heartbeatTimeout:  d.HeartbeatTimeout,
		messageTimeout:    d.MessageTimeout,
		minMessageRate:    messageRate(d.MinMessageRate),
		writeStall:        d.WriteStallTimeout,
		buffered:          buffered,
		compression:       compression,
	}
}

// maxResponseHead bounds the server's handshake response head, as
// net/http's Transport bounds a response's headers: a server could
// otherwise make the client buffer without end.
const maxResponseHead = 256 << 10

var errResponseHeadTooLarge = errors.New("websocket: handshake response head larger than 256 KiB")

// headLimit reads the handshake response, failing past left bytes.
type headLimit struct {
	r    io.Reader
	left int
}

func (l *headLimit) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errResponseHeadTooLarge
	}
	n, err := l.r.Read(p[:min(len(p), l.left)])
	l.left -= n
	return n, err
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ctxErr prefers the context's error when it is what interrupted the I/O.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// The connection's deadline equals the context's and may fire first.
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}

func newChallengeKey() (string, error) {
	var p [16]byte
	if _, err := rand.Read(p[:]); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(p[:]), nil
}

// dialConn opens the transport: directly or through a proxy, then TLS for
// https.
func (d *Dialer) dialConn(ctx context.Context, req *http.Request, nextProtos []string) (net.Conn, error) {
	u := req.URL
	hostPort := u.Host
	if u.Port() == "" {
		hostPort = net.JoinHostPort(u.Hostname(), defaultPort(u.Scheme))
	}

	netDial := d.NetDialContext
	if netDial == nil && d.NetDial != nil {
		nd := d.NetDial
		netDial = func(ctx context.Context, network, addr string) (net.Conn, error) { return nd(network, addr) }
	}
	if netDial == nil {
		var nd net.Dialer
		netDial = nd.DialContext
	}
	useTLSDial := u.Scheme == "https" && d.NetDialTLSContext != nil

	var proxyURL *url.URL
	if d.Proxy != nil {
		var err error
		proxyURL, err = d.Proxy(req)
		if err != nil {
			return nil, err
		}
	}
	var conn net.Conn
	var err error
	switch {
	case proxyURL != nil:
		conn, err = dialViaProxy(ctx, proxyURL, hostPort, netDial, d.TLSClientConfig)
	case useTLSDial:
		return d.NetDialTLSContext(ctx, "tcp", hostPort)
	default:
		conn, err = netDial(ctx, "tcp", hostPort)
	}
	if err != nil {
		return nil, err
	}
	if u.Scheme != "https" {
		return conn, nil
	}
	cfg := d.TLSClientConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	// An upgrade is an HTTP/1.1 request: ALPN offers h2 only when an
	// HTTP2Pool can take it.
	cfg.NextProtos = nextProtos
	tlsConn := tls.Client(conn, cfg)
	if err := tlsConn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tlsConn, nil
}

// NewClient creates a new client connection using the given net connection.
// The URL u specifies the host and request URI. Use requestHeader to specify
// the origin (Origin), subprotocols (Sec-WebSocket-Protocol) and cookies
// (Cookie). Use the response.Header to get the selected subprotocol
// (Sec-WebSocket-Protocol) and cookies (Set-Cookie).
//
// If the WebSocket handshake fails, ErrBadHandshake is returned along with a
// non-nil *http.Response so that callers can handle redirects,
// authentication, etc.
//
// Deprecated: Use Dialer instead.
func NewClient(netConn net.Conn, u *url.URL, requestHeader http.Header, readBufSize, writeBufSize int) (c *Conn, response *http.Response, err error) {
	given := func(context.Context, string, string) (net.Conn, error) { return netConn, nil }
	d := Dialer{
		ReadBufferSize:    readBufSize,
		WriteBufferSize:   writeBufSize,
		NetDialContext:    given,
		NetDialTLSContext: given, // netConn is used as it is, TLS or not
	}
	target := *u
	switch target.Scheme {
	case "http":
		target.Scheme = "ws"
	case "https":
		target.Scheme = "wss"
	}
	return d.Dial(target.String(), requestHeader)
}
