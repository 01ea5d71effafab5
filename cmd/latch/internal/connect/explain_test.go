package connect

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/websocket"
)

// echo upgrades with up and echoes until the peer leaves.
func echo(up *websocket.Upgrader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			mt, p, err := conn.ReadMessage()
			if err != nil || conn.WriteMessage(mt, p) != nil {
				return
			}
		}
	}
}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") }

// wantLines fails unless stderr holds each of want, and none of notWant.
func wantLines(t *testing.T, stderr string, want []string, notWant ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
	}
	for _, w := range notWant {
		if strings.Contains(stderr, w) {
			t.Errorf("stderr has %q:\n%s", w, stderr)
		}
	}
}

// A web page where a WebSocket was expected: say so and name the
// endpoints, without the page; -v shows the response, truncated.
func TestExplainNotWebSocketEndpoint(t *testing.T) {
	t.Parallel()
	page := "<!doctype html><html><body>" + strings.Repeat("demo page ", 200) + "</body></html>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, page)
	}))
	t.Cleanup(srv.Close)
	u := wsURL(srv.URL) + "/"
	code, out, errOut := run(t, context.Background(), strings.NewReader(""), u)
	if code != ExitFailure || out != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing", code, out)
	}
	wantLines(t, errOut, []string{
		"latch connect: " + u + " is not a WebSocket endpoint: the server answered HTTP 200 OK, a plain web page, instead of upgrading\n",
		"latch connect: hint: connect to the path that takes WebSockets; on latch serve, " + wsURL(srv.URL) + "/ws or " + wsURL(srv.URL) + "/echo\n",
	}, "<html", "demo page")
	if n := strings.Count(errOut, "\n"); n != 2 {
		t.Errorf("%d lines without -v, want 2:\n%s", n, errOut)
	}

	code, _, errOut = run(t, context.Background(), strings.NewReader(""), "-v", u)
	if code != ExitFailure {
		t.Errorf("-v: exit %d", code)
	}
	wantLines(t, errOut, []string{"is not a WebSocket endpoint", "< HTTP/1.1 200 OK\n",
		"< Content-Type: text/html; charset=utf-8\n", "<!doctype html>", "[body truncated at 512 bytes]"}, "</html>")
}

