package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/latchws/latch/internal/browsertest"
)

// selfSignedCert writes a certificate for 127.0.0.1 and its key; Chromium
// is told to accept it (--ignore-certificate-errors).
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
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
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// establishedTo counts the established TCP connections whose local port is
// port, from the kernel's table (/proc/net/tcp): the server's side of the
// connections the browser opened.
func establishedTo(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 4 || fields[3] != "01" { // TCP_ESTABLISHED
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
				n++
			}
		}
	}
	return n
}

// browserWebSocketScript exercises WebSockets to /echo from the page and
// resolves to a report: every check it makes, with what it saw.
const browserWebSocketScript = `(async () => {
  const report = {};
  const open = (path = "/echo") => new Promise((resolve, reject) => {
    const ws = new WebSocket("wss://" + location.host + path);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error("WebSocket error before open"));
  });
  const next = ws => new Promise((resolve, reject) => {
    ws.onmessage = e => resolve(e.data);
    ws.onclose = e => reject(new Error("closed " + e.code));
  });
  const closed = ws => new Promise(resolve => { ws.onclose = e => resolve({code: e.code, reason: e.reason, clean: e.wasClean}); });

  const ws = await open();
  ws.send("hello over h2");
  report.text = await next(ws);
  const bin = new Uint8Array([0, 1, 2, 254, 255]);
  ws.send(bin);
  report.binary = Array.from(new Uint8Array(await next(ws)));
  const big = new Uint8Array(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 255;
  ws.send(big);
  const back = new Uint8Array(await next(ws));
  report.bigLength = back.length;
  report.bigSame = back.length === big.length && back.every((v, i) => v === big[i]);
  // The server pings every 200 ms and drops a peer that does not answer
  // within 200 ms: alive after 1.5 s means the browser's pongs got back.
  await new Promise(r => setTimeout(r, 1500));
  ws.send("still here");
  report.afterPings = await next(ws);
  // The browser closes.
  const c1 = closed(ws);
  ws.close(4000, "bye from the page");
  report.browserClose = await c1;

  // The server closes: a message over -echo-max-message-size gets 1009.
  const ws2 = await open();
  const c2 = closed(ws2);
  ws2.send(new Uint8Array(3 << 20));
  report.serverClose = await c2;

  // 20 at once on /ws, each welcomed, then answering a ping.
  const many = await Promise.all(Array.from({length: 20}, () => open("/ws").then(w => next(w).then(m => (w.welcome = JSON.parse(m).type, w)))));
  const pongs = await Promise.all(many.map((w, i) => { const p = next(w); w.send(JSON.stringify({op: "ping", id: "p" + i})); return p; }));
  report.many = many.filter((w, i) => w.welcome === "welcome" && JSON.parse(pongs[i]).type === "pong" && JSON.parse(pongs[i]).id === "p" + i).length;
  report.manyOpen = many.filter(w => w.readyState === WebSocket.OPEN).length;
  window.keep = many; // closed by the test, after it counted connections
  return report;
})()`

type browserReport struct {
	Text         string `json:"text"`
	Binary       []int  `json:"binary"`
	BigLength    int    `json:"bigLength"`
	BigSame      bool   `json:"bigSame"`
	AfterPings   string `json:"afterPings"`
	BrowserClose struct {
		Code   int    `json:"code"`
		Reason string `json:"reason"`
		Clean  bool   `json:"clean"`
	} `json:"browserClose"`
	ServerClose struct {
		Code  int  `json:"code"`
		Clean bool `json:"clean"`
	} `json:"serverClose"`
	Many     int `json:"many"`
	ManyOpen int `json:"manyOpen"`
}

// runBrowserWebSockets starts latch over TLS with flags, runs the script
// in a headless Chromium page loaded from it and returns the report, the
// latch process and the browser tab.
func runBrowserWebSockets(t *testing.T, flags ...string) (browserReport, *latchProc, *browsertest.DemoPage) {
	t.Helper()
	browsertest.Require(t)
	cert, key := selfSignedCert(t)
	args := append([]string{"-tls-cert", cert, "-tls-key", key, "-admin-addr", "127.0.0.1:0",
		"-heartbeat-interval", "200ms", "-echo-max-message-size", "2097152"}, flags...)
	p := startLatch(t, args...)
	bctx := browsertest.New(t, 60*time.Second, chromedp.Flag("ignore-certificate-errors", true))
	page := &browsertest.DemoPage{Name: "page", Ctx: bctx}
	page.Load(t, "https://"+p.addr+"/healthz")
	raw, err := chromedp.Run(bctx, chromedp.Evaluate[json.RawMessage](browserWebSocketScript, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("the page's WebSockets: %v", err)
	}
	var r browserReport
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("report %s: %v", raw, err)
	}
	checkBrowserReport(t, r)
	return r, p, page
}

