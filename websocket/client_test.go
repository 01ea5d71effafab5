package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hsTLSConfig trusts the test server's certificate.
func hsTLSConfig(srv *httptest.Server) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &tls.Config{RootCAs: pool}
}

// hsEcho writes and reads back one text message.
func hsEcho(t *testing.T, c *Conn, msg string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(TextMessage, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	mt, p, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != TextMessage || string(p) != msg {
		t.Fatalf("echo: type %d %q, want text %q", mt, p, msg)
	}
}

// hsRawServer accepts TCP connections on 127.0.0.1, reads one request on
// each and writes what reply returns (nothing when reply is nil), then
// holds the connection until the client closes it or the test ends.
func hsRawServer(t *testing.T, reply func(r *http.Request) string) (addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				br := bufio.NewReader(c)
				r, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				if reply != nil {
					io.WriteString(c, reply(r))
				}
				io.Copy(io.Discard, br)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// hsGood101 is a correct 101 answer for r plus extra header lines.
func hsGood101(r *http.Request, extra string) string {
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-Websocket-Key")) + "\r\n" + extra + "\r\n"
}

func TestDialWS(t *testing.T) {
	s := hsStart(t, false, nil, nil)
	var d Dialer
	c, resp, err := d.Dial(s.wsURL()+"/path?q=1", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	hsEcho(t, c, "hello")
	res := s.next(t)
	// RFC 6455 §4.1: the client's handshake headers.
	for k, v := range map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-Websocket-Version": "13"} {
		if got := res.header[k]; len(got) != 1 || got[0] != v {
			t.Errorf("request %s = %q, want [%q]", k, got, v)
		}
	}
	if keys := res.header["Sec-Websocket-Key"]; len(keys) != 1 || !validKey(keys[0]) {
		t.Errorf("request Sec-WebSocket-Key = %q", keys)
	}
}

func TestDialWSS(t *testing.T) {
	s := hsStart(t, true, nil, nil)
	d := Dialer{TLSClientConfig: hsTLSConfig(s.srv)}
	c, _, err := d.Dial(s.wsURL(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if _, ok := c.NetConn().(*tls.Conn); !ok {
		t.Errorf("NetConn is %T, want *tls.Conn", c.NetConn())
	}
	hsEcho(t, c, "over tls")
	s.next(t)

	// Without the test CA the certificate must be refused.
	var plain Dialer
	if c, _, err := plain.Dial(s.wsURL(), nil); err == nil {
		c.CloseNow()
		t.Fatal("dial succeeded with an untrusted certificate")
	}
}

func TestDialMalformedURL(t *testing.T) {
	var dials atomic.Int32
	d := Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return nil, errors.New("test: dial must not happen")
	}}
	for _, tc := range []struct {
		url       string
		malformed bool // the package's errMalformedURL is expected
	}{
		{"http://127.0.0.1:1/", true},
		{"https://127.0.0.1:1/", true},
		{"ftp://127.0.0.1:1/", true},
		{"127.0.0.1:1/ws", false},
		{"ws://user:pass@127.0.0.1:1/", true},
		{"ws://user@127.0.0.1:1/", true},
		// RFC 6455 §3: a ws URI has a host.
		{"ws:///path", true},
		{"wss://", true},
		{"ws://[::1/", false},
		{"ws://host:port/", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			before := dials.Load()
			c, resp, err := d.Dial(tc.url, nil)
			if err == nil {
				c.CloseNow()
				t.Fatal("dial succeeded")
			}
			if resp != nil {
				t.Errorf("response %v for a URL that is never requested", resp)
			}
			if tc.malformed && !errors.Is(err, errMalformedURL) {
				t.Errorf("err %v, want %v", err, errMalformedURL)
			}
			if dials.Load() != before {
				t.Errorf("dialled the network for %q (err %v)", tc.url, err)
			}
		})
	}
}

func TestDialBadStatus(t *testing.T) {
	long := strings.Repeat("x", 5000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Reason", "auth")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "login first "+long)
	}))
	defer srv.Close()
	var d Dialer
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if c != nil {
		c.CloseNow()
		t.Fatal("got a connection")
	}
	if !errors.Is(err, ErrBadHandshake) {
		t.Fatalf("err %v, want ErrBadHandshake", err)
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Reason") != "auth" {
		t.Fatalf("response %+v, want 401 with its headers", resp)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(body), "login first xxx") {
		t.Errorf("body starts %q", body[:min(len(body), 20)])
	}
	if len(body) != 1024 {
		t.Errorf("body length %d, want the documented 1 KiB", len(body))
	}
}

