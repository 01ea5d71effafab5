package web_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/latchws/latch/internal/browsertest"
	"github.com/latchws/latch/server"
	"github.com/latchws/latch/server/web"
)

func TestEmbeddedFiles(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"index.html", "app.js", "style.css", "latch.js"} {
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
	for _, id := range []string{"state", "toggle", "signout", "signin", "name", "join", "notice", "channels", "open",
		"channel", "online", "current", "messages", "composer", "text", "send"} {
		if !bytes.Contains(index, []byte(`id="`+id+`"`)) {
			t.Errorf("index.html has no element with id %q", id)
		}
	}
	if !bytes.Contains(index, []byte(`<script type="module" src="app.js">`)) {
		t.Error("index.html does not load app.js as a module")
	}
	app, _ := fs.ReadFile(web.FS, "app.js")
	if !bytes.Contains(app, []byte(`from "./latch.js"`)) {
		t.Error("app.js does not import the local latch.js")
	}
}

// demoNamespaces are cmd/latch's demo-mode namespaces (cmd/latch/config.go).
func demoNamespaces() []server.Namespace {
	return []server.Namespace{
		{Name: "", Subscribe: server.AccessAnonymous, Publish: server.AccessAnonymous},
		{Name: "chat", Subscribe: server.AccessUser, Publish: server.AccessUser,
			HistorySize: 100, HistoryTTL: 10 * time.Minute, Presence: true, JoinLeave: true},
		{Name: "inbox", Subscribe: server.AccessUser, Publish: server.AccessAPI, Personal: true},
	}
}

