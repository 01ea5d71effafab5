package websocket

import (
	"github.com/latchws/latch/internal/deflate"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// Upgrader specifies parameters for upgrading an HTTP connection to a
// WebSocket connection. It is safe to call Upgrade concurrently.
type Upgrader struct {
	// HandshakeTimeout specifies the duration for the handshake to complete.
	HandshakeTimeout time.Duration

	// ReadBufferSize and WriteBufferSize specify I/O buffer sizes in bytes. If
	// a buffer size is zero, a size of 4096 is used. Buffers are taken from
	// pools per message, so an idle connection holds none; the sizes do not
	// limit the size of the messages that can be sent or received.
	ReadBufferSize, WriteBufferSize int

	// WriteBufferPool is a pool of buffers for write operations. If nil, a
	// pool shared by the package is used.
	WriteBufferPool BufferPool

	// Subprotocols specifies the server's supported protocols in order of
	// preference. If this field is not nil, Upgrade negotiates a subprotocol
	// by selecting the first match in this list with a protocol requested by
	// the client. If there's no match, then no protocol is negotiated.
	Subprotocols []string

	// Error specifies the function for generating HTTP error responses. If
	// Error is nil, then http.Error is used to generate the HTTP response.
	Error func(w http.ResponseWriter, r *http.Request, status int, reason error)

	// CheckOrigin returns true if the request Origin header is acceptable. If
	// CheckOrigin is nil, the Origin must be the request's own origin (same
	// host and port, and https when the request came over TLS) or match one
	// of OriginPatterns. A request without an Origin header is accepted: it
	// does not come from a browser.
	CheckOrigin func(r *http.Request) bool

	// EnableCompression specifies if the server should attempt to negotiate
	// per message compression (RFC 7692). It is accepted when the client
	// offers it; see the Compression fields for the details.
	EnableCompression bool

	// CompressionLevel is the flate level of new connections (see
	// Conn.SetCompressionLevel); 0 means 1 (flate.BestSpeed).
	CompressionLevel int

	// CompressionThreshold is the size below which messages are sent
	// uncompressed (a NextWriter stream is compressed once it reaches the
	// threshold or fills the write buffer): 0 means
	// DefaultCompressionThreshold, < 0 compresses every message.
	CompressionThreshold int

	// CompressionContextTakeover keeps the compression context between
	// messages in both directions, when the client allows it: better
	// compression of similar messages for about 1.2 MiB of memory per
	// connection (see docs/compression.md). Off, both sides compress each
	// message on its own and an idle connection holds no compression state.
	CompressionContextTakeover bool

	// OriginPatterns lists further origins accepted by the default origin
	// check, as host patterns matched with path.Match, case-insensitively:
	// "example.com", "*.example.com", "localhost:*". A pattern with a scheme
	// ("https://example.com") also matches the scheme.
	OriginPatterns []string

	// ReadLimit is the initial read limit of connections (see
	// Conn.SetReadLimit): 0 means DefaultReadLimit, < 0 no limit.
	ReadLimit int64

	// CloseTimeout bounds the closing handshake (see Conn.SetCloseTimeout);
	// 0 means DefaultCloseTimeout.
	CloseTimeout time.Duration

	// HeartbeatInterval and HeartbeatTimeout configure the heartbeat of new
	// connections (see Conn.SetHeartbeat). An interval of 0 means
	// DefaultHeartbeatInterval; < 0 turns the heartbeat off. A timeout of 0
	// means the interval.
	HeartbeatInterval, HeartbeatTimeout time.Duration

	// MessageTimeout and MinMessageRate bound how slowly a client may send
	// a message it has begun (see Conn.SetMessageTimeout): it must arrive
	// within MessageTimeout, extended by one second for every
	// MinMessageRate bytes received, or the connection fails with close
	// 1008. A MessageTimeout of 0 means DefaultMessageTimeout, < 0 turns
	// the bound off; a MinMessageRate of 0 means DefaultMinMessageRate,
	// < 0 no extension. gorilla has no such bound: a message that trickles
	// holds its connection for good.
	MessageTimeout time.Duration
	MinMessageRate int

	// WriteStallTimeout fails a write, and closes the connection, when the
	// client takes no byte of it for this long (see
	// Conn.SetWriteStallTimeout): 0 means DefaultWriteStallTimeout, < 0
	// turns the bound off. gorilla's writes wait for as long as the client
	// does not read, unless a write deadline is set.
	WriteStallTimeout time.Duration
}

func (u *Upgrader) returnError(w http.ResponseWriter, r *http.Request, status int, reason string) (*Conn, error) {
	err := HandshakeError{reason}
	if u.Error != nil {
		u.Error(w, r, status, err)
	} else {
		w.Header().Set("Sec-Websocket-Version", "13")
		http.Error(w, http.StatusText(status)+": "+reason, status)
	}
	return nil, err
}

// Upgrade upgrades the HTTP server connection to the WebSocket protocol.
//
// The responseHeader is included in the response to the client's upgrade
// request. Use the responseHeader to specify cookies (Set-Cookie). To
// specify subprotocols supported by the server, set Upgrader.Subprotocols
// directly.
//
// If the upgrade fails, then Upgrade replies to the client with an HTTP
// error response — 400 for a malformed request (naming what is missing),
// 403 for a rejected origin, 405 for a method other than GET, 426 for a
// WebSocket version other than 13 — and returns a HandshakeError.
//
// Over HTTP/2, Upgrade accepts an extended CONNECT with :protocol websocket
// (RFC 8441) with the same checks, answers 200 and returns a Conn over the
// stream; a CONNECT for another protocol gets 501, any other HTTP/2 request
// 400. The handler must then not return before the connection is closed
// (see [Conn.Done] and the package's HTTP/2 section).
func (u *Upgrader) Upgrade(w http.ResponseWriter, r *http.Request, responseHeader http.Header) (*Conn, error) {
	const badHandshake = "websocket: the client is not using the websocket protocol: "

	if isExtendedConnect(r) {
		return u.upgradeHTTP2(w, r, responseHeader)
	}
	if r.ProtoMajor >= 2 {
		// HTTP/2 has no Upgrade: a WebSocket is an extended CONNECT.
		return u.returnError(w, r, http.StatusBadRequest, badHandshake+"over HTTP/2 a WebSocket is a CONNECT with :protocol websocket (RFC 8441)")
	}
	if !headerHasToken(r.Header, "Connection", "upgrade") {
		return u.returnError(w, r, http.StatusBadRequest, badHandshake+"'upgrade' token not found in 'Connection' header (a proxy in front of this server may be dropping it)")
	}
	if !headerHasToken(r.Header, "Upgrade", "websocket") {
		return u.returnError(w, r, http.StatusBadRequest, badHandshake+"'websocket' token not found in 'Upgrade' header (a proxy in front of this server may be dropping it)")
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return u.returnError(w, r, http.StatusMethodNotAllowed, "websocket: the request method is not GET")
	}
	if !r.ProtoAtLeast(1, 1) {
		return u.returnError(w, r, http.StatusBadRequest, "websocket: the request is not HTTP/1.1 or later")
	}
	if err := u.checkRequest(w, r, responseHeader); err != nil {
		return nil, err
	}
	keys := r.Header["Sec-Websocket-Key"]
	if len(keys) != 1 || !validKey(keys[0]) {
		return u.returnError(w, r, http.StatusBadRequest, "websocket: 'Sec-WebSocket-Key' header is missing or not 16 bytes in base64")
	}
	challengeKey := keys[0]

	subprotocol := u.selectSubprotocol(r, responseHeader)

	extensionResponse, compression := u.negotiateCompression(r)

	netConn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return u.returnError(w, r, http.StatusInternalServerError, "websocket: response does not implement http.Hijacker: "+err.Error())
	}
	var buffered []byte
	if n := brw.Reader.Buffered(); n > 0 {
		// The client sent frames right behind its request; keep them.
		buffered, _ = brw.Reader.Peek(n)
		buffered = append([]byte(nil), buffered...)
	}

	p := make([]byte, 0, 256)
	p = append(p, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	p = append(p, acceptKey(challengeKey)...)
	p = append(p, "\r\n"...)
	if subprotocol != "" {
		p = append(p, "Sec-WebSocket-Protocol: "...)
		p = append(p, subprotocol...)
		p = append(p, "\r\n"...)
	}
	if extensionResponse != "" {
		p = append(p, "Sec-WebSocket-Extensions: "...)
		p = append(p, extensionResponse...)
		p = append(p, "\r\n"...)
	}
	for k, vs := range responseHeader {
		if k == "Sec-Websocket-Protocol" || !isToken(k) {
			// A header name that is not a token could inject headers.
			continue
		}
		for _, v := range vs {
			p = append(p, k...)
			p = append(p, ": "...)
			for i := 0; i < len(v); i++ {
				b := v[i]
				if b <= 31 {
					// Keep header injection out of the response.
					b = ' '
				}
				p = append(p, b)
			}
			p = append(p, "\r\n"...)
		}
	}
	p = append(p, "\r\n"...)

	// Clear deadlines set by the HTTP server; bound the write of the response.
	netConn.SetDeadline(time.Time{})
	if u.HandshakeTimeout > 0 {
		netConn.SetWriteDeadline(time.Now().Add(u.HandshakeTimeout))
	}
	if _, err := netConn.Write(p); err != nil {
		netConn.Close()
		return nil, err
	}
	if u.HandshakeTimeout > 0 {
		netConn.SetWriteDeadline(time.Time{})
	}

	return newConn(netConn, u.connConfig(subprotocol, buffered, compression)), nil
}

// checkRequest makes the checks an HTTP/1.1 upgrade and an HTTP/2
// extended CONNECT share (RFC 6455 §4.2.1, RFC 8441 §5): the version, the
// application's response header and the origin. It answers a failure.
func (u *Upgrader) checkRequest(w http.ResponseWriter, r *http.Request, responseHeader http.Header) error {
	versions := r.Header["Sec-Websocket-Version"]
	if len(versions) > 1 {
		_, err := u.returnError(w, r, http.StatusBadRequest, "websocket: more than one 'Sec-WebSocket-Version' header")
		return err
	}
	switch v := r.Header.Get("Sec-Websocket-Version"); v {
	case "13":
	case "":
		_, err := u.returnError(w, r, http.StatusBadRequest, "websocket: 'Sec-WebSocket-Version' header is missing")
		return err
	default:
		// RFC 6455 §4.4: tell the client which version we speak.
		w.Header().Set("Sec-Websocket-Version", "13")
		_, err := u.returnError(w, r, http.StatusUpgradeRequired, "websocket: unsupported version "+v+": only 13 is supported")
		return err
	}
	if _, ok := responseHeader["Sec-Websocket-Extensions"]; ok {
		_, err := u.returnError(w, r, http.StatusInternalServerError, "websocket: application specific 'Sec-WebSocket-Extensions' headers are unsupported")
		return err
	}
	if u.CheckOrigin != nil {
		if !u.CheckOrigin(r) {
			_, err := u.returnError(w, r, http.StatusForbidden, "websocket: request origin not allowed by Upgrader.CheckOrigin")
			return err
		}
	} else if !u.sameOriginOrAllowed(r) {
		// Say which rule refused it: the default check, not a CheckOrigin
		// the program never set.
		_, err := u.returnError(w, r, http.StatusForbidden, "websocket: request origin not allowed: the Origin header is neither this server's own origin nor in Upgrader.OriginPatterns")
		return err
	}
	return nil
}

// negotiateCompression answers the client's permessage-deflate offers
// (RFC 7692 §5); a malformed offer is declined, not fatal: the client still
// gets a connection, without compression.
func (u *Upgrader) negotiateCompression(r *http.Request) (response string, cfg *compressionConfig) {
	if !u.EnableCompression {
		return "", nil
	}
	offers, err := deflate.ParseExtensions(r.Header["Sec-Websocket-Extensions"])
	if err != nil {
		return "", nil
	}
	resp, params, ok := deflate.Accept(offers, deflate.Config{ContextTakeover: u.CompressionContextTakeover})
	if !ok {
		return "", nil
	}
	return resp, &compressionConfig{params: params, level: u.CompressionLevel, threshold: u.CompressionThreshold}
}

// connConfig is the configuration of a server Conn made by u.
func (u *Upgrader) connConfig(subprotocol string, buffered []byte, compression *compressionConfig) connConfig {
	hbInterval := u.HeartbeatInterval
	if hbInterval == 0 {
		hbInterval = DefaultHeartbeatInterval
	}
	msgTimeout, writeStall := u.MessageTimeout, u.WriteStallTimeout
	if msgTimeout == 0 {
		msgTimeout = DefaultMessageTimeout
	}
	if writeStall == 0 {
		writeStall = DefaultWriteStallTimeout
	}
	return connConfig{
		isServer:          true,
		subprotocol:       subprotocol,
		readBufSize:       u.ReadBufferSize,
		writeBufSize:      u.WriteBufferSize,
		writePool:         u.WriteBufferPool,
		readLimit:         u.ReadLimit,
		closeTimeout:      u.CloseTimeout,
		heartbeatInterval: hbInterval,
		heartbeatTimeout:  u.HeartbeatTimeout,
		messageTimeout:    msgTimeout,
		minMessageRate:    messageRate(u.MinMessageRate),
		writeStall:        writeStall,
		buffered:          buffered,
		compression:       compression,
	}
}

func (u *Upgrader) selectSubprotocol(r *http.Request, responseHeader http.Header) string {
	if u.Subprotocols != nil {
		clientProtocols := Subprotocols(r)
		for _, s := range u.Subprotocols {
			for _, c := range clientProtocols {
				if c == s {
					return s
				}
			}
		}
		return ""
	}
	if responseHeader != nil {
		if p := responseHeader.Get("Sec-Websocket-Protocol"); isToken(p) {
			return p
		}
	}
	return ""
}

// sameOriginOrAllowed is the default origin policy: a browser may connect
// only from the server's own origin or one listed in OriginPatterns
// (RFC 6455 §10.2).
func (u *Upgrader) sameOriginOrAllowed(r *http.Request) bool {
	origin := r.Header["Origin"]
	if len(origin) == 0 {
		return true
	}
	if len(origin) > 1 {
		return false
	}
	o, err := url.Parse(origin[0])
	if err != nil || o.Host == "" || (o.Scheme != "http" && o.Scheme != "https") {
		return u.matchPatterns(origin[0], "", "")
	}
	if sameOrigin(o, r) {
		return true
	}
	return u.matchPatterns(origin[0], o.Scheme, o.Host)
}

func sameOrigin(o *url.URL, r *http.Request) bool {
	if r.TLS != nil && o.Scheme != "https" {
		return false
	}
	oHost, oPort := splitHostPort(o.Host)
	if oPort == "" {
		oPort = defaultPort(o.Scheme)
	}
	rHost, rPort := splitHostPort(r.Host)
	if !strings.EqualFold(oHost, rHost) {
		return false
	}
	if rPort == "" {
		// Without a port the client used its scheme's default. Behind a TLS
		// proxy that may be https even when r.TLS is nil.
		if r.TLS != nil {
			return oPort == "443"
		}
		return oPort == defaultPort(o.Scheme)
	}
	return oPort == rPort
}

func (u *Upgrader) matchPatterns(origin, scheme, host string) bool {
	for _, pat := range u.OriginPatterns {
		pat = strings.ToLower(pat)
		target := strings.ToLower(host)
		if pat == "null" || host == "" {
			if pat == strings.ToLower(origin) {
				return true
			}
			continue
		}
		if s, rest, ok := strings.Cut(pat, "://"); ok {
			if s != scheme {
				continue
			}
			pat = rest
		}
		if ok, err := path.Match(pat, target); err == nil && ok {
			return true
		}
		// "example.com" also matches "example.com:443" for its scheme.
		if h, p := splitHostPort(target); p != "" && p == defaultPort(scheme) {
			if ok, err := path.Match(pat, h); err == nil && ok {
				return true
			}
		}
	}
	return false
}

func splitHostPort(hostport string) (host, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		return h, p
	}
	return strings.Trim(hostport, "[]"), ""
}

func defaultPort(scheme string) string {
	switch scheme {
	case "https", "wss":
		return "443"
	}
	return "80"
}

// Upgrade upgrades the HTTP server connection to the WebSocket protocol.
//
// Deprecated: Use websocket.Upgrader instead. Upgrade does not check the
// origin; the application must do it.
func Upgrade(w http.ResponseWriter, r *http.Request, responseHeader http.Header, readBufSize, writeBufSize int) (*Conn, error) {
	u := Upgrader{ReadBufferSize: readBufSize, WriteBufferSize: writeBufSize}
	u.Error = func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		// gorilla's Upgrade leaves the response to the application.
	}
	u.CheckOrigin = func(r *http.Request) bool { return true }
	return u.Upgrade(w, r, responseHeader)
}
