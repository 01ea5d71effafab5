package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/auth"
	"github.com/latchws/latch/websocket"
)

const (
	e2eSecret = "e2e-secret-of-at-least-32-bytes!!"
	e2eAPIKey = "e2e-api-key-0123456789"
)

// startProduction runs the binary with a configuration file: tokens
// required, the server API on its own address, and namespaces.
func startProduction(t *testing.T, namespaces string) (p *latchProc, apiAddr string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "latch.toml")
	cfg := "[auth]\nhmac_secret = \"" + e2eSecret + "\"\nconnect_timeout = \"5s\"\n" +
		"[api]\nkey = \"" + e2eAPIKey + "\"\naddr = \"127.0.0.1:0\"\n" + namespaces
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p = startLatch(t, "-config", file)
	return p, p.apiAddr
}

func mint(t *testing.T, id auth.Identity) string {
	t.Helper()
	tok, err := auth.SignHS256([]byte(e2eSecret), id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// wsClient is a plain protocol client: one JSON message at a time.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialToken(t *testing.T, url string) *wsClient {
	t.Helper()
	d := &websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) send(msg string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		c.t.Fatalf("send %s: %v", msg, err)
	}
}

// next returns the next message, decoded.
func (c *wsClient) next() map[string]any {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("not JSON: %q", b)
	}
	return m
}

// closeCode waits up to d for the connection to end and returns its close
// code (0 if it did not end).
func (c *wsClient) closeCode(d time.Duration) int {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func apiCall(t *testing.T, addr, key, method, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/api/"+method, strings.NewReader(body))
	req.Header.Set("Authorization", "apikey "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("API %s: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("API %s answered %d %q: not JSON", method, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

// The real binary in production shape: a backend publishes through the
// API and WebSocket subscribers get it; a token for one channel does not
// open another; the API refuses a wrong key.
func TestProductionPublishAndGrants(t *testing.T) {
	t.Parallel()
	p, apiAddr := startProduction(t, `
[[namespace]]
name = "news"
subscribe = "grant"
publish = "api"
history_size = 10
`)
	if apiAddr == "" {
		t.Fatal("no API address printed")
	}
	tok := mint(t, auth.Identity{User: "ann", ExpiresAt: time.Now().Add(time.Hour), Subscribe: []string{"news:eu"}})
	ann := dialToken(t, p.url("/ws?token="+tok))
	if w := ann.next(); w["type"] != "welcome" || w["user"] != "ann" {
		t.Fatalf("welcome %v, want one for user ann", w)
	}
	ann.send(`{"op":"subscribe","channel":"news:eu","id":"1"}`)
	if a := ann.next(); a["type"] != "ack" || a["offset"] != 0.0 || a["epoch"] == "" {
		t.Fatalf("subscribe news:eu: %v, want an ack at offset 0 with an epoch", a)
	}
	ann.send(`{"op":"subscribe","channel":"news:us","id":"2"}`)
	if e := ann.next(); e["type"] != "error" || e["code"] != "forbidden" {
		t.Fatalf("subscribe news:us: %v, want forbidden", e)
	}
	ann.send(`{"op":"publish","channel":"news:eu","data":1,"id":"3"}`)
	if e := ann.next(); e["code"] != "forbidden" {
		t.Fatalf("publish in an api-only namespace: %v, want forbidden", e)
	}

	status, res := apiCall(t, apiAddr, e2eAPIKey, "publish", `{"channel":"news:eu","data":{"headline":"hi"}}`)
	if status != 200 || res["offset"] != 1.0 {
		t.Fatalf("API publish: %d %v, want 200 at offset 1", status, res)
	}
	m := ann.next()
	if m["type"] != "message" || m["channel"] != "news:eu" || m["offset"] != 1.0 {
		t.Fatalf("subscriber got %v, want the publication at offset 1", m)
	}
	if d, _ := m["data"].(map[string]any); d["headline"] != "hi" {
		t.Fatalf("data %v", m["data"])
	}

	if status, res := apiCall(t, apiAddr, "wrong-key-0123456789", "publish", `{"channel":"news:eu","data":2}`); status != 401 {
		t.Fatalf("wrong API key: %d %v, want 401", status, res)
	}
	// A bad token is refused before the upgrade.
	resp, err := http.Get("http://" + p.addr + "/ws?token=not.a.token")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token: HTTP %d, want 401", resp.StatusCode)
	}
	// The token never reaches the logs.
	if strings.Contains(p.stderr.String(), tok) {
		t.Fatal("the token appears in the server's log")
	}
}

// A token's expiry closes the connection with 4002, unless the client
// refreshed it in time.
func TestProductionTokenExpiry(t *testing.T) {
	t.Parallel()
	p, _ := startProduction(t, "")
	// exp has a resolution of a second: 2 s ahead is 1–2 s away.
	short := func(user string) string {
		return mint(t, auth.Identity{User: user, ExpiresAt: time.Now().Add(2 * time.Second)})
	}
	expiring := dialToken(t, p.url("/ws"))
	expiring.next() // welcome
	expiring.send(`{"op":"connect","token":"` + short("bob") + `","id":"c"}`)
	if c := expiring.next(); c["type"] != "connected" || c["user"] != "bob" {
		t.Fatalf("connect: %v", c)
	}
	refreshed := dialToken(t, p.url("/ws"))
	refreshed.next()
	refreshed.send(`{"op":"connect","token":"` + short("carol") + `","id":"c"}`)
	if c := refreshed.next(); c["type"] != "connected" {
		t.Fatalf("connect: %v", c)
	}
	later := mint(t, auth.Identity{User: "carol", ExpiresAt: time.Now().Add(time.Hour)})
	refreshed.send(`{"op":"refresh","token":"` + later + `","id":"r"}`)
	if a := refreshed.next(); a["type"] != "ack" || a["expires"] == nil {
		t.Fatalf("refresh: %v", a)
	}

	if code := expiring.closeCode(6 * time.Second); code != 4002 {
		t.Fatalf("unrefreshed connection: close code %d, want 4002", code)
	}
	// Past the first token's expiry, the refreshed one still answers.
	refreshed.send(`{"op":"ping","id":"p"}`)
	if pong := refreshed.next(); pong["type"] != "pong" {
		t.Fatalf("refreshed connection: %v, want a pong", pong)
	}
	// Without a token the connection may not do anything but connect,
	// and is closed with 4001 when connect_timeout passes.
	anon := dialToken(t, p.url("/ws"))
	anon.next()
	anon.send(`{"op":"subscribe","channel":"x","id":"s"}`)
	if e := anon.next(); e["code"] != "unauthorized" {
		t.Fatalf("subscribe without a token: %v, want unauthorized", e)
	}
	if code := anon.closeCode(8 * time.Second); code != 4001 {
		t.Fatalf("no connect in time: close code %d, want 4001", code)
	}
}
