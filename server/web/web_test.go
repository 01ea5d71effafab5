package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/latchws/latch/server/web"
	"github.com/latchws/latch/websocket"
)

const chromiumPath = "/usr/bin/chromium"

func TestEmbeddedFiles(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"index.html", "app.js", "style.css"} {
		b, err := fs.ReadFile(web.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		// Everything is embedded: no CDN, no external fonts or scripts.
		for _, bad := range []string{"http://", "https://", "//cdn", "@import", "innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"} {
			if bytes.Contains(b, []byte(bad)) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
	index, _ := fs.ReadFile(web.FS, "index.html")
	for _, id := range []string{"state", "messages", "name", "channel", "text", "send"} {
		if !bytes.Contains(index, []byte(`id="`+id+`"`)) {
			t.Errorf("index.html has no element with id %q", id)
		}
	}
}

// standIn is a minimal server of the latch pub/sub protocol (welcome,
// subscribe, unsubscribe, publish with fan-out, ping), enough for the page.
type standIn struct {
	addr string
	srv  *http.Server
	wg   sync.WaitGroup // handler goroutines of upgraded connections

	mu      sync.Mutex
	conns   map[*websocket.Conn]map[string]bool // guarded by mu: channels of each conn
	nextID  int                                 // guarded by mu
	stopped bool                                // guarded by mu
	once    sync.Once
}

// startStandIn listens on addr, retrying for a while when the address is
// still held by a previous instance.
func startStandIn(t *testing.T, addr string) *standIn {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	s := &standIn{addr: ln.Addr().String(), conns: map[*websocket.Conn]map[string]bool{}}
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(web.FS))
	mux.HandleFunc("/ws", s.serveWS)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	t.Cleanup(s.stop)
	return s
}

// stop closes the listener and drops every connection, as a crash or restart
// would, then waits for the handlers.
func (s *standIn) stop() {
	s.once.Do(func() {
		s.srv.Close()
		s.mu.Lock()
		s.stopped = true
		for c := range s.conns {
			c.CloseNow()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

func (s *standIn) subscribers(ch string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, chans := range s.conns {
		if chans[ch] {
			n++
		}
	}
	return n
}

type request struct {
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	ID      string          `json:"id,omitempty"`
	Data    json.RawMessage `json:"data"`
}

type reply struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Client  string          `json:"client,omitempty"`
	Channel string          `json:"channel,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Code    string          `json:"code,omitempty"`
	Message string          `json:"message,omitempty"`
}

func (s *standIn) serveWS(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{Subprotocols: []string{"latch.v1"}}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		c.CloseNow()
		return
	}
	s.wg.Add(1)
	s.nextID++
	id := fmt.Sprintf("c%d", s.nextID)
	s.conns[c] = map[string]bool{}
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.CloseNow()
	}()

	if c.WriteJSON(reply{Type: "welcome", Client: id}) != nil {
		return
	}
	for {
		var req request
		if err := c.ReadJSON(&req); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				c.WriteJSON(reply{Type: "error", Code: "bad_request", Message: "not JSON"})
				continue
			}
			return
		}
		switch req.Op {
		case "subscribe", "unsubscribe":
			s.mu.Lock()
			s.conns[c][req.Channel] = req.Op == "subscribe"
			s.mu.Unlock()
		case "publish":
			s.mu.Lock()
			var to []*websocket.Conn
			for sc, chans := range s.conns {
				if chans[req.Channel] {
					to = append(to, sc)
				}
			}
			s.mu.Unlock()
			for _, sc := range to {
				sc.WriteJSON(reply{Type: "message", Channel: req.Channel, Data: req.Data})
			}
		case "ping":
			c.WriteJSON(reply{Type: "pong", ID: req.ID})
			continue
		default:
			c.WriteJSON(reply{Type: "error", ID: req.ID, Code: "unknown_op", Message: "unknown op"})
			continue
		}
		c.WriteJSON(reply{Type: "ack", ID: req.ID})
	}
}

// tab is one page of the browser, with the uncaught exceptions it threw.
type tab struct {
	name string
	ctx  context.Context
	mu   sync.Mutex
	errs []string // guarded by mu
}

func (tb *tab) eval(t *testing.T, js string, v any) error {
	t.Helper()
	raw, err := chromedp.Run(tb.ctx, chromedp.Evaluate[json.RawMessage](js))
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// waitFor polls js in the page until ok accepts its value, within the
// test's browser deadline.
func waitFor[T any](t *testing.T, tb *tab, what, js string, ok func(T) bool) T {
	t.Helper()
	var v T
	for i := 0; ; i++ {
		var cur T
		err := tb.eval(t, js, &cur)
		if err == nil {
			v = cur
			if ok(cur) {
				return cur
			}
		}
		if tb.ctx.Err() != nil || i > 600 {
			t.Fatalf("%s: timed out waiting for %s; last value %v, err %v", tb.name, what, v, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

const (
	jsState    = `[document.getElementById("state").dataset.state, document.getElementById("state").textContent]`
	jsMessages = `[...document.querySelectorAll("#messages .msg")].map(e => e.querySelector(".who").textContent + ": " + e.querySelector(".body").textContent)`
)

func waitState(t *testing.T, tb *tab, want string) []string {
	t.Helper()
	return waitFor(t, tb, "state "+want, jsState, func(v []string) bool { return len(v) == 2 && v[0] == want })
}

func waitMessage(t *testing.T, tb *tab, want string) {
	t.Helper()
	waitFor(t, tb, "message "+want, jsMessages, func(v []string) bool {
		for _, m := range v {
			if m == want {
				return true
			}
		}
		return false
	})
}

func TestChatInChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := "Chromium (" + chromiumPath + ") is not installed; see PEERS.md"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	s1 := startStandIn(t, "127.0.0.1:0")
	addr := s1.addr

	deadline, cancelDeadline := context.WithTimeout(context.Background(), 60*time.Second)
	// The flags PEERS.md lists for running as root without network noise.
	actx, cancelAlloc := chromedp.NewExecAllocator(deadline,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 640),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	var consoleWG sync.WaitGroup
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelDeadline()
		consoleWG.Wait()
	})

	// Start the browser first: a tab context made before it would start its own.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	ctx2, cancelTab2 := chromedp.NewContext(bctx)
	t.Cleanup(cancelTab2)
	tabs := []*tab{{name: "tab 1", ctx: bctx}, {name: "tab 2", ctx: ctx2}}
	for _, tb := range tabs {
		// Open the tab before subscribing to its console.
		if err := chromedp.Do(tb.ctx, chromedp.Navigate("about:blank")); err != nil {
			t.Fatalf("%s: open: %v", tb.name, err)
		}
		msgs := chromedp.Console(tb.ctx)
		consoleWG.Add(1)
		go func() {
			defer consoleWG.Done()
			for m, err := range msgs {
				if err != nil {
					return
				}
				if m.Type == chromedp.ConsoleException {
					tb.mu.Lock()
					tb.errs = append(tb.errs, m.Text)
					tb.mu.Unlock()
				}
			}
		}()
		if err := chromedp.Do(tb.ctx, chromedp.Navigate("http://"+addr+"/#lobby")); err != nil {
			t.Fatalf("%s: load page: %v", tb.name, err)
		}
	}
	for _, tb := range tabs {
		waitState(t, tb, "open")
	}
	if err := chromedp.Do(tabs[0].ctx, chromedp.SetValue(chromedp.ID("name"), "alice")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tabs[1].ctx, chromedp.SetValue(chromedp.ID("name"), "bob")); err != nil {
		t.Fatal(err)
	}
	waitSubscribers(t, s1, 2)

	// Enter sends.
	if err := chromedp.Do(tabs[0].ctx, chromedp.SendKeys(chromedp.ID("text"), "hello from alice\n")); err != nil {
		t.Fatal(err)
	}
	for _, tb := range tabs {
		waitMessage(t, tb, "alice: hello from alice")
	}
	// User text is never parsed as HTML.
	const evil = `<img src=x onerror="window.pwned=1"><b>bold</b>`
	if err := chromedp.Do(tabs[1].ctx, chromedp.SendKeys(chromedp.ID("text"), evil+"\n")); err != nil {
		t.Fatal(err)
	}
	for _, tb := range tabs {
		waitMessage(t, tb, "bob: "+evil)
		var n int
		if err := tb.eval(t, `document.querySelectorAll("#messages img, #messages b").length + (window.pwned ? 100 : 0)`, &n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: message text was rendered as HTML (%d)", tb.name, n)
		}
	}
	var input string
	if err := tabs[0].eval(t, `document.getElementById("text").value`, &input); err != nil || input != "" {
		t.Errorf("message input after sending = %q, %v; want it cleared", input, err)
	}

	// The server goes away: the pages back off and say so.
	s1.stop()
	for _, tb := range tabs {
		st := waitState(t, tb, "reconnecting")
		if !strings.HasPrefix(st[1], "reconnecting in ") || !strings.Contains(st[1], "s") {
			t.Errorf("%s: state text %q, want a countdown", tb.name, st[1])
		}
		var disabled bool
		if err := tb.eval(t, `document.getElementById("send").disabled`, &disabled); err != nil || !disabled {
			t.Errorf("%s: #send enabled while reconnecting (%v)", tb.name, err)
		}
	}
	// Let at least one reconnect attempt fail against the closed port.
	time.Sleep(1500 * time.Millisecond)
	for _, tb := range tabs {
		var st []string
		if err := tb.eval(t, jsState, &st); err != nil {
			t.Fatal(err)
		}
		if st[0] == "open" {
			t.Fatalf("%s: open while the server is down", tb.name)
		}
	}

	s2 := startStandIn(t, addr)
	for _, tb := range tabs {
		waitState(t, tb, "open")
	}
	// The pages re-subscribe by themselves.
	waitSubscribers(t, s2, 2)
	if err := chromedp.Do(tabs[1].ctx,
		chromedp.SetValue(chromedp.ID("text"), "back after restart"),
		chromedp.Click(chromedp.ID("send")),
	); err != nil {
		t.Fatal(err)
	}
	for _, tb := range tabs {
		waitMessage(t, tb, "bob: back after restart")
	}
	// Messages from before the restart are still on screen.
	msgs := waitFor(t, tabs[0], "all messages", jsMessages, func(v []string) bool { return len(v) == 3 })
	if msgs[0] != "alice: hello from alice" {
		t.Errorf("first message = %q", msgs[0])
	}

	// Disconnect closes cleanly and stays closed; Connect opens again.
	if err := chromedp.Do(tabs[1].ctx, chromedp.Click(chromedp.ID("toggle"))); err != nil {
		t.Fatal(err)
	}
	if st := waitState(t, tabs[1], "closed"); st[1] != "closed (code 1000)" {
		t.Errorf("state text after Disconnect = %q", st[1])
	}
	waitSubscribers(t, s2, 1)
	if err := chromedp.Do(tabs[1].ctx, chromedp.Click(chromedp.ID("toggle"))); err != nil {
		t.Fatal(err)
	}
	waitState(t, tabs[1], "open")
	waitSubscribers(t, s2, 2)

	png, err := chromedp.Run(tabs[0].ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("screenshot is not a PNG")
	}
	for _, p := range []string{filepath.Join(t.TempDir(), "latch-demo.png"), "/tmp/latch-demo.png"} {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Errorf("write screenshot: %v", err)
		}
	}

	for _, tb := range tabs {
		tb.mu.Lock()
		if len(tb.errs) > 0 {
			t.Errorf("%s: uncaught exceptions: %q", tb.name, tb.errs)
		}
		tb.mu.Unlock()
	}
}

func waitSubscribers(t *testing.T, s *standIn, n int) {
	t.Helper()
	for i := 0; s.subscribers("lobby") != n; i++ {
		if i > 100 {
			t.Fatalf("stand-in has %d subscribers of lobby, want %d", s.subscribers("lobby"), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
