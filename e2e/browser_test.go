package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// page is one Chromium tab showing the demo page.
type page struct {
	name string
	ctx  context.Context
}

func (pg *page) eval(js string, v any) error {
	raw, err := chromedp.Run(pg.ctx, chromedp.Evaluate[json.RawMessage](js))
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

const (
	jsState    = `[document.getElementById("state").dataset.state, document.getElementById("state").textContent]`
	jsMessages = `[...document.querySelectorAll("#messages .msg")].map(e => e.querySelector(".who").textContent + ": " + e.querySelector(".body").textContent)`
)

// waitPage polls js every 100 ms until ok accepts its value, for at most
// 20 s or the browser's deadline.
func waitPage[T any](t *testing.T, pg *page, what, js string, ok func(T) bool) T {
	t.Helper()
	var last T
	var err error
	for range 200 {
		var cur T
		if err = pg.eval(js, &cur); err == nil {
			last = cur
			if ok(cur) {
				return cur
			}
		}
		if pg.ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: timed out waiting for %s; last value %v, err %v", pg.name, what, last, err)
	return last
}

func waitState(t *testing.T, pg *page, want string) []string {
	t.Helper()
	return waitPage(t, pg, "state "+want, jsState, func(v []string) bool { return len(v) == 2 && v[0] == want })
}

func waitMessage(t *testing.T, pg *page, want string) {
	t.Helper()
	waitPage(t, pg, "message "+want, jsMessages, func(v []string) bool {
		for _, m := range v {
			if m == want {
				return true
			}
		}
		return false
	})
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, so that latch can be restarted on the same one.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitSubscribed waits until both pages are connected to p and subscribed:
// before anyone publishes, each page gets exactly a welcome and the ack of
// its subscribe, and the ack is written only after the subscription exists.
func waitSubscribed(t *testing.T, p *latchProc) {
	t.Helper()
	var conns, sent float64
	for range 100 {
		conns, sent = p.metric(t, "latch_connections"), p.metric(t, "latch_messages_sent_total")
		if conns == 2 && sent == 4 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%v connections and %v messages sent, want 2 pages with a welcome and an ack each", conns, sent)
}

// TestBrowserChat runs the demo page in two headless Chromium tabs against
// the real binary, through a restart on the same port.
func TestBrowserChat(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := "Chromium (" + chromiumPath + ") is not installed; see /work/shared/PEERS.md"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	addr := freeAddr(t)
	p1 := startLatch(t, "-addr", addr)
	if p1.addr != addr {
		t.Fatalf("latch listens on %s, want %s", p1.addr, addr)
	}

	deadline, cancelDeadline := context.WithTimeout(context.Background(), 75*time.Second)
	// The flags PEERS.md lists for running as root without network noise.
	actx, cancelAlloc := chromedp.NewExecAllocator(deadline,
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
		cancelDeadline()
	})
	// Start the browser with the first tab; the second is opened in it.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	ctx2, cancelTab2 := chromedp.NewContext(bctx)
	t.Cleanup(cancelTab2)
	pages := []*page{{name: "page 1", ctx: bctx}, {name: "page 2", ctx: ctx2}}
	for _, pg := range pages {
		if err := chromedp.Do(pg.ctx, chromedp.Navigate("http://"+addr+"/#lobby")); err != nil {
			t.Fatalf("%s: load: %v", pg.name, err)
		}
	}
	for _, pg := range pages {
		waitState(t, pg, "open")
	}
	waitSubscribed(t, p1)
	// Chromium offers permessage-deflate and latch accepts it by default.
	if n := p1.metric(t, `latch_compressed_connections_total{route="/ws"}`); n != 2 {
		t.Errorf("compressed /ws connections = %v, want both pages", n)
	}
	for i, name := range []string{"alice", "bob"} {
		if err := chromedp.Do(pages[i].ctx, chromedp.SetValue(chromedp.ID("name"), name)); err != nil {
			t.Fatal(err)
		}
	}
	// Enter sends.
	if err := chromedp.Do(pages[0].ctx, chromedp.SendKeys(chromedp.ID("text"), "hello from alice\n")); err != nil {
		t.Fatal(err)
	}
	for _, pg := range pages {
		waitMessage(t, pg, "alice: hello from alice")
	}

	// SIGTERM: every page gets 1001 and starts reconnecting.
	p1.signal(t, syscall.SIGTERM)
	for _, pg := range pages {
		st := waitState(t, pg, "reconnecting")
		if !strings.Contains(st[1], "(closed 1001)") {
			t.Errorf("%s: state %q, want the 1001 of a graceful shutdown", pg.name, st[1])
		}
	}
	p1.waitExit(t, 10*time.Second)
	if strings.Contains(p1.stderr.String(), "shutdown incomplete") {
		t.Errorf("first latch: shutdown incomplete:\n%s", p1.stderr)
	}

	// The same port again; the pages come back by themselves.
	p2 := startLatch(t, "-addr", addr)
	for _, pg := range pages {
		waitState(t, pg, "open")
	}
	waitSubscribed(t, p2)
	if n := p2.metric(t, `latch_compressed_connections_total{route="/ws"}`); n != 2 {
		t.Errorf("after restart: compressed /ws connections = %v, want both pages", n)
	}
	if err := chromedp.Do(pages[1].ctx,
		chromedp.SetValue(chromedp.ID("text"), "back after restart"),
		chromedp.Click(chromedp.ID("send")),
	); err != nil {
		t.Fatal(err)
	}
	for _, pg := range pages {
		waitMessage(t, pg, "bob: back after restart")
	}
	// Both pages kept the message from before the restart.
	for _, pg := range pages {
		msgs := waitPage(t, pg, "two messages", jsMessages, func(v []string) bool { return len(v) == 2 })
		if msgs[0] != "alice: hello from alice" {
			t.Errorf("%s: first message %q", pg.name, msgs[0])
		}
	}
	if n := p2.metric(t, "latch_publishes_total"); n != 1 {
		t.Errorf("second latch: %v publishes, want 1", n)
	}
}
