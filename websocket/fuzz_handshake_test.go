package websocket

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/latchws/latch/internal/frame"
)

// hsFuzzWriter is a ResponseWriter whose Hijack hands out one end of a
// net.Pipe; what is written before a hijack is recorded.
type hsFuzzWriter struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	conn     net.Conn
	hijacked bool
}

func (w *hsFuzzWriter) Header() http.Header { return w.header }

func (w *hsFuzzWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *hsFuzzWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

func (w *hsFuzzWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, errors.New("hijacked twice")
	}
	w.hijacked = true
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}

// hsValidUpgrade is the oracle: RFC 6455 §4.2.1 items 1–6, stated
// independently of server.go.
func hsValidUpgrade(r *http.Request) bool {
	if r.Method != http.MethodGet || !r.ProtoAtLeast(1, 1) {
		return false
	}
	if !hsHasToken(r.Header["Upgrade"], "websocket") || !hsHasToken(r.Header["Connection"], "upgrade") {
		return false
	}
	keys := r.Header["Sec-Websocket-Key"]
	if len(keys) != 1 {
		return false
	}
	if k, err := base64.StdEncoding.DecodeString(keys[0]); err != nil || len(k) != 16 {
		return false
	}
	// §11.3.5: the version appears once in a request.
	v := r.Header["Sec-Websocket-Version"]
	return len(v) == 1 && v[0] == "13"
}

// hsOriginPlausible is what any same-origin policy (§10.2) needs at least:
// one http(s) Origin naming the requested host. Ports are left to the
// table tests.
func hsOriginPlausible(r *http.Request) bool {
	o := r.Header["Origin"]
	if len(o) == 0 {
		return true
	}
	if len(o) != 1 {
		return false
	}
	u, err := url.Parse(o[0])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	h, _ := splitHostPort(r.Host)
	return strings.EqualFold(u.Hostname(), h)
}

func hsHasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

func FuzzUpgradeRequest(f *testing.F) {
	valid := "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, s := range []string{
		valid + "\r\n",
		valid + "Origin: http://server.example.com\r\n\r\n",
		valid + "Origin: https://evil.example.com\r\n\r\n",
		valid + "Sec-WebSocket-Protocol: chat, superchat\r\n\r\n",
		valid + "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
		valid + "\r\n\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
		strings.Replace(valid, "GET", "POST", 1) + "Content-Length: 0\r\n\r\n",
		strings.Replace(valid, "HTTP/1.1", "HTTP/1.0", 1) + "\r\n",
		strings.Replace(valid, "13", "8", 1) + "\r\n",
		strings.Replace(valid, "Upgrade\r\n", "keep-alive, Upgrade\r\n", 1) + "\r\n",
		strings.Replace(valid, "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ", 1) + "\r\n",
		valid + "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\r\n",
		"GET ws://server.example.com/chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: WebSocket\r\nConnection: upgrade\r\n" +
			"Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
		if err != nil {
			return
		}
		// net/http's server answers 400 itself to an HTTP/1.1 request
		// without exactly one Host header; no handler sees it.
		if r.ProtoAtLeast(1, 1) && len(r.Header["Host"]) != 1 {
			return
		}
		serverEnd, clientEnd := net.Pipe()
		deadline := time.Now().Add(5 * time.Second)
		serverEnd.SetDeadline(deadline)
		clientEnd.SetDeadline(deadline)
		got := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(clientEnd)
			clientEnd.Close()
			got <- b
		}()
		w := &hsFuzzWriter{header: http.Header{}, conn: serverEnd}
		u := Upgrader{HeartbeatInterval: -1}
		c, err := u.Upgrade(w, r, nil)
		if c != nil {
			c.CloseNow()
		}
		// Close the pipe whatever happened, so the reader never waits for
		// the deadline (a Conn may not own the pipe, closing twice is fine).
		serverEnd.Close()
		wire := <-got
		valid := hsValidUpgrade(r)
		if err == nil {
			if c == nil {
				t.Fatal("nil *Conn and nil error")
			}
			if !valid || !hsOriginPlausible(r) {
				t.Fatalf("upgraded a request that is not a valid WebSocket handshake:\n%q", data)
			}
			want := "HTTP/1.1 101 Switching Protocols\r\n"
			accept := "Sec-WebSocket-Accept: " + acceptKey(r.Header.Get("Sec-Websocket-Key")) + "\r\n"
			if !bytes.HasPrefix(wire, []byte(want)) || !bytes.Contains(wire, []byte(accept)) {
				t.Fatalf("101 response %q lacks %q or %q", wire, want, accept)
			}
			return
		}
		if c != nil {
			t.Fatalf("both a *Conn and error %v", err)
		}
		if valid && len(r.Header["Origin"]) == 0 {
			t.Fatalf("refused a valid handshake (%v):\n%q", err, data)
		}
		var he HandshakeError
		if !errors.As(err, &he) {
			t.Fatalf("error %v (%T) is not a HandshakeError", err, err)
		}
		if w.hijacked || len(wire) != 0 {
			t.Fatalf("failed upgrade hijacked the connection and wrote %q", wire)
		}
		if w.status < 400 || w.status > 599 {
			t.Fatalf("failed upgrade wrote status %d", w.status)
		}
		switch w.status {
		case http.StatusUpgradeRequired:
			if w.header.Get("Sec-Websocket-Version") != "13" {
				t.Fatalf("426 without Sec-WebSocket-Version: 13: %v", w.header)
			}
		case http.StatusMethodNotAllowed:
			if w.header.Get("Allow") != http.MethodGet {
				t.Fatalf("405 without Allow: GET: %v", w.header)
			}
		}
	})
}

