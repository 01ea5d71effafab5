// Package browsertest runs headless Chromium for tests through chromedp and
// drives Latch's demo chat page (server/web) in it.
//
// # Starting the browser
//
// [New] starts one browser for a test with the flags it needs to run as root
// on a closed network (no sandbox, no background networking), and closes it
// when the test ends. A missing Chromium fails the test when CI=true and skips it otherwise
// ([Require]): CI must never pass without the browser having run. [NewTab]
// opens another tab in the same browser.
//
// # The demo page
//
// A [DemoPage] is one tab showing the demo page. [Wait] polls a script in it;
// [DemoPage.WaitState] and [DemoPage.WaitMessage] wait for the connection
// state and for a chat message.
package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// DefaultPath is where Debian's chromium package puts the browser.
const DefaultPath = "/usr/bin/chromium"

// defaultPath is DefaultPath; tests of this package change it.
var defaultPath = DefaultPath

// Path returns the Chromium binary: [DefaultPath], else chromium on PATH.
func Path() (string, error) {
	if _, err := os.Stat(defaultPath); err == nil {
		return defaultPath, nil
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		return "", fmt.Errorf("browsertest: Chromium is neither at %s nor on PATH: %w", defaultPath, err)
	}
	return p, nil
}

// Require returns the Chromium binary, or ends the test when there is none:
// it fails when CI=true, so that CI never passes without the browser having
// run, and skips otherwise. [New] calls it; a test calls it first itself to
// skip before costly setup.
func Require(t testing.TB) string {
	t.Helper()
	path, err := Path()
	if err != nil {
		msg := fmt.Sprintf("%v; install it with scripts/install-peers.sh", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// New starts headless Chromium and returns the context of its first tab,
// which is blank. Every action on the browser and its tabs fails once timeout
// has passed. Extra options (such as [chromedp.WindowSize]) are added to the
// flags. The browser is closed, and its fresh user data directory removed, in
// t.Cleanup. Without Chromium, New ends the test as [Require] does.
func New(t testing.TB, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	path := Require(t)
	// As root Chromium runs only without its sandbox, and without the
	// background-networking flags it floods a closed network with requests.
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	}
	deadline, cancelDeadline := context.WithTimeout(context.Background(), timeout)
	actx, cancelAlloc := chromedp.NewExecAllocator(deadline, append(opts, extra...)...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelDeadline()
	})
	// Start the browser now: a tab made from bctx before it has a browser
	// would start a browser of its own.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return bctx
}

// NewTab opens another tab in the browser of ctx (from [New]) and closes it
// in t.Cleanup.
func NewTab(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	tctx, cancel := chromedp.NewContext(ctx)
	t.Cleanup(cancel)
	if err := chromedp.Do(tctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return tctx
}

// Scripts that read the demo page (server/web/index.html and app.js).
const (
	// JSState is [data-state, text] of #state, e.g. ["open", "connected"].
	JSState = `[document.getElementById("state").dataset.state, document.getElementById("state").textContent]`
	// JSMessages lists the chat messages on screen as "who: body".
	JSMessages = `[...document.querySelectorAll("#messages .msg")].map(e => e.querySelector(".who").textContent + ": " + e.querySelector(".body").textContent)`
)

// DefaultPolls is how often [Wait] evaluates when [DemoPage.Polls] is zero:
// 200 times, 100 ms apart, about 20 s.
const DefaultPolls = 200

// DemoPage is one tab showing the demo chat page. Its actions run in that
// tab, so one DemoPage must not be used by two goroutines at once.
type DemoPage struct {
	Name  string          // names the tab in failure messages
	Ctx   context.Context // the tab, from [New] or [NewTab]
	Polls int             // evaluations of [Wait] before it gives up; 0 means DefaultPolls
}

// Load navigates the tab to url.
func (p *DemoPage) Load(t testing.TB, url string) {
	t.Helper()
	if err := chromedp.Do(p.Ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: load %s: %v", p.Name, url, err)
	}
}

// Eval runs js in the page and decodes its JSON value into v.
func (p *DemoPage) Eval(js string, v any) error {
	raw, err := chromedp.Run(p.Ctx, chromedp.Evaluate[json.RawMessage](js))
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// Wait evaluates js in p every 100 ms until ok accepts its value and returns
// that value. It fails the test after p.Polls evaluations or when the browser's
// deadline has passed.
func Wait[T any](t testing.TB, p *DemoPage, what, js string, ok func(T) bool) T {
	t.Helper()
	polls := p.Polls
	if polls <= 0 {
		polls = DefaultPolls
	}
	var last T
	var err error
	for range polls {
		var cur T
		if err = p.Eval(js, &cur); err == nil {
			last = cur
			if ok(cur) {
				return cur
			}
		}
		if p.Ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: timed out waiting for %s; last value %v, err %v", p.Name, what, last, err)
	return last
}

// WaitState waits until the page's connection state is want ("open",
// "reconnecting", "closed", ...) and returns [state, text] of #state.
func (p *DemoPage) WaitState(t testing.TB, want string) []string {
	t.Helper()
	return Wait(t, p, "state "+want, JSState, func(v []string) bool { return len(v) == 2 && v[0] == want })
}

// WaitMessage waits until the message want ("who: body") is on screen.
func (p *DemoPage) WaitMessage(t testing.TB, want string) {
	t.Helper()
	Wait(t, p, "message "+want, JSMessages, func(v []string) bool { return slices.Contains(v, want) })
}

// SetName fills in the name the page sends its messages under.
func (p *DemoPage) SetName(t testing.TB, name string) {
	t.Helper()
	if err := chromedp.Do(p.Ctx, chromedp.SetValue(chromedp.ID("name"), name)); err != nil {
		t.Fatalf("%s: set name %q: %v", p.Name, name, err)
	}
}

// Type types text into the message input key by key; a final "\n" is the
// Enter key, which sends.
func (p *DemoPage) Type(t testing.TB, text string) {
	t.Helper()
	if err := chromedp.Do(p.Ctx, chromedp.SendKeys(chromedp.ID("text"), text)); err != nil {
		t.Fatalf("%s: type %q: %v", p.Name, text, err)
	}
}

// Send puts text into the message input and clicks Send.
func (p *DemoPage) Send(t testing.TB, text string) {
	t.Helper()
	if err := chromedp.Do(p.Ctx,
		chromedp.SetValue(chromedp.ID("text"), text),
		chromedp.Click(chromedp.ID("send")),
	); err != nil {
		t.Fatalf("%s: send %q: %v", p.Name, text, err)
	}
}

// Click clicks the element with the given id.
func (p *DemoPage) Click(t testing.TB, id string) {
	t.Helper()
	if err := chromedp.Do(p.Ctx, chromedp.Click(chromedp.ID(id))); err != nil {
		t.Fatalf("%s: click #%s: %v", p.Name, id, err)
	}
}

// FailOnExceptions fails t, at its cleanup, if the page in ctx throws an
// uncaught exception meanwhile; name says which page. The console reader
// counts in wg, which the caller waits for once the browser is gone (its
// reader ends when its tab closes).
func FailOnExceptions(t testing.TB, wg *sync.WaitGroup, ctx context.Context, name string) {
	var mu sync.Mutex
	var errs []string // guarded by mu
	msgs := chromedp.Console(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleException {
				mu.Lock()
				errs = append(errs, m.Text)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) > 0 {
			t.Errorf("%s: uncaught exceptions: %q", name, errs)
		}
	})
}
