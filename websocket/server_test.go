package websocket

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// RFC 6455 §1.3 sample key and its accept value.
const (
	hsSampleKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	hsSampleAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// hsResult is what the test server's handler saw for one request.
type hsResult struct {
	err         error
	host        string
	header      http.Header
	subprotocol string
}

// hsServer is an echo server for handshake tests. Handler goroutines that
// outlive the HTTP server (hijacked connections) are waited for in Cleanup.
type hsServer struct {
	srv     *httptest.Server
	results chan hsResult
}

// hsHandler upgrades with u, reports the outcome and echoes messages.
func hsHandler(u *Upgrader, respHeader http.Header, results chan hsResult, wg *sync.WaitGroup) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		c, err := u.Upgrade(w, r, respHeader.Clone())
		res := hsResult{err: err, host: r.Host, header: r.Header.Clone()}
		if c != nil {
			res.subprotocol = c.Subprotocol()
		}
		select {
		case results <- res:
		default:
		}
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, p); err != nil {
				return
			}
		}
	})
}

func hsStart(t *testing.T, useTLS bool, u *Upgrader, respHeader http.Header) *hsServer {
	t.Helper()
	if u == nil {
		u = &Upgrader{}
	}
	s := &hsServer{results: make(chan hsResult, 64)}
	var wg sync.WaitGroup
	h := hsHandler(u, respHeader, s.results, &wg)
	if useTLS {
		s.srv = httptest.NewTLSServer(h)
	} else {
		s.srv = httptest.NewServer(h)
	}
	t.Cleanup(func() {
		s.srv.Close()
		wg.Wait()
	})
	return s
}

func (s *hsServer) addr() string { return s.srv.Listener.Addr().String() }

// wsURL is the server's URL with a ws or wss scheme.
func (s *hsServer) wsURL() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") }

// next returns what the handler saw for the next request.
func (s *hsServer) next(t *testing.T) hsResult {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not run within 5s")
		return hsResult{}
	}
}

// hsReq is a raw handshake request that cases edit header by header.
type hsReq struct {
	method, target, proto string
	headers               [][2]string
}

func hsValidReq(host string) hsReq {
	return hsReq{method: "GET", target: "/ws", proto: "HTTP/1.1", headers: [][2]string{
		{"Host", host},
		{"Upgrade", "websocket"},
		{"Connection", "Upgrade"},
		{"Sec-WebSocket-Key", hsSampleKey},
		{"Sec-WebSocket-Version", "13"},
	}}
}

// without removes every header called name.
func (q hsReq) without(name string) hsReq {
	var hs [][2]string
	for _, h := range q.headers {
		if !strings.EqualFold(h[0], name) {
			hs = append(hs, h)
		}
	}
	q.headers = hs
	return q
}

// set replaces every header called name with one value.
func (q hsReq) set(name, value string) hsReq { return q.without(name).add(name, value) }

func (q hsReq) add(name, value string) hsReq {
	q.headers = append(append([][2]string(nil), q.headers...), [2]string{name, value})
	return q
}