func FuzzClosePayload(f *testing.F) {
	f.Add(1000, "", []byte{})
	f.Add(1001, "going away", []byte{0x03, 0xe9})
	f.Add(1005, "x", []byte{0x03, 0xed})
	f.Add(1004, "", []byte{0x03, 0xec, 'h', 'i'})
	f.Add(4999, "héllo", []byte{0x13, 0x87, 0xff})
	f.Add(65536+1000, strings.Repeat("x", 124), []byte{0x03})
	f.Add(-1, "\xff", append([]byte{0x03, 0xe8}, strings.Repeat("y", 124)...))
	f.Fuzz(func(t *testing.T, code int, text string, raw []byte) {
		hsCheckCloseWithCode(t, code, text)
		if code < 0 || code > 0xffff {
			// Only uint16 codes have a wire form; CloseWithCode is checked above.
			code = int(uint16(code))
		}
		p := FormatCloseMessage(code, text)
		if code == CloseNoStatusReceived {
			if len(p) != 0 {
				t.Fatalf("FormatCloseMessage(1005) = %q, want empty", p)
			}
		} else if len(p) != 2+len(text) || binary.BigEndian.Uint16(p) != uint16(code) || string(p[2:]) != text {
			t.Fatalf("FormatCloseMessage(%d, %q) = %q", code, text, p)
		}
		// The send check agrees with the rules of RFC 6455 §5.5 and §7.4.
		sendable := code == CloseNoStatusReceived ||
			(len(p) <= 125 && frame.ValidReceivedCode(uint16(code)) && utf8.ValidString(text))
		if err := checkClosePayload(p); (err == nil) != sendable {
			t.Fatalf("checkClosePayload(FormatCloseMessage(%d, %q)) = %v, want ok=%v", code, text, err, sendable)
		}
		// On arbitrary bytes it agrees with the receive-side parser.
		_, _, perr := frame.ParseClose(raw)
		want := len(raw) == 0 || (len(raw) <= 125 && perr == nil)
		if err := checkClosePayload(raw); (err == nil) != want {
			t.Fatalf("checkClosePayload(%q) = %v, ParseClose error %v", raw, err, perr)
		}
	})
}

// hsCheckCloseWithCode calls CloseWithCode on a server connection over
// net.Pipe: a code and reason a close frame may carry (RFC 6455 §5.5.1,
// §7.4) go out exactly; anything else is an error and sends nothing.
func hsCheckCloseWithCode(t *testing.T, code int, text string) {
	serverEnd, peer := net.Pipe()
	deadline := time.Now().Add(5 * time.Second)
	serverEnd.SetDeadline(deadline)
	peer.SetDeadline(deadline)
	sent := make(chan []byte, 1)
	go func() {
		defer peer.Close()
		var h [2]byte
		if _, err := io.ReadFull(peer, h[:]); err != nil {
			sent <- nil
			return
		}
		p := make([]byte, h[1]&0x7f)
		io.ReadFull(peer, p)
		sent <- append(h[:], p...)
	}()
	c := newConn(serverEnd, connConfig{isServer: true, closeTimeout: time.Second})
	err := c.CloseWithCode(code, text)
	c.CloseNow()
	wire := <-sent
	sendable := ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999)) &&
		len(text) <= 123 && utf8.ValidString(text)
	if !sendable {
		// Codes outside uint16 must not be truncated (66536 is not 1000).
		if err == nil || wire != nil {
			t.Fatalf("CloseWithCode(%d, %q) = %v, sent %q; want an error and nothing sent", code, text, err, wire)
		}
		return
	}
	want := append([]byte{0x88, byte(2 + len(text)), byte(code >> 8), byte(code)}, text...)
	if err != nil || !bytes.Equal(wire, want) {
		t.Fatalf("CloseWithCode(%d, %q) = %v, sent %q; want %q", code, text, err, wire, want)
	}
}