// startServer serves the real server on addr ("127.0.0.1:0" for any port),
// in demo mode if demo, retrying for a while when a previous instance still
// holds the address. It returns the address and a stop function, which
// t.Cleanup also calls.
func startServer(t *testing.T, addr string, demo bool) (string, func()) {
	t.Helper()
	s, err := server.New(server.Config{
		Addr: addr, Demo: demo, Auth: server.AuthConfig{Anonymous: true}, Namespaces: demoNamespaces(),
		LogOutput: io.Discard, ShutdownTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for range 50 {
		ln, err = net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.Shutdown(context.Background())
		t.Fatalf("listen %s: %v", addr, err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		s.Serve(ln)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			<-served
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// Scripts reading the page besides browsertest's JSState and JSMessages.
const (
	jsOnline = `[...document.querySelectorAll("#online li")].map(e => e.dataset.user)`
	jsNotes  = `[...document.querySelectorAll("#messages .note")].map(e => e.textContent)`
	jsNotice = `document.getElementById("notice").hidden ? "" : document.getElementById("notice").textContent`
)

// tab is one page of the browser (its uncaught exceptions fail the test).
type tab struct {
	*browsertest.DemoPage
}

// newTabs opens n tabs in one browser, watching their consoles.
func newTabs(t *testing.T, names ...string) []*tab {
	t.Helper()
	// Registered before the browser's cleanup, so it runs after it: the
	// console readers end when their tabs close.
	var consoleWG sync.WaitGroup
	t.Cleanup(consoleWG.Wait)
	bctx := browsertest.New(t, 60*time.Second, chromedp.WindowSize(1000, 680))
	var tabs []*tab
	for i, name := range names {
		ctx := bctx
		if i > 0 {
			ctx = browsertest.NewTab(t, bctx)
		}
		// Waits give up at the browser's 60 s deadline.
		tb := &tab{DemoPage: &browsertest.DemoPage{Name: name, Ctx: ctx, Polls: 600}}
		browsertest.FailOnExceptions(t, &consoleWG, ctx, name)
		tabs = append(tabs, tb)
	}
	return tabs
}

func (tb *tab) signIn(t *testing.T, user string) {
	t.Helper()
	tb.SetName(t, user)
	tb.Click(t, "join")
}

// click clicks the first element matching the CSS selector css.
func (tb *tab) click(t *testing.T, css string) {
	t.Helper()
	if err := chromedp.Do(tb.Ctx, chromedp.Click(chromedp.CSS(css))); err != nil {
		t.Fatalf("%s: click %s: %v", tb.Name, css, err)
	}
}

// keys types text into the element with the given id; "\n" is Enter.
func (tb *tab) keys(t *testing.T, id, text string) {
	t.Helper()
	if err := chromedp.Do(tb.Ctx, chromedp.SendKeys(chromedp.ID(id), text)); err != nil {
		t.Fatalf("%s: type %q into #%s: %v", tb.Name, text, id, err)
	}
}

func (tb *tab) waitOnline(t *testing.T, users ...string) {
	t.Helper()
	browsertest.Wait(t, tb.DemoPage, "online "+strings.Join(users, ","), jsOnline, func(v []string) bool { return slices.Equal(v, users) })
}

func (tb *tab) waitMessages(t *testing.T, want ...string) {
	t.Helper()
	browsertest.Wait(t, tb.DemoPage, "messages "+strings.Join(want, " | "), browsertest.JSMessages, func(v []string) bool { return slices.Equal(v, want) })
}

func (tb *tab) waitNote(t *testing.T, want string) {
	t.Helper()
	browsertest.Wait(t, tb.DemoPage, "note "+want, jsNotes, func(v []string) bool { return slices.Contains(v, want) })
}

func (tb *tab) eval(t *testing.T, js string, v any) {
	t.Helper()
	if err := tb.Eval(js, v); err != nil {
		t.Fatalf("%s: %s: %v", tb.Name, js, err)
	}
}

// TestChatInChromium runs the demo page in two headless Chromium tabs
// against the real server in demo mode, through a restart on the same port.
func TestChatInChromium(t *testing.T) {
	browsertest.Require(t)
	addr, stop := startServer(t, "127.0.0.1:0", true)
	tabs := newTabs(t, "alice's tab", "bob's tab")
	alice, bob := tabs[0], tabs[1]
	for _, tb := range tabs {
		tb.Load(t, "http://"+addr+"/#lobby")
		tb.WaitState(t, "closed") // signed out: nothing connects before a name is given
	}

	alice.signIn(t, "alice")
	if st := alice.WaitState(t, "open"); st[1] != "connected as alice" {
		t.Errorf("state text %q, want connected as alice", st[1])
	}
	alice.waitOnline(t, "alice")
	alice.Type(t, "hello from alice\n") // Enter sends.
	alice.waitMessages(t, "alice: hello from alice")

	// A newcomer sees what was said before, from the channel's history.
	bob.signIn(t, "bob")
	bob.WaitState(t, "open")
	bob.waitMessages(t, "alice: hello from alice")
	for _, tb := range tabs {
		tb.waitOnline(t, "alice", "bob")
	}
	var cur string
	bob.eval(t, `document.getElementById("current").textContent + location.hash`, &cur)
	if cur != "chat:lobby#chat%3Alobby" {
		t.Errorf("current channel and hash %q, want chat:lobby from #lobby", cur)
	}

	// User text is never parsed as HTML.
	const evil = `<img src=x onerror="window.pwned=1"><b>bold</b>`
	bob.Type(t, evil+"\n")
	for _, tb := range tabs {
		tb.waitMessages(t, "alice: hello from alice", "bob: "+evil)
		var n int
		tb.eval(t, `document.querySelectorAll("#messages img, #messages b").length + (window.pwned ? 100 : 0)`, &n)
		if n != 0 {
			t.Errorf("%s: message text was rendered as HTML (%d)", tb.Name, n)
		}
	}
	var input string
	bob.eval(t, `document.getElementById("text").value`, &input)
	if input != "" {
		t.Errorf("message input after sending = %q; want it cleared", input)
	}

	// Another channel: bob leaves the lobby (alice sees him go), and a
	// channel typed in the field joins the list.
	bob.click(t, `#channels button[data-channel="chat:random"]`)
	alice.waitOnline(t, "alice")
	bob.waitOnline(t, "bob")
	bob.waitMessages(t)
	alice.Send(t, "only in the lobby")
	bob.keys(t, "channel", "custom.room\n") // "chat:" is implied
	want := []string{"chat:lobby", "chat:random", "chat:help", "chat:custom.room*"}
	browsertest.Wait(t, bob.DemoPage, "chat:custom.room open", `[...document.querySelectorAll("#channels button")].map(b => b.dataset.channel + (b.classList.contains("active") ? "*" : ""))`,
		func(v []string) bool { return slices.Equal(v, want) })
	bob.waitOnline(t, "bob")
	// Back in the lobby, the history has what bob missed, in order.
	bob.click(t, `#channels button[data-channel="chat:lobby"]`)
	bob.waitMessages(t, "alice: hello from alice", "bob: "+evil, "alice: only in the lobby")
	alice.waitOnline(t, "alice", "bob")

	// The server goes away: the pages count down to their next attempt.
	stop()
	for _, tb := range tabs {
		st := tb.WaitState(t, "reconnecting")
		if !strings.Contains(st[1], "(closed 1001)") || !strings.HasPrefix(st[1], "reconnecting") {
			t.Errorf("%s: state text %q, want a countdown after 1001", tb.Name, st[1])
		}
		var disabled bool
		tb.eval(t, `document.getElementById("send").disabled`, &disabled)
		if !disabled {
			t.Errorf("%s: #send enabled while reconnecting", tb.Name)
		}
		tb.waitOnline(t) // nobody is known to be online meanwhile
	}

	// A new server on the same port has a new secret, so the pages need
	// fresh tokens, and a new history, so nothing can be recovered.
	startServer(t, addr, true)
	for _, tb := range tabs {
		tb.WaitState(t, "open")
		tb.waitNote(t, "could not recover, reloaded history")
		tb.waitMessages(t)
		tb.waitOnline(t, "alice", "bob")
	}
	bob.Send(t, "back after restart")
	for _, tb := range tabs {
		tb.waitMessages(t, "bob: back after restart")
	}

	// Going offline closes the socket: alice sees bob leave and come back.
	bob.Click(t, "toggle")
	if st := bob.WaitState(t, "closed"); st[1] != "offline" {
		t.Errorf("state text after Go offline = %q", st[1])
	}
	alice.waitOnline(t, "alice")
	bob.Click(t, "toggle")
	bob.WaitState(t, "open")
	bob.waitNote(t, "recovered 0 missed messages")
	alice.waitOnline(t, "alice", "bob")

	// A reload keeps the tab signed in (sessionStorage) and shows the history.
	if err := chromedp.Do(alice.Ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	if st := alice.WaitState(t, "open"); st[1] != "connected as alice" {
		t.Errorf("after a reload: state %q", st[1])
	}
	alice.waitMessages(t, "bob: back after restart")
	alice.waitOnline(t, "alice", "bob")

	// Signing out shows the form again.
	bob.Click(t, "signout")
	bob.WaitState(t, "closed")
	alice.waitOnline(t, "alice")
	var formShown bool
	bob.eval(t, `!document.getElementById("signin").hidden && document.getElementById("chat").hidden`, &formShown)
	if !formShown {
		t.Error("after Sign out the sign-in form is not shown")
	}
}

// TestSignInWithoutDemoMode: a server not in demo mode has no /demo/token;
// the page says so instead of retrying.
func TestSignInWithoutDemoMode(t *testing.T) {
	browsertest.Require(t)
	addr, _ := startServer(t, "127.0.0.1:0", false)
	tb := newTabs(t, "tab")[0]
	tb.Load(t, "http://"+addr+"/")
	tb.signIn(t, "ann")
	notice := browsertest.Wait(t, tb.DemoPage, "the notice", jsNotice, func(s string) bool { return s != "" })
	if !strings.Contains(notice, "not in demo mode") || !strings.Contains(notice, "404") {
		t.Errorf("notice %q, want it to say the server is not in demo mode", notice)
	}
	if st := tb.WaitState(t, "closed"); st[1] != "signed out" {
		t.Errorf("state %q, want signed out", st[1])
	}
}