func (q hsReq) bytes() []byte {
	var b bytes.Buffer
	b.WriteString(q.method + " " + q.target + " " + q.proto + "\r\n")
	for _, h := range q.headers {
		b.WriteString(h[0] + ": " + h[1] + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// hsRoundTrip sends raw bytes to addr and reads one HTTP response. The
// connection stays open (and is returned) for what follows a 101.
func hsRoundTrip(t *testing.T, addr string, raw []byte) (*http.Response, string, net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(body), c, br
}

func TestUpgradeHandshakeFailures(t *testing.T) {
	s := hsStart(t, false, nil, nil)
	valid := hsValidReq(s.addr())
	post := valid
	post.method = "POST"
	http10 := valid
	http10.proto = "HTTP/1.0"
	for _, tc := range []struct {
		name     string
		req      hsReq
		status   int
		bodyHas  []string
		header   map[string]string
		noHeader []string
	}{
		{name: "no Connection", req: valid.without("Connection"), status: 400,
			bodyHas: []string{"'Connection'", "proxy"}},
		{name: "Connection without upgrade token", req: valid.set("Connection", "keep-alive"), status: 400,
			bodyHas: []string{"'Connection'", "proxy"}},
		{name: "no Upgrade", req: valid.without("Upgrade"), status: 400,
			bodyHas: []string{"'Upgrade'"}},
		{name: "Upgrade other protocol", req: valid.set("Upgrade", "h2c"), status: 400,
			bodyHas: []string{"'Upgrade'"}},
		{name: "POST", req: post, status: 405, bodyHas: []string{"GET"},
			header: map[string]string{"Allow": "GET"}},
		{name: "version 8", req: valid.set("Sec-WebSocket-Version", "8"), status: 426,
			bodyHas: []string{"13"}, header: map[string]string{"Sec-WebSocket-Version": "13"}},
		{name: "no version", req: valid.without("Sec-WebSocket-Version"), status: 400,
			bodyHas: []string{"Sec-WebSocket-Version"}},
		// RFC 6455 §11.3.5: the version header must not appear more than once.
		{name: "duplicate version", req: valid.add("Sec-WebSocket-Version", "13"), status: 400,
			bodyHas: []string{"Sec-WebSocket-Version"}},
		{name: "no key", req: valid.without("Sec-WebSocket-Key"), status: 400,
			bodyHas: []string{"Sec-WebSocket-Key"}},
		{name: "key not base64", req: valid.set("Sec-WebSocket-Key", "not base64 at all!!!!!!!"), status: 400,
			bodyHas: []string{"Sec-WebSocket-Key"}},
		{name: "key of 15 bytes", req: valid.set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAA"), status: 400,
			bodyHas: []string{"Sec-WebSocket-Key"}},
		{name: "key of 17 bytes", req: valid.set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAAA="), status: 400,
			bodyHas: []string{"Sec-WebSocket-Key"}},
		{name: "duplicate key", req: valid.add("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA=="), status: 400,
			bodyHas: []string{"Sec-WebSocket-Key"}},
		{name: "HTTP/1.0", req: http10, status: 400, bodyHas: []string{"HTTP/1.1"}},
		{name: "foreign origin", req: valid.add("Origin", "http://evil.example"), status: 403,
			bodyHas: []string{"origin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, _, _ := hsRoundTrip(t, s.addr(), tc.req.bytes())
			res := s.next(t) // taken first so that a failed case leaves none behind
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tc.status, body)
			}
			for _, want := range tc.bodyHas {
				if !strings.Contains(body, want) {
					t.Errorf("body %q does not mention %q", body, want)
				}
			}
			for k, v := range tc.header {
				if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("header %s = %q, want [%q]", k, got, v)
				}
			}
			if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "" {
				t.Errorf("failed handshake carries Sec-WebSocket-Accept %q", got)
			}
			var he HandshakeError
			if !errors.As(res.err, &he) {
				t.Fatalf("Upgrade returned %v (%T), want a HandshakeError", res.err, res.err)
			}
		})
	}
}

func TestUpgradeErrorCallback(t *testing.T) {
	type call struct {
		status int
		reason error
	}
	calls := make(chan call, 1)
	u := &Upgrader{Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		calls <- call{status, reason}
		w.Header().Set("X-Custom", "yes")
		w.WriteHeader(status)
		io.WriteString(w, "custom error page")
	}}
	s := hsStart(t, false, u, nil)
	req := hsValidReq(s.addr()).set("Sec-WebSocket-Version", "7")
	resp, body, _, _ := hsRoundTrip(t, s.addr(), req.bytes())
	if resp.StatusCode != http.StatusUpgradeRequired {
		t.Fatalf("status %d, want 426", resp.StatusCode)
	}
	if body != "custom error page" || resp.Header.Get("X-Custom") != "yes" {
		t.Fatalf("response not from the Error callback: body %q, headers %v", body, resp.Header)
	}
	// RFC 6455 §4.4: the supported version goes out even with a custom page.
	if got := resp.Header.Get("Sec-WebSocket-Version"); got != "13" {
		t.Errorf("Sec-WebSocket-Version = %q, want 13", got)
	}
	c := <-calls
	if c.status != http.StatusUpgradeRequired || c.reason == nil || !strings.Contains(c.reason.Error(), "version") {
		t.Errorf("callback got status %d reason %v", c.status, c.reason)
	}
	if res := s.next(t); res.err == nil || res.err.Error() != c.reason.Error() {
		t.Errorf("Upgrade returned %v, want the reason given to the callback %v", res.err, c.reason)
	}
}

