package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/latchws/latch/internal/browsertest"
)

// TestChromium runs headless Chromium as a client of a Latch server. The
// page (testdata/peer.html) comes from the same httptest server, so Latch's
// default same-origin check admits it.
func TestChromium(t *testing.T) {
	t.Parallel()
	browsertest.Require(t)
	page, err := os.ReadFile("testdata/peer.html")
	if err != nil {
		t.Fatal(err)
	}
	ls := newLatchServer(t, map[string]http.Handler{
		"/peer.html": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(page)
		}),
	})

	ctx := browsertest.New(t, 60*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(ls.srv.URL+"/peer.html"), chromedp.WaitReady(chromedp.ID("out"))); err != nil {
		t.Fatalf("load the page: %v", err)
	}

	b := &browserPeer{ctx: ctx, r: newRouter()}
	b.poll(t)
	pcaps := caps{noFragments: true, noPing: true}
	runMatrix(t, b, pcaps, ls, true)
	// The page's origin is ls's: the compression server admits it.
	t.Run("deflate", func(t *testing.T) {
		zs := newDeflateServer(t, strings.TrimPrefix(ls.srv.URL, "http://"))
		runDeflate(t, b, pcaps, zs, chromiumDeflate, nil)
	})
}

// browserPeer drives the page: connections start through Evaluate, and the
// events the page writes into #out are polled and routed.
type browserPeer struct {
	ctx context.Context
	r   *router
	mu  sync.Mutex // serialises CDP calls
}

func (b *browserPeer) poll(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := 0
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			b.mu.Lock()
			text, err := chromedp.Run(b.ctx, chromedp.TextContent(chromedp.ID("out")))
			b.mu.Unlock()
			if err != nil {
				if b.ctx.Err() == nil {
					t.Errorf("read #out: %v", err)
				}
				return
			}
			lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
			for ; seen < len(lines); seen++ {
				if lines[seen] == "" {
					continue
				}
				var ev event
				if err := json.Unmarshal([]byte(lines[seen]), &ev); err != nil {
					t.Errorf("bad line from page %q: %v", lines[seen], err)
					continue
				}
				b.r.deliver(t, ev)
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
}

func (b *browserPeer) dial(t *testing.T, id, url string, protocols []string) *peerConn {
	t.Helper()
	pc := b.r.register(id)
	if protocols == nil {
		protocols = []string{}
	}
	args, err := json.Marshal([]any{id, url, protocols})
	if err != nil {
		t.Fatal(err)
	}
	js := fmt.Sprintf("startPeer(...%s)", args)
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := chromedp.Do(b.ctx, chromedp.Evaluate[chromedp.Void](js)); err != nil {
		t.Fatalf("start page peer: %v", err)
	}
	return pc
}

func (b *browserPeer) serve(t *testing.T, id string) (string, *peerConn) {
	t.Fatal("Chromium is a client only")
	return "", nil
}
