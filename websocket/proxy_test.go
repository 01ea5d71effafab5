package websocket

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hsProxy runs an in-test proxy on 127.0.0.1. serve handles one client
// connection and returns the tunnel's upstream, or nil when it refused.
// targets receives each address a tunnel was opened to.
type hsProxy struct {
	ln      net.Listener
	targets chan string
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func hsStartProxy(t *testing.T, serve func(p *hsProxy, c net.Conn, br *bufio.Reader) net.Conn) *hsProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &hsProxy{ln: ln, targets: make(chan string, 16)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.track(c)
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				up := serve(p, c, br)
				if up == nil {
					return
				}
				defer up.Close()
				c.SetDeadline(time.Time{})
				// Pipe both ways; the first side to end ends both.
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, br); up.Close(); done <- struct{}{} }()
				go func() { io.Copy(c, up); c.Close(); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *hsProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *hsProxy) dialTarget(addr string) net.Conn {
	up, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil
	}
	p.track(up)
	p.targets <- addr
	return up
}

// hsConnectProxy is an HTTP CONNECT proxy (RFC 9110 §9.3.6); with a user it
// demands Basic Proxy-Authorization and answers 407 otherwise.
func hsConnectProxy(t *testing.T, user, pass string) *hsProxy {
	return hsStartProxy(t, func(p *hsProxy, c net.Conn, br *bufio.Reader) net.Conn {
		req, err := http.ReadRequest(br)
		if err != nil {
			return nil
		}
		if req.Method != http.MethodConnect {
			io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
			return nil
		}
		if user != "" {
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
			if req.Header.Get("Proxy-Authorization") != want {
				io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
				return nil
			}
		}
		up := p.dialTarget(req.Host)
		if up == nil {
			io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			return nil
		}
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		return up
	})
}

// hsSocks5Proxy is a SOCKS5 proxy (RFC 1928) taking no authentication, or
// only a user name and password (RFC 1929) when user is set.
func hsSocks5Proxy(t *testing.T, user, pass string) *hsProxy {
	return hsStartProxy(t, func(p *hsProxy, c net.Conn, br *bufio.Reader) net.Conn {
		var head [2]byte
		if _, err := io.ReadFull(br, head[:]); err != nil || head[0] != 5 {
			return nil
		}
		methods := make([]byte, head[1])
		if _, err := io.ReadFull(br, methods); err != nil {
			return nil
		}
		want := byte(0)
		if user != "" {
			want = 2
		}
		if !strings.ContainsRune(string(methods), rune(want)) {
			c.Write([]byte{5, 0xff})
			return nil
		}
		c.Write([]byte{5, want})
		if want == 2 {
			var ver [2]byte
			if _, err := io.ReadFull(br, ver[:]); err != nil || ver[0] != 1 {
				return nil
			}
			u := make([]byte, ver[1])
			io.ReadFull(br, u)
			var pl [1]byte
			io.ReadFull(br, pl[:])
			pw := make([]byte, pl[0])
			if _, err := io.ReadFull(br, pw); err != nil {
				return nil
			}
			if string(u) != user || string(pw) != pass {
				c.Write([]byte{1, 1})
				return nil
			}
			c.Write([]byte{1, 0})
		}
		var req [4]byte
		if _, err := io.ReadFull(br, req[:]); err != nil || req[0] != 5 || req[1] != 1 {
			return nil
		}
		var host string
		switch req[3] {
		case 1, 4:
			ip := make([]byte, 4)
			if req[3] == 4 {
				ip = make([]byte, 16)
			}
			if _, err := io.ReadFull(br, ip); err != nil {
				return nil
			}
			host = net.IP(ip).String()
		case 3:
			var l [1]byte
			io.ReadFull(br, l[:])
			name := make([]byte, l[0])
			if _, err := io.ReadFull(br, name); err != nil {
				return nil
			}
			host = string(name)
		default:
			return nil
		}
		var port [2]byte
		if _, err := io.ReadFull(br, port[:]); err != nil {
			return nil
		}
		addr := net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:]))))
		up := p.dialTarget(addr)
		if up == nil {
			c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}) // connection refused
			return nil
		}
		c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34})
		return up
	})
}