func TestUpgradeAcceptKeySample(t *testing.T) {
	if got := acceptKey(hsSampleKey); got != hsSampleAccept {
		t.Fatalf("acceptKey(%q) = %q, want %q", hsSampleKey, got, hsSampleAccept)
	}
	s := hsStart(t, false, nil, nil)
	resp, _, _, _ := hsRoundTrip(t, s.addr(), hsValidReq(s.addr()).bytes())
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	// RFC 6455 §4.2.2 item 5.
	for k, v := range map[string]string{
		"Upgrade":              "websocket",
		"Connection":           "Upgrade",
		"Sec-WebSocket-Accept": hsSampleAccept,
	} {
		if got := resp.Header.Values(k); len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want [%q]", k, got, v)
		}
	}
	if got := resp.Header.Values("Sec-WebSocket-Protocol"); len(got) != 0 {
		t.Errorf("no subprotocol was requested, got Sec-WebSocket-Protocol %q", got)
	}
	if res := s.next(t); res.err != nil {
		t.Fatalf("Upgrade: %v", res.err)
	}
}

func TestUpgradeTokensCaseInsensitive(t *testing.T) {
	s := hsStart(t, false, nil, nil)
	// RFC 6455 §4.2.1: token lists and case-insensitive values.
	req := hsValidReq(s.addr()).set("Connection", "keep-alive, UPGRADE").set("Upgrade", "WebSocket")
	resp, _, _, _ := hsRoundTrip(t, s.addr(), req.bytes())
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if res := s.next(t); res.err != nil {
		t.Fatalf("Upgrade: %v", res.err)
	}
}

func TestUpgradeOriginPolicy(t *testing.T) {
	s := hsStart(t, false, nil, nil)
	addr := s.addr()
	_, port, _ := net.SplitHostPort(addr)
	otherPort := "1"
	if port == "1" {
		otherPort = "2"
	}
	for _, tc := range []struct {
		name   string
		host   string // Host header; "" means the listener's address
		origin []string
		ok     bool
	}{
		{name: "no Origin", ok: true},
		{name: "same host and port", origin: []string{"http://" + addr}, ok: true},
		{name: "same, host in upper case", host: "example.com", origin: []string{"http://EXAMPLE.com"}, ok: true},
		{name: "other host", origin: []string{"http://evil.example:" + port}},
		{name: "other port", origin: []string{"http://127.0.0.1:" + otherPort}},
		{name: "default port in neither", host: "example.com", origin: []string{"http://example.com"}, ok: true},
		{name: "default port in Host", host: "example.com:80", origin: []string{"http://example.com"}, ok: true},
		{name: "default port in Origin", host: "example.com", origin: []string{"http://example.com:80"}, ok: true},
		{name: "Host on other port", host: "example.com:8080", origin: []string{"http://example.com"}},
		{name: "Origin on other port", host: "example.com", origin: []string{"http://example.com:8080"}},
		{name: "subdomain is another origin", host: "example.com", origin: []string{"http://www.example.com"}},
		{name: "null", origin: []string{"null"}},
		{name: "not http", host: "example.com", origin: []string{"ftp://example.com"}},
		{name: "two Origin headers", origin: []string{"http://" + addr, "http://" + addr}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.host
			if host == "" {
				host = addr
			}
			req := hsValidReq(host)
			for _, o := range tc.origin {
				req = req.add("Origin", o)
			}
			resp, body, _, _ := hsRoundTrip(t, addr, req.bytes())
			res := s.next(t)
			want := http.StatusForbidden
			if tc.ok {
				want = http.StatusSwitchingProtocols
			}
			if resp.StatusCode != want {
				t.Fatalf("Host %q Origin %q: status %d, want %d (body %q)", host, tc.origin, resp.StatusCode, want, body)
			}
			if (res.err == nil) != tc.ok {
				t.Fatalf("Upgrade error %v, want ok=%v", res.err, tc.ok)
			}
		})
	}
}

func TestUpgradeOriginTLS(t *testing.T) {
	s := hsStart(t, true, nil, nil)
	host := s.addr()
	d := Dialer{TLSClientConfig: hsTLSConfig(s.srv)}
	for _, tc := range []struct {
		origin string
		status int
	}{
		{"", http.StatusSwitchingProtocols},
		{"https://" + host, http.StatusSwitchingProtocols},
		// A page served over http may not reach the https endpoint's origin.
		{"http://" + host, http.StatusForbidden},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			c, resp, err := d.Dial(s.wsURL(), h)
			res := s.next(t)
			if (res.err == nil) != (tc.status == http.StatusSwitchingProtocols) {
				t.Errorf("Upgrade error %v", res.err)
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("Origin %q: response %v, err %v; want status %d", tc.origin, resp, err, tc.status)
			}
			if tc.status == http.StatusSwitchingProtocols {
				if err != nil {
					t.Fatal(err)
				}
				c.CloseNow()
			} else if !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("err %v, want ErrBadHandshake", err)
			}
		})
	}
}