func checkBrowserReport(t *testing.T, r browserReport) {
	t.Helper()
	if r.Text != "hello over h2" || fmt.Sprint(r.Binary) != "[0 1 2 254 255]" {
		t.Errorf("text %q, binary %v", r.Text, r.Binary)
	}
	if r.BigLength != 1<<20 || !r.BigSame {
		t.Errorf("1 MiB echo: %d bytes, same %v", r.BigLength, r.BigSame)
	}
	if r.AfterPings != "still here" {
		t.Errorf("after the server's pings: %q", r.AfterPings)
	}
	if c := r.BrowserClose; c.Code != 4000 || !c.Clean {
		t.Errorf("browser close: %+v, want 4000 echoed, clean", c)
	}
	if c := r.ServerClose; c.Code != 1009 || !c.Clean {
		t.Errorf("server close: %+v, want 1009, clean", c)
	}
	if r.Many != 20 || r.ManyOpen != 20 {
		t.Errorf("20 WebSockets on /ws: %d welcomed and answered, %d open", r.Many, r.ManyOpen)
	}
}

// wsRemoteAddrs returns the distinct remote addresses of the /ws clients
// in latch's debug log.
func wsRemoteAddrs(log string) map[string]int {
	addrs := map[string]int{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="hub: client connected"`) {
			continue
		}
		for _, f := range strings.Fields(line) {
			if a, ok := strings.CutPrefix(f, "remote="); ok {
				addrs[a]++
			}
		}
	}
	return addrs
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, ps, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(ps)
	return port
}

// TestBrowserWebSocketsOverHTTP2: Chromium opens its wss:// WebSockets to
// latch serve over TLS as HTTP/2 extended CONNECT streams (RFC 8441): the
// server counts each as one, and the 20 on /ws share one TCP connection.
func TestBrowserWebSocketsOverHTTP2(t *testing.T) {
	_, p, page := runBrowserWebSockets(t, "-log-level", "debug")
	if n := p.metric(t, `latch_http2_connections_total{route="/echo"}`); n != 2 {
		t.Errorf("/echo WebSockets that arrived as HTTP/2 CONNECT: %v, want both", n)
	}
	if n := p.metric(t, `latch_http2_connections_total{route="/ws"}`); n != 20 {
		t.Errorf("/ws WebSockets that arrived as HTTP/2 CONNECT: %v, want all 20", n)
	}
	// The hub logs each client's remote address, which is its TCP
	// connection's. (Under load Chromium may open a spare connection that
	// carries nothing, a backup connect job; it is not counted.)
	if addrs := wsRemoteAddrs(p.stderr.String()); len(addrs) != 1 {
		t.Errorf("the 20 WebSockets on /ws came over %d TCP connections (%v), want 1", len(addrs), addrs)
	}
	t.Logf("TCP connections to latch: %d", establishedTo(t, portOf(t, p.addr)))
	if n := p.metric(t, "latch_connections"); n != 20 {
		t.Errorf("latch_connections = %v, want the 20 still open", n)
	}
	// Closing them all from the page ends every stream cleanly.
	if err := page.Eval(`window.keep.forEach(w => w.close(1000)), true`, new(bool)); err != nil {
		t.Fatal(err)
	}
	for i := 0; p.metric(t, "latch_connections") != 0; i++ {
		if i == 100 {
			t.Fatalf("latch_connections = %v after the page closed them", p.metric(t, "latch_connections"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := p.metric(t, `latch_close_codes_total{code="1000"}`); n != 20 {
		t.Errorf("close 1000 counted %v times, want 20", n)
	}
}

// TestBrowserWebSocketsWithoutHTTP2: with -http2=false the same page gets
// the same working WebSockets over HTTP/1.1.
func TestBrowserWebSocketsWithoutHTTP2(t *testing.T) {
	_, p, _ := runBrowserWebSockets(t, "-http2=false")
	for _, route := range []string{"/echo", "/ws"} {
		if n := p.metric(t, `latch_http2_connections_total{route="`+route+`"}`); n != 0 {
			t.Errorf("HTTP/2 WebSockets on %s: %v, want 0 with -http2=false", route, n)
		}
	}
	if n := establishedTo(t, portOf(t, p.addr)); n < 20 {
		t.Errorf("%d TCP connections with 20 WebSockets open over HTTP/1.1, want one each", n)
	}
}