// A refused Origin names -origin and the server's -allowed-origins.
func TestExplainOriginRefused(t *testing.T) {
	t.Parallel()
	// The default origin check: the server's own origin only.
	srv := httptest.NewServer(echo(&websocket.Upgrader{}))
	t.Cleanup(srv.Close)
	u := wsURL(srv.URL) + "/echo"
	code, _, errOut := run(t, context.Background(), strings.NewReader("x\n"), "-origin", "https://evil.test", u)
	if code != ExitFailure {
		t.Errorf("exit %d, want 1", code)
	}
	wantLines(t, errOut, []string{
		`latch connect: the server refused Origin "https://evil.test" (HTTP 403 Forbidden): browsers on that page may not connect` + "\n",
		"latch connect: hint: pass -origin with an origin the server accepts (its own, " + srv.URL + "), or let the server accept this one: latch serve -allowed-origins evil.test\n",
	}, "Upgrader")

	// -v shows the server's own words: the default check names the rule that refused.
	_, _, errOut = run(t, context.Background(), strings.NewReader("x\n"), "-v", "-origin", "https://evil.test", u)
	wantLines(t, errOut, []string{"< HTTP/1.1 403 Forbidden\n",
		"< Forbidden: websocket: request origin not allowed: the Origin header is neither this server's own origin nor in Upgrader.OriginPatterns\n"})

	// The origin the hint names is accepted.
	code, out, errOut := run(t, context.Background(), strings.NewReader("hi\n"), "-origin", srv.URL, "-wait", "2s", u)
	if code != ExitOK || out != "hi\n" {
		t.Errorf("own origin: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// A server whose own check wants an Origin, and none was sent.
func TestExplainOriginMissing(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(echo(&websocket.Upgrader{CheckOrigin: func(r *http.Request) bool { return r.Header.Get("Origin") != "" }}))
	t.Cleanup(srv.Close)
	code, _, errOut := run(t, context.Background(), strings.NewReader(""), wsURL(srv.URL))
	if code != ExitFailure {
		t.Errorf("exit %d, want 1", code)
	}
	wantLines(t, errOut, []string{
		"latch connect: the server refused the handshake for want of an Origin it accepts (HTTP 403 Forbidden); none was sent\n",
		"latch connect: hint: send the origin of a page the server accepts with -origin URL\n",
	})
}

// newCert returns a self-signed certificate (its own CA) for names, valid
// from notBefore to notAfter, and its PEM.
func newCert(t *testing.T, notBefore, notAfter time.Time, dnsNames []string, ips []net.IP) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "latch test"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// tlsServer serves echo over TLS with cert; its handshake errors are
// expected and not logged.
func tlsServer(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(echo(&websocket.Upgrader{}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return "wss" + strings.TrimPrefix(srv.URL, "https")
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each certificate failure says what is wrong and what to pass.
func TestExplainCertificate(t *testing.T) {
	t.Parallel()
	now := time.Now()
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	good, goodPEM := newCert(t, now.Add(-time.Hour), now.Add(time.Hour), nil, loopback)
	expired, expiredPEM := newCert(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour), nil, loopback)
	other, otherPEM := newCert(t, now.Add(-time.Hour), now.Add(time.Hour), []string{"example.test"}, nil)

	goodURL := tlsServer(t, good)
	hostPort := strings.TrimPrefix(goodURL, "wss://")

	t.Run("unknown authority", func(t *testing.T) {
		t.Parallel()
		code, _, errOut := run(t, context.Background(), strings.NewReader("x\n"), goodURL)
		if code != ExitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		wantLines(t, errOut, []string{
			"latch connect: the certificate of " + hostPort + " is signed by an unknown authority (self-signed, or a private CA)\n",
			"latch connect: hint: trust the server's CA with -cacert FILE (PEM), or skip the check with -insecure (for testing only)\n",
		})
		// The hint works: -cacert with the server's CA connects.
		code, out, errOut := run(t, context.Background(), strings.NewReader("trusted\n"),
			"-cacert", writeFile(t, "ca.pem", goodPEM), "-wait", "2s", goodURL)
		if code != ExitOK || out != "trusted\n" {
			t.Errorf("-cacert: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("expired", func(t *testing.T) {
		t.Parallel()
		u := tlsServer(t, expired)
		code, _, errOut := run(t, context.Background(), strings.NewReader("x\n"), "-cacert", writeFile(t, "ca.pem", expiredPEM), u)
		if code != ExitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		wantLines(t, errOut, []string{
			"latch connect: the certificate of " + strings.TrimPrefix(u, "wss://") + " is outside its validity (valid " +
				now.Add(-48*time.Hour).UTC().Format(time.DateOnly) + " to " + now.Add(-24*time.Hour).UTC().Format(time.DateOnly),
			"latch connect: hint: renew the server's certificate (or check this machine's clock); -insecure skips the check (for testing only)\n",
		})
	})
	t.Run("wrong name", func(t *testing.T) {
		t.Parallel()
		u := tlsServer(t, other)
		code, _, errOut := run(t, context.Background(), strings.NewReader("x\n"), "-cacert", writeFile(t, "ca.pem", otherPEM), u)
		if code != ExitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		wantLines(t, errOut, []string{
			"latch connect: the certificate of " + strings.TrimPrefix(u, "wss://") + ` is for example.test, not "127.0.0.1"` + "\n",
			"latch connect: hint: connect with a name the certificate lists, or skip the check with -insecure (for testing only)\n",
		})
	})
	t.Run("bad cacert", func(t *testing.T) {
		t.Parallel()
		code, _, errOut := run(t, context.Background(), strings.NewReader(""), "-cacert", writeFile(t, "ca.pem", []byte("not pem")), goodURL)
		if code != ExitUsage || !strings.Contains(errOut, "latch connect: -cacert: no PEM certificate in ") {
			t.Errorf("exit %d, stderr %q; want 2 and the file named", code, errOut)
		}
	})
	t.Run("wss to plain", func(t *testing.T) {
		t.Parallel()
		plain := httptest.NewServer(echo(&websocket.Upgrader{}))
		plain.Config.ErrorLog = log.New(io.Discard, "", 0)
		t.Cleanup(plain.Close)
		u := "wss" + strings.TrimPrefix(plain.URL, "http")
		_, _, errOut := run(t, context.Background(), strings.NewReader(""), u)
		wantLines(t, errOut, []string{
			"latch connect: " + strings.TrimPrefix(u, "wss://") + " answered without TLS, but the URL is wss://\n",
			"latch connect: hint: use ws:// (or http://) for a server without TLS\n",
		})
	})
	t.Run("ws to TLS", func(t *testing.T) {
		t.Parallel()
		u := "ws://" + hostPort
		_, _, errOut := run(t, context.Background(), strings.NewReader(""), u)
		wantLines(t, errOut, []string{
			"latch connect: the server speaks TLS, but the URL is ws:// (HTTP 400 Bad Request)\n",
			"latch connect: hint: use wss:// (or https://)\n",
		})
	})
}

// Servers that cannot be reached, or do not answer.
func TestExplainUnreachable(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		code, _, errOut := run(t, context.Background(), strings.NewReader(""), "ws://"+addr+"/ws")
		if code != ExitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		wantLines(t, errOut, []string{
			"latch connect: nothing listens on " + addr + " (connection refused)\n",
			"latch connect: hint: start the server (latch serve prints the address it listens on), or check the host and port\n",
		})
	})
	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		// Accepts and never answers the handshake.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		addr := ln.Addr().String()
		code, _, errOut := run(t, context.Background(), strings.NewReader(""), "-timeout", "300ms", "ws://"+addr+"/ws")
		if code != ExitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		wantLines(t, errOut, []string{
			"latch connect: no WebSocket handshake from " + addr + " within -timeout 300ms\n",
			"latch connect: hint: check that the server is up and reachable, or give it longer with -timeout\n",
		})
	})
	t.Run("not found", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(srv.Close)
		code, _, errOut := run(t, context.Background(), strings.NewReader(""), wsURL(srv.URL)+"/chat")
		if code != ExitFailure {
			t.Errorf("exit %d, want 1", code)
		}
		wantLines(t, errOut, []string{
			"latch connect: the server has no /chat (HTTP 404 Not Found)\n",
			"latch connect: hint: check the path; on latch serve, WebSockets are on " + wsURL(srv.URL) + "/ws and " + wsURL(srv.URL) + "/echo\n",
		})
	})
}