func TestDialBadHandshakeResponses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		reply     func(r *http.Request) string
		badHS     bool // ErrBadHandshake expected; otherwise another error
		errSubstr string
	}{
		{name: "wrong accept", badHS: true, reply: func(r *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
				"Sec-WebSocket-Accept: " + acceptKey("AAAAAAAAAAAAAAAAAAAAAA==") + "\r\n\r\n"
		}},
		{name: "no accept", badHS: true, reply: func(r *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
		}},
		{name: "no Upgrade", badHS: true, reply: func(r *http.Request) string {
			return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
				acceptKey(r.Header.Get("Sec-Websocket-Key")) + "\r\n\r\n"
		}},
		{name: "200 with right accept", badHS: true, reply: func(r *http.Request) string {
			return "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
				acceptKey(r.Header.Get("Sec-Websocket-Key")) + "\r\nContent-Length: 0\r\n\r\n"
		}},
		{name: "extension not offered", errSubstr: "extension", reply: func(r *http.Request) string {
			return hsGood101(r, "Sec-WebSocket-Extensions: permessage-deflate\r\n")
		}},
		{name: "subprotocol not offered", errSubstr: "subprotocol", reply: func(r *http.Request) string {
			return hsGood101(r, "Sec-WebSocket-Protocol: other\r\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := hsRawServer(t, tc.reply)
			d := Dialer{Subprotocols: []string{"chat"}, HandshakeTimeout: 5 * time.Second}
			c, resp, err := d.Dial("ws://"+addr+"/", nil)
			if err == nil {
				c.CloseNow()
				t.Fatal("dial succeeded")
			}
			if c != nil {
				t.Error("non-nil *Conn with an error")
			}
			if tc.badHS != errors.Is(err, ErrBadHandshake) {
				t.Fatalf("err %v; want ErrBadHandshake: %v", err, tc.badHS)
			}
			if !strings.Contains(err.Error(), tc.errSubstr) {
				t.Errorf("err %q does not mention %q", err, tc.errSubstr)
			}
			if tc.badHS && resp == nil {
				t.Error("ErrBadHandshake without the *http.Response")
			}
		})
	}
}

func TestDialGoodRawServer(t *testing.T) {
	// The control for the table above: the same server with nothing wrong.
	addr := hsRawServer(t, func(r *http.Request) string {
		return hsGood101(r, "Sec-WebSocket-Protocol: chat\r\n")
	})
	d := Dialer{Subprotocols: []string{"chat"}}
	c, _, err := d.Dial("ws://"+addr+"/", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	if c.Subprotocol() != "chat" {
		t.Errorf("Subprotocol() = %q", c.Subprotocol())
	}
}

func TestDialDuplicateHandshakeHeaders(t *testing.T) {
	var dials atomic.Int32
	for _, tc := range []struct {
		name string
		subs []string
	}{
		{"Upgrade", nil},
		{"Connection", nil},
		{"Sec-WebSocket-Key", nil},
		{"Sec-WebSocket-Version", nil},
		{"Sec-WebSocket-Extensions", nil},
		{"Sec-WebSocket-Protocol", []string{"chat"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Dialer{Subprotocols: tc.subs, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return nil, errors.New("test: dial must not happen")
			}}
			h := http.Header{}
			h.Set(tc.name, "x")
			c, _, err := d.Dial("ws://127.0.0.1:1/", h)
			if err == nil {
				c.CloseNow()
				t.Fatal("dial succeeded")
			}
			if !strings.Contains(err.Error(), "duplicate header") {
				t.Errorf("err %v, want a duplicate header error", err)
			}
		})
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("dialled %d times", n)
	}
}

func TestDialHostOverrideAndHeaders(t *testing.T) {
	s := hsStart(t, false, nil, nil)
	var d Dialer
	h := http.Header{"Host": {"example.com"}, "X-Extra": {"1", "2"}}
	c, _, err := d.Dial(s.wsURL(), h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	res := s.next(t)
	if res.host != "example.com" {
		t.Errorf("server saw Host %q, want example.com", res.host)
	}
	if got := res.header["X-Extra"]; len(got) != 2 || got[0] != "1" || got[1] != "2" {
		t.Errorf("X-Extra = %q", got)
	}
}

func TestDialCookieJar(t *testing.T) {
	s := hsStart(t, false, nil, http.Header{"Set-Cookie": {"token=xyz; Path=/"}})
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(s.srv.URL + "/")
	jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "abc"}})
	d := Dialer{Jar: jar}
	c, _, err := d.Dial(s.wsURL()+"/", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	res := s.next(t)
	if got := res.header.Get("Cookie"); got != "session=abc" {
		t.Errorf("request Cookie %q, want session=abc", got)
	}
	got := map[string]string{}
	for _, ck := range jar.Cookies(u) {
		got[ck.Name] = ck.Value
	}
	if got["token"] != "xyz" || got["session"] != "abc" || len(got) != 2 {
		t.Errorf("jar holds %v, want session=abc and token=xyz", got)
	}
}

