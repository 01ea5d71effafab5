package interop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchws/latch/websocket"
	_ "github.com/latchws/latch/websocket/xconnect" // RFC 8441 on this binary's servers
)

// TestNodeHTTP2 runs WebSockets over HTTP/2 (RFC 8441) between Latch and
// Node.js's built-in http2 module (interop/node/h2peer.js), both ways.
func TestNodeHTTP2(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	requirePeer(t, err == nil, "node")
	script := filepath.Join("node", "h2peer.js")
	t.Run("latch-server", func(t *testing.T) { nodeH2ClientToLatch(t, node, script) })
	t.Run("latch-client", func(t *testing.T) { latchH2ClientToNode(t, node, script) })
}

// nodeH2ClientToLatch: Node's http2 client opens two WebSockets on one
// session to Latch's Upgrader; text, 1 MiB, ping, and a close from each side.
func nodeH2ClientToLatch(t *testing.T, node, script string) {
	var connects, tcp atomic.Int32
	u := &websocket.Upgrader{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		if r.Method == http.MethodConnect && r.ProtoMajor == 2 {
			connects.Add(1)
		}
		defer c.Close()
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if string(p) == "close-me" {
				c.CloseWithCode(4001, "latch closes")
				return
			}
			if err := c.WriteMessage(mt, p); err != nil {
				return
			}
		}
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			tcp.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, script, "dial", "wss"+strings.TrimPrefix(srv.URL, "https")+"/ws").CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	var r struct {
		EnableConnectProtocol bool   `json:"enableConnectProtocol"`
		Text                  string `json:"text"`
		BigSame               bool   `json:"bigSame"`
		Pong                  string `json:"pong"`
		Second                string `json:"second"`
		ClientClose           struct{ Op, Code int }
		ClientCloseEnded      bool `json:"clientCloseEnded"`
		ServerClose           struct {
			Op, Code int
			Reason   string
		}
		ServerCloseEnded bool `json:"serverCloseEnded"`
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("node report %q: %v", out, err)
	}
	if !r.EnableConnectProtocol {
		t.Error("Node saw no SETTINGS_ENABLE_CONNECT_PROTOCOL")
	}
	if r.Text != "hello from node" || !r.BigSame || r.Pong != "node-ping" || r.Second != "second stream" {
		t.Errorf("echoes: %+v", r)
	}
	if r.ClientClose.Op != 8 || r.ClientClose.Code != 1000 || !r.ClientCloseEnded {
		t.Errorf("Node's close: answered %+v, END_STREAM %v; want close 1000 then END_STREAM", r.ClientClose, r.ClientCloseEnded)
	}
	if r.ServerClose.Op != 8 || r.ServerClose.Code != 4001 || r.ServerClose.Reason != "latch closes" || !r.ServerCloseEnded {
		t.Errorf("Latch's close: %+v, END_STREAM %v; want 4001 then END_STREAM", r.ServerClose, r.ServerCloseEnded)
	}
	if connects.Load() != 2 || tcp.Load() != 1 {
		t.Errorf("%d HTTP/2 CONNECTs on %d TCP connections, want 2 on 1", connects.Load(), tcp.Load())
	}
}

// latchH2ClientToNode: Latch's Dialer with an HTTP2Pool opens two
// WebSockets to Node's http2 server, on one session.
func latchH2ClientToNode(t *testing.T, node, script string) {
	certFile, keyFile, roots := h2Cert(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, "serve", certFile, keyFile)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	events := make(chan map[string]any, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				events <- ev
			}
		}
		close(events)
	}()
	next := func(want string) map[string]any {
		t.Helper()
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("node exited waiting for %s\n%s", want, stderr.String())
				}
				if _, has := ev[want]; has || ev["event"] == want {
					return ev
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s from node\n%s", want, stderr.String())
			}
		}
	}
	port := int(next("port")["port"].(float64))
	pool := &websocket.HTTP2Pool{}
	defer pool.CloseIdleConnections()
	d := &websocket.Dialer{HTTP2: pool, HandshakeTimeout: 5 * time.Second, TLSClientConfig: &tls.Config{RootCAs: roots}}
	url := "wss://127.0.0.1:" + strconv.Itoa(port) + "/ws"
	dial := func() (*websocket.Conn, map[string]any) {
		c, resp, err := d.Dial(url, nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		if resp.ProtoMajor != 2 {
			t.Fatalf("dialled over %s, want HTTP/2", resp.Proto)
		}
		ev := next("connect")
		if ev["protocol"] != "websocket" {
			t.Fatalf("node saw %v", ev)
		}
		return c, ev
	}
	a, _ := dial()
	defer a.CloseNow()
	b, ev := dial()
	defer b.CloseNow()
	if ev["sessions"] != 1.0 {
		t.Fatalf("node had %v sessions for two WebSockets, want 1", ev["sessions"])
	}
	echo := func(c *websocket.Conn, mt int, p []byte) {
		t.Helper()
		if err := c.WriteMessage(mt, p); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		gt, got, err := c.ReadMessage()
		if err != nil || gt != mt || !bytes.Equal(got, p) {
			t.Fatalf("echo of %d bytes: type %d, %d bytes, %v", len(p), gt, len(got), err)
		}
	}
	echo(a, websocket.TextMessage, []byte("hello from latch"))
	bigMsg := make([]byte, 1<<20)
	rand.Read(bigMsg)
	echo(a, websocket.BinaryMessage, bigMsg)
	echo(b, websocket.TextMessage, []byte("second stream"))
	pong := make(chan string, 1)
	a.SetPongHandler(func(s string) error { pong <- s; return nil })
	a.WriteControl(websocket.PingMessage, []byte("latch-ping"), time.Now().Add(time.Second))
	go a.ReadMessage()
	select {
	case s := <-pong:
		if s != "latch-ping" {
			t.Errorf("pong %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no pong from node")
	}
	// Node closes b.
	b.WriteMessage(websocket.TextMessage, []byte("cmd close 4002"))
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := b.ReadMessage(); !websocket.IsCloseError(err, 4002) {
		t.Errorf("node's close: %v, want 4002", err)
	}
	if ev := next("close"); ev["code"] != 4002.0 {
		t.Errorf("node saw the answer %v, want 4002 echoed", ev)
	}
	// Latch closes a: the closing handshake ends with Node's END_STREAM.
	start := time.Now()
	if err := a.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if ev := next("close"); ev["code"] != 1000.0 {
		t.Errorf("node saw close %v, want 1000", ev)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v: the handshake waited for its timeout", d)
	}
}

// h2Cert writes a self-signed certificate for 127.0.0.1 and its key.
func h2Cert(t *testing.T) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}