func TestUpgradeOriginPatterns(t *testing.T) {
	u := &Upgrader{OriginPatterns: []string{"*.example.com", "localhost:*", "https://exact.example"}}
	s := hsStart(t, false, u, nil)
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"http://a.example.com", true},
		{"https://a.example.com", true},
		{"http://A.EXAMPLE.COM", true},
		{"http://a.b.example.com", true},
		{"http://a.example.com:80", true},
		{"https://a.example.com:443", true},
		{"http://a.example.com:8080", false},
		{"http://example.com", false},
		{"http://evil-example.com", false},
		{"http://a.example.com.evil", false},
		{"http://localhost:3000", true},
		{"https://localhost:8443", true},
		{"http://localhost.evil:3000", false},
		{"https://exact.example", true},
		{"https://exact.example:443", true},
		{"http://exact.example", false},
		{"https://exact.example:8443", false},
		{"https://sub.exact.example", false},
		{"null", false},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			req := hsValidReq("server.internal").add("Origin", tc.origin)
			resp, body, _, _ := hsRoundTrip(t, s.addr(), req.bytes())
			res := s.next(t)
			want := http.StatusForbidden
			if tc.ok {
				want = http.StatusSwitchingProtocols
			}
			if resp.StatusCode != want || (res.err == nil) != tc.ok {
				t.Fatalf("Origin %q: status %d, want %d (body %q, Upgrade error %v)", tc.origin, resp.StatusCode, want, body, res.err)
			}
		})
	}
}

func TestUpgradeCheckOriginOverrides(t *testing.T) {
	for _, tc := range []struct {
		name   string
		allow  bool
		origin string
		status int
	}{
		{"allows a foreign origin", true, "http://evil.example", http.StatusSwitchingProtocols},
		{"rejects a request without Origin", false, "", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := make(chan string, 1)
			u := &Upgrader{CheckOrigin: func(r *http.Request) bool {
				seen <- r.Header.Get("Origin")
				return tc.allow
			}}
			s := hsStart(t, false, u, nil)
			req := hsValidReq(s.addr())
			if tc.origin != "" {
				req = req.add("Origin", tc.origin)
			}
			resp, _, _, _ := hsRoundTrip(t, s.addr(), req.bytes())
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			select {
			case o := <-seen:
				if o != tc.origin {
					t.Errorf("CheckOrigin saw Origin %q, want %q", o, tc.origin)
				}
			default:
				t.Fatal("CheckOrigin was not called")
			}
			s.next(t)
		})
	}
}

func TestUpgradeSubprotocolNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name       string
		server     []string
		respHeader http.Header
		offered    []string // Dialer.Subprotocols
		reqHeader  string   // Sec-WebSocket-Protocol in requestHeader
		want       string
	}{
		{name: "server preference wins", server: []string{"b", "a"}, offered: []string{"a", "b"}, want: "b"},
		{name: "first common", server: []string{"x", "a", "b"}, offered: []string{"b", "a"}, want: "a"},
		{name: "no common protocol", server: []string{"x"}, offered: []string{"a"}, want: ""},
		{name: "none offered", server: []string{"x"}, want: ""},
		{name: "offered in requestHeader", server: []string{"v2", "v1"}, reqHeader: "v1, v2", want: "v2"},
		{name: "responseHeader when Subprotocols is nil", respHeader: http.Header{"Sec-Websocket-Protocol": {"chat"}},
			offered: []string{"superchat", "chat"}, want: "chat"},
		{name: "Subprotocols win over responseHeader", server: []string{"a"}, respHeader: http.Header{"Sec-Websocket-Protocol": {"b"}},
			offered: []string{"a", "b"}, want: "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := hsStart(t, false, &Upgrader{Subprotocols: tc.server}, tc.respHeader)
			d := Dialer{Subprotocols: tc.offered}
			var h http.Header
			if tc.reqHeader != "" {
				h = http.Header{"Sec-Websocket-Protocol": {tc.reqHeader}}
			}
			c, resp, err := d.Dial(s.wsURL(), h)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.CloseNow()
			if got := resp.Header.Values("Sec-WebSocket-Protocol"); (tc.want == "" && len(got) != 0) ||
				(tc.want != "" && (len(got) != 1 || got[0] != tc.want)) {
				t.Errorf("response Sec-WebSocket-Protocol %q, want %q", got, tc.want)
			}
			if c.Subprotocol() != tc.want {
				t.Errorf("client Subprotocol() = %q, want %q", c.Subprotocol(), tc.want)
			}
			if res := s.next(t); res.err != nil || res.subprotocol != tc.want {
				t.Errorf("server: err %v, Subprotocol() = %q, want %q", res.err, res.subprotocol, tc.want)
			}
		})
	}
}