// The connection's deadline equals the context's and may fire first: the
// caller must still see context.DeadlineExceeded, not "i/o timeout".
func TestDialHandshakeTimeoutAndCancel(t *testing.T) {
	addr := hsRawServer(t, nil) // accepts TCP, never answers
	for _, tc := range []struct {
		name string
		d    Dialer
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{name: "HandshakeTimeout", d: Dialer{HandshakeTimeout: 200 * time.Millisecond},
			ctx:  func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			want: context.DeadlineExceeded},
		{name: "context deadline", d: Dialer{},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 200*time.Millisecond)
			},
			want: context.DeadlineExceeded},
		{name: "cancel", d: Dialer{HandshakeTimeout: time.Minute},
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(200*time.Millisecond, cancel)
				return ctx, cancel
			},
			want: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			c, _, err := tc.d.DialContext(ctx, "ws://"+addr+"/", nil)
			elapsed := time.Since(start)
			if err == nil {
				c.CloseNow()
				t.Fatal("dial succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
			if elapsed < 150*time.Millisecond || elapsed > 3*time.Second {
				t.Errorf("returned after %v, want about 200ms", elapsed)
			}
		})
	}
}

func TestDialUsesNetDial(t *testing.T) {
	s := hsStart(t, false, nil, nil)
	var nd net.Dialer
	var plain, withCtx atomic.Int32
	netDial := func(network, addr string) (net.Conn, error) {
		plain.Add(1)
		return nd.Dial(network, addr)
	}
	netDialContext := func(ctx context.Context, network, addr string) (net.Conn, error) {
		withCtx.Add(1)
		if addr != s.addr() {
			t.Errorf("NetDialContext got address %q, want %q", addr, s.addr())
		}
		return nd.DialContext(ctx, network, addr)
	}
	for _, tc := range []struct {
		name              string
		d                 Dialer
		wantPlain, wantCx int32
	}{
		{"NetDial", Dialer{NetDial: netDial}, 1, 0},
		{"NetDialContext", Dialer{NetDialContext: netDialContext}, 0, 1},
		{"NetDialContext before NetDial", Dialer{NetDial: netDial, NetDialContext: netDialContext}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain.Store(0)
			withCtx.Store(0)
			c, _, err := tc.d.Dial(s.wsURL(), nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.CloseNow()
			hsEcho(t, c, tc.name)
			if plain.Load() != tc.wantPlain || withCtx.Load() != tc.wantCx {
				t.Errorf("NetDial called %d times, NetDialContext %d; want %d and %d",
					plain.Load(), withCtx.Load(), tc.wantPlain, tc.wantCx)
			}
			s.next(t)
		})
	}
}

func TestDialWSSUsesNetDialContext(t *testing.T) {
	s := hsStart(t, true, nil, nil)
	var n atomic.Int32
	var nd net.Dialer
	d := Dialer{TLSClientConfig: hsTLSConfig(s.srv), NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return nd.DialContext(ctx, network, addr)
	}}
	c, _, err := d.Dial(s.wsURL(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseNow()
	hsEcho(t, c, "tls over custom dial")
	if n.Load() != 1 {
		t.Errorf("NetDialContext called %d times, want 1", n.Load())
	}
	s.next(t)
}

// hsPipeListener hands out the server ends of net.Pipe connections.
type hsPipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *hsPipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *hsPipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *hsPipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func TestNewClientOverPipe(t *testing.T) {
	results := make(chan hsResult, 4)
	var wg sync.WaitGroup
	ln := &hsPipeListener{conns: make(chan net.Conn, 1), done: make(chan struct{})}
	srv := &http.Server{Handler: hsHandler(&Upgrader{}, nil, results, &wg)}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	defer func() {
		srv.Close()
		<-served
		wg.Wait()
	}()
	clientEnd, serverEnd := net.Pipe()
	defer clientEnd.Close()
	ln.conns <- serverEnd
	u, _ := url.Parse("http://example.com/chat")
	clientEnd.SetDeadline(time.Now().Add(5 * time.Second))
	c, resp, err := NewClient(clientEnd, u, nil, 0, 0)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if c.NetConn() != clientEnd {
		t.Error("NewClient does not use the given connection")
	}
	hsEcho(t, c, "through a pipe")
	if res := <-results; res.err != nil || res.host != "example.com" {
		t.Errorf("server saw err %v Host %q", res.err, res.host)
	}
}

func TestNewClientOverTCP(t *testing.T) {
	s := hsStart(t, false, nil, nil)
	nc, err := net.DialTimeout("tcp", s.addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	u, _ := url.Parse(s.srv.URL + "/ws")
	c, _, err := NewClient(nc, u, http.Header{"X-From": {"newclient"}}, 512, 512)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer c.CloseNow()
	hsEcho(t, c, string(bytes.Repeat([]byte("z"), 3000)))
	if res := s.next(t); res.header.Get("X-From") != "newclient" {
		t.Errorf("X-From = %q", res.header.Get("X-From"))
	}
}
