package web_test

import (
	"bytes"
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
	"github.com/latchws/latch/internal/browsertest"
	"github.com/latchws/latch/server/web"
	"github.com/latchws/latch/websocket"
)

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
	*browsertest.DemoPage
	mu   sync.Mutex
	errs []string // guarded by mu
}

func TestChatInChromium(t *testing.T) {
	browsertest.Require(t)
	s1 := startStandIn(t, "127.0.0.1:0")
	addr := s1.addr

	// Registered before the browser's cleanup, so it runs after it: the
	// console readers end when their tabs close.
	var consoleWG sync.WaitGroup
	t.Cleanup(consoleWG.Wait)
	bctx := browsertest.New(t, 60*time.Second, chromedp.WindowSize(900, 640))
	// Waits give up at the browser's 60 s deadline.
	const polls = 600
	tabs := []*tab{
		{DemoPage: &browsertest.DemoPage{Name: "tab 1", Ctx: bctx, Polls: polls}},
		{DemoPage: &browsertest.DemoPage{Name: "tab 2", Ctx: browsertest.NewTab(t, bctx), Polls: polls}},
	}
	for _, tb := range tabs {
		// New and NewTab opened the tab, so its console can be watched
		// from before the page loads.
		msgs := chromedp.Console(tb.Ctx)
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
		tb.Load(t, "http://"+addr+"/#lobby")
	}
	for _, tb := range tabs {
		tb.WaitState(t, "open")
	}
	tabs[0].SetName(t, "alice")
	tabs[1].SetName(t, "bob")
	waitSubscribers(t, s1, 2)

	tabs[0].Type(t, "hello from alice\n") // Enter sends.
	for _, tb := range tabs {
		tb.WaitMessage(t, "alice: hello from alice")
	}
	// User text is never parsed as HTML.
	const evil = `<img src=x onerror="window.pwned=1"><b>bold</b>`
	tabs[1].Type(t, evil+"\n")
	for _, tb := range tabs {
		tb.WaitMessage(t, "bob: "+evil)
		var n int
		if err := tb.Eval(`document.querySelectorAll("#messages img, #messages b").length + (window.pwned ? 100 : 0)`, &n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s: message text was rendered as HTML (%d)", tb.Name, n)
		}
	}
	var input string
	if err := tabs[0].Eval(`document.getElementById("text").value`, &input); err != nil || input != "" {
		t.Errorf("message input after sending = %q, %v; want it cleared", input, err)
	}

	// The server goes away: the pages back off and say so.
	s1.stop()
	for _, tb := range tabs {
		st := tb.WaitState(t, "reconnecting")
		if !strings.HasPrefix(st[1], "reconnecting in ") || !strings.Contains(st[1], "s") {
			t.Errorf("%s: state text %q, want a countdown", tb.Name, st[1])
		}
		var disabled bool
		if err := tb.Eval(`document.getElementById("send").disabled`, &disabled); err != nil || !disabled {
			t.Errorf("%s: #send enabled while reconnecting (%v)", tb.Name, err)
		}
	}
	// Let at least one reconnect attempt fail against the closed port.
	time.Sleep(1500 * time.Millisecond)
	for _, tb := range tabs {
		var st []string
		if err := tb.Eval(browsertest.JSState, &st); err != nil {
			t.Fatal(err)
		}
		if st[0] == "open" {
			t.Fatalf("%s: open while the server is down", tb.Name)
		}
	}

	s2 := startStandIn(t, addr)
	for _, tb := range tabs {
		tb.WaitState(t, "open")
	}
	// The pages re-subscribe by themselves.
	waitSubscribers(t, s2, 2)
	tabs[1].Send(t, "back after restart")
	for _, tb := range tabs {
		tb.WaitMessage(t, "bob: back after restart")
	}
	// Messages from before the restart are still on screen.
	msgs := browsertest.Wait(t, tabs[0].DemoPage, "all messages", browsertest.JSMessages, func(v []string) bool { return len(v) == 3 })
	if msgs[0] != "alice: hello from alice" {
		t.Errorf("first message = %q", msgs[0])
	}

	// Disconnect closes cleanly and stays closed; Connect opens again.
	tabs[1].Click(t, "toggle")
	if st := tabs[1].WaitState(t, "closed"); st[1] != "closed (code 1000)" {
		t.Errorf("state text after Disconnect = %q", st[1])
	}
	waitSubscribers(t, s2, 1)
	tabs[1].Click(t, "toggle")
	tabs[1].WaitState(t, "open")
	waitSubscribers(t, s2, 2)

	png, err := chromedp.Run(tabs[0].Ctx, chromedp.CaptureScreenshot())
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
			t.Errorf("%s: uncaught exceptions: %q", tb.Name, tb.errs)
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