func TestUpgradeResponseHeaderInjection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header http.Header
		check  string // header that must come through with a single value
	}{
		{name: "CRLF in value", header: http.Header{"X-Test": {"a\r\nX-Injected: yes"}}, check: "X-Test"},
		{name: "LF in value", header: http.Header{"X-Test": {"a\nX-Injected: yes"}}, check: "X-Test"},
		{name: "CRLF in name", header: http.Header{"X-Test\r\nX-Injected": {"yes"}}},
		{name: "CRLF in Sec-WebSocket-Protocol", header: http.Header{"Sec-Websocket-Protocol": {"chat\r\nX-Injected: yes"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := hsStart(t, false, nil, tc.header)
			req := hsValidReq(s.addr()).set("Sec-WebSocket-Protocol", "chat")
			c, err := net.DialTimeout("tcp", s.addr(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(req.bytes()); err != nil {
				t.Fatal(err)
			}
			// Read the head raw: what matters is which lines went out.
			br := bufio.NewReader(c)
			var lines []string
			for i := 0; i < 50; i++ {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("reading response head: %v (so far %q)", err, lines)
				}
				if line == "\r\n" {
					break
				}
				lines = append(lines, line)
			}
			if len(lines) == 0 || !strings.HasPrefix(lines[0], "HTTP/1.1 101 ") {
				// Refusing the header is fine too, as long as nothing is injected.
				t.Logf("response head %q", lines)
			}
			for _, l := range lines {
				if strings.HasPrefix(strings.ToLower(l), "x-injected") {
					t.Fatalf("header injected through responseHeader: head %q", lines)
				}
				if !strings.HasSuffix(l, "\r\n") || strings.ContainsAny(strings.TrimSuffix(l, "\r\n"), "\r\n") {
					t.Fatalf("bare CR or LF in response line %q", l)
				}
			}
			if tc.check != "" {
				n := 0
				for _, l := range lines {
					if strings.HasPrefix(strings.ToLower(l), strings.ToLower(tc.check)+":") {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%s lines: %d, want 1 (head %q)", tc.check, n, lines)
				}
			}
			s.next(t)
		})
	}
}

// hsMaskedFrame is a final client frame (masked, RFC 6455 §5.3) with a
// payload shorter than 126 bytes.
func hsMaskedFrame(op byte, payload []byte) []byte {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b := []byte{0x80 | op, 0x80 | byte(len(payload))}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// hsReadServerFrame reads one short unmasked final frame.
func hsReadServerFrame(t *testing.T, r io.Reader) (op byte, payload []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("reading frame header: %v", err)
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 || h[1] >= 126 {
		t.Fatalf("unexpected frame header % x", h)
	}
	payload = make([]byte, h[1])
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatalf("reading payload: %v", err)
	}
	return h[0] & 0x0f, payload
}

func TestUpgradeKeepsDataBehindRequest(t *testing.T) {
	s := hsStart(t, false, nil, nil)
	raw := hsValidReq(s.addr()).bytes()
	// The frames go out in the same write as the request.
	raw = append(raw, hsMaskedFrame(1, []byte("first"))...)
	raw = append(raw, hsMaskedFrame(2, []byte{0, 1, 2})...)
	resp, _, _, br := hsRoundTrip(t, s.addr(), raw)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	for _, want := range []struct {
		op byte
		p  []byte
	}{{1, []byte("first")}, {2, []byte{0, 1, 2}}} {
		op, p := hsReadServerFrame(t, br)
		if op != want.op || !bytes.Equal(p, want.p) {
			t.Fatalf("echo: opcode %d payload %q, want %d %q", op, p, want.op, want.p)
		}
	}
	s.next(t)
}
