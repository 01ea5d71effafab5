package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/latchws/latch/internal/browsertest"
)

// Scripts reading the demo page (server/web) besides browsertest's JSState
// and JSMessages.
const (
	jsOnline = `[...document.querySelectorAll("#online li")].map(e => e.dataset.user)`
	// jsRows is every row of #messages in order: "who: body" for a message,
	// "— text" for a note.
	jsRows = `[...document.querySelectorAll("#messages > *")].map(e => e.classList.contains("msg") ?
		e.querySelector(".who").textContent + ": " + e.querySelector(".body").textContent : "— " + e.textContent)`
)

// demoTab is one tab of the demo page (its uncaught exceptions fail the
// test). Like a DemoPage, it must not be used by two goroutines at once.
type demoTab struct {
	*browsertest.DemoPage
}

// openDemoTabs starts one browser with a tab per name, each watching its
// console for uncaught exceptions (a failure at the end of the test). Waits
// give up at the browser's deadline, timeout.
func openDemoTabs(t *testing.T, timeout time.Duration, names ...string) []*demoTab {
	t.Helper()
	// Registered before the browser's cleanup, so it runs after it: the
	// console readers end when their tabs close.
	var consoleWG sync.WaitGroup
	t.Cleanup(consoleWG.Wait)
	bctx := browsertest.New(t, timeout, chromedp.WindowSize(1000, 640))
	tabs := make([]*demoTab, len(names))
	for i, name := range names {
		ctx := bctx
		if i > 0 {
			ctx = browsertest.NewTab(t, bctx)
		}
		tb := &demoTab{DemoPage: &browsertest.DemoPage{Name: name, Ctx: ctx, Polls: int(timeout / (100 * time.Millisecond))}}
		browsertest.FailOnExceptions(t, &consoleWG, ctx, name)
		tabs[i] = tb
	}
	return tabs
}

// signIn signs in as user and waits until connected.
func (tb *demoTab) signIn(t *testing.T, user string) {
	t.Helper()
	tb.SetName(t, user)
	tb.Click(t, "join")
	if st := tb.WaitState(t, "open"); st[1] != "connected as "+user {
		t.Errorf("%s: state %q, want connected as %s", tb.Name, st[1], user)
	}
}

// waitOnline waits until the online list is exactly users (sorted).
func (tb *demoTab) waitOnline(t *testing.T, users ...string) {
	t.Helper()
	browsertest.Wait(t, tb.DemoPage, "online: "+strings.Join(users, ", "), jsOnline, func(v []string) bool { return slices.Equal(v, users) })
}

// waitMessages waits until the messages on screen are exactly want.
func (tb *demoTab) waitMessages(t *testing.T, want ...string) {
	t.Helper()
	browsertest.Wait(t, tb.DemoPage, "messages "+strings.Join(want, " | "), browsertest.JSMessages, func(v []string) bool { return slices.Equal(v, want) })
}

// TestDemoRecovery runs the demo page of `latch serve` in demo mode (no
// configuration) in two tabs, users ann and bob on chat:lobby: presence, a
// message, and bob going offline while ann writes three messages, which he
// gets exactly once when he comes back.
func TestDemoRecovery(t *testing.T) {
	browsertest.Require(t)
	p := startLatch(t)
	tabs := openDemoTabs(t, 60*time.Second, "ann's tab", "bob's tab")
	ann, bob := tabs[0], tabs[1]
	for _, tb := range tabs {
		tb.Load(t, "http://"+p.addr+"/#chat:lobby")
	}
	ann.signIn(t, "ann")
	bob.signIn(t, "bob")
	for _, tb := range tabs {
		tb.waitOnline(t, "ann", "bob")
	}

	ann.Type(t, "hi bob\n")
	for _, tb := range tabs {
		tb.waitMessages(t, "ann: hi bob")
	}

	// Offline closes bob's WebSocket: the server sends ann a leave.
	bob.Click(t, "toggle")
	if st := bob.WaitState(t, "closed"); st[1] != "offline" {
		t.Errorf("bob's state %q, want offline", st[1])
	}
	ann.waitOnline(t, "ann")
	missed := []string{"ann: one", "ann: two", "ann: three"}
	for _, m := range missed {
		ann.Send(t, strings.TrimPrefix(m, "ann: "))
	}
	// On ann's screen, so published: the server has them in the history.
	ann.waitMessages(t, append([]string{"ann: hi bob"}, missed...)...)

	bob.Click(t, "toggle")
	bob.WaitState(t, "open")
	want := append([]string{"ann: hi bob"}, missed...)
	want = append(want, "— recovered 3 missed messages")
	browsertest.Wait(t, bob.DemoPage, "the recovered messages", jsRows, func(v []string) bool { return slices.Equal(v, want) })
	ann.waitOnline(t, "ann", "bob")
	bob.waitOnline(t, "ann", "bob")

	// A live message after them: had any arrived twice, it would be on
	// screen before this one.
	ann.Send(t, "welcome back")
	want = append(want, "ann: welcome back")
	browsertest.Wait(t, bob.DemoPage, "a live message after the recovered ones", jsRows, func(v []string) bool { return slices.Equal(v, want) })
	bob.Type(t, "thanks, ann\n")
	ann.waitMessages(t, "ann: hi bob", "ann: one", "ann: two", "ann: three", "ann: welcome back", "bob: thanks, ann")
	if n := p.metric(t, "latch_publishes_total"); n != 6 {
		t.Errorf("%v publishes, want 6", n)
	}

	png, err := chromedp.Run(bob.Ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("screenshot is not a PNG")
	}
	// LATCH_DEMO_SCREENSHOT=FILE keeps a picture of the page.
	paths := []string{filepath.Join(t.TempDir(), "demo.png")}
	if p := os.Getenv("LATCH_DEMO_SCREENSHOT"); p != "" {
		paths = append(paths, p)
	}
	for _, p := range paths {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Errorf("write screenshot: %v", err)
		}
	}
}
