package websocket

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// h2FuzzWriter is an HTTP/2 ResponseWriter as far as Upgrade can tell:
// it flushes and takes stream deadlines, and it cannot be hijacked.
type h2FuzzWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *h2FuzzWriter) Header() http.Header { return w.header }
func (w *h2FuzzWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *h2FuzzWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
func (w *h2FuzzWriter) FlushError() error                { return nil }
func (w *h2FuzzWriter) SetReadDeadline(time.Time) error  { return nil }
func (w *h2FuzzWriter) SetWriteDeadline(time.Time) error { return nil }

// FuzzH2ConnectRequest feeds Upgrade HTTP/2 requests (RFC 8441 §4–5):
// a method, a :protocol and a header block. It must never panic, accept
// only a CONNECT for websocket, version 13 and a plausible origin, and
// answer every refusal with the status an HTTP/1.1 upgrade would get.
func FuzzH2ConnectRequest(f *testing.F) {
	valid := "Sec-WebSocket-Version: 13\r\n"
	for _, s := range []struct{ method, protocol, header string }{
		{"CONNECT", "websocket", valid},
		{"CONNECT", "websocket", valid + "Origin: https://server.example.com\r\n"},
		{"CONNECT", "websocket", valid + "Origin: https://evil.example.com\r\n"},
		{"CONNECT", "websocket", valid + "Sec-WebSocket-Protocol: chat, superchat\r\n"},
		{"CONNECT", "websocket", valid + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"},
		{"CONNECT", "websocket", "Sec-WebSocket-Version: 8\r\n"},
		{"CONNECT", "websocket", valid + valid},
		{"CONNECT", "webtransport", valid},
		{"CONNECT", "", valid},
		{"GET", "", valid + "Upgrade: websocket\r\nConnection: Upgrade\r\n"},
		{"POST", "websocket", valid},
	} {
		f.Add(s.method, s.protocol, []byte(s.header))
	}
	u := &Upgrader{EnableCompression: true, Subprotocols: []string{"chat"}}
	f.Fuzz(func(t *testing.T, method, protocol string, header []byte) {
		head := "GET /chat HTTP/1.1\r\nHost: server.example.com\r\n" + string(header) + "\r\n"
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil || method == "" {
			return
		}
		r.Method = method
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
		r.TLS = nil
		r.RequestURI = ""
		if protocol != "" {
			r.Header[":protocol"] = []string{protocol}
		}
		r.Body = io.NopCloser(bytes.NewReader(nil))
		w := &h2FuzzWriter{header: make(http.Header)}
		c, err := u.Upgrade(w, r, nil)
		if (c == nil) == (err == nil) {
			t.Fatalf("Upgrade returned conn %v and err %v", c, err)
		}
		versionOK := len(r.Header["Sec-Websocket-Version"]) == 1 && r.Header.Get("Sec-Websocket-Version") == "13"
		if c != nil {
			defer c.CloseNow()
			if method != http.MethodConnect || protocol != "websocket" || !versionOK || !hsOriginPlausible(r) {
				t.Fatalf("accepted %s :protocol %q with %v", method, protocol, r.Header)
			}
			if w.status != http.StatusOK || w.header.Get("Sec-Websocket-Accept") != "" {
				t.Fatalf("accepted with status %d, header %v; want 200 without Sec-WebSocket-Accept", w.status, w.header)
			}
			return
		}
		switch w.status {
		case http.StatusBadRequest, http.StatusForbidden, http.StatusUpgradeRequired, http.StatusNotImplemented:
		default:
			t.Fatalf("refused %s :protocol %q with status %d", method, protocol, w.status)
		}
		if w.status == http.StatusUpgradeRequired && w.header.Get("Sec-Websocket-Version") != "13" {
			t.Fatalf("426 without Sec-WebSocket-Version: 13")
		}
		if method == http.MethodConnect && protocol == "websocket" && versionOK && len(r.Header["Origin"]) == 0 {
			t.Fatalf("refused a valid CONNECT with %d: %v", w.status, err)
		}
	})
}