func (p *hsProxy) url(scheme, user, pass string) *url.URL {
	u := &url.URL{Scheme: scheme, Host: p.ln.Addr().String()}
	if user != "" {
		u.User = url.UserPassword(user, pass)
	}
	return u
}

func TestDialProxyTunnels(t *testing.T) {
	for _, tc := range []struct {
		name       string
		scheme     string
		user, pass string
		tls        bool
	}{
		{name: "CONNECT", scheme: "http"},
		{name: "CONNECT with Basic auth", scheme: "http", user: "alice", pass: "s3cret:x"},
		{name: "CONNECT to wss", scheme: "http", tls: true},
		{name: "SOCKS5", scheme: "socks5"},
		{name: "SOCKS5 with password", scheme: "socks5", user: "bob", pass: "pw"},
		{name: "SOCKS5 to wss", scheme: "socks5", user: "bob", pass: "pw", tls: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := hsStart(t, tc.tls, nil, nil)
			var p *hsProxy
			if tc.scheme == "http" {
				p = hsConnectProxy(t, tc.user, tc.pass)
			} else {
				p = hsSocks5Proxy(t, tc.user, tc.pass)
			}
			d := Dialer{Proxy: http.ProxyURL(p.url(tc.scheme, tc.user, tc.pass)), HandshakeTimeout: 5 * time.Second}
			if tc.tls {
				d.TLSClientConfig = hsTLSConfig(s.srv)
			}
			c, _, err := d.Dial(s.wsURL(), nil)
			if err != nil {
				t.Fatalf("dial through proxy: %v", err)
			}
			defer c.CloseNow()
			hsEcho(t, c, "tunnelled "+tc.name)
			hsEcho(t, c, strings.Repeat("big ", 2000))
			select {
			case got := <-p.targets:
				if got != s.addr() {
					t.Errorf("proxy tunnelled to %q, want %q", got, s.addr())
				}
			default:
				t.Fatal("the connection did not go through the proxy")
			}
			if res := s.next(t); res.err != nil {
				t.Errorf("server: %v", res.err)
			}
		})
	}
}

func TestDialProxyRefuses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		proxy     func(t *testing.T) *hsProxy
		scheme    string
		user      string
		pass      string
		errSubstr string
	}{
		{name: "CONNECT without credentials", scheme: "http", errSubstr: "407",
			proxy: func(t *testing.T) *hsProxy { return hsConnectProxy(t, "alice", "pw") }},
		{name: "CONNECT with wrong password", scheme: "http", user: "alice", pass: "nope", errSubstr: "407",
			proxy: func(t *testing.T) *hsProxy { return hsConnectProxy(t, "alice", "pw") }},
		{name: "SOCKS5 without credentials", scheme: "socks5", errSubstr: "authentication",
			proxy: func(t *testing.T) *hsProxy { return hsSocks5Proxy(t, "bob", "pw") }},
		{name: "SOCKS5 with wrong password", scheme: "socks5", user: "bob", pass: "nope", errSubstr: "authentication",
			proxy: func(t *testing.T) *hsProxy { return hsSocks5Proxy(t, "bob", "pw") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := hsStart(t, false, nil, nil)
			p := tc.proxy(t)
			d := Dialer{Proxy: http.ProxyURL(p.url(tc.scheme, tc.user, tc.pass)), HandshakeTimeout: 5 * time.Second}
			c, _, err := d.Dial(s.wsURL(), nil)
			if err == nil {
				c.CloseNow()
				t.Fatal("dial succeeded")
			}
			if !strings.Contains(err.Error(), tc.errSubstr) {
				t.Errorf("err %q does not mention %q", err, tc.errSubstr)
			}
			select {
			case got := <-p.targets:
				t.Errorf("proxy opened a tunnel to %s", got)
			default:
			}
		})
	}
}
