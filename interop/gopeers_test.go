package interop

import (
	"context"
	"errors"
	"hash/crc32"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
)

// TestGorilla runs the matrix against gorilla/websocket v1.5.3 in-process.
func TestGorilla(t *testing.T) {
	t.Parallel()
	runMatrix(t, newGoPeer(t, gorillaServe, gorillaDial), caps{}, newLatchServer(t, nil), false)
}

// TestCoder runs the matrix against coder/websocket v1.8.15 in-process.
// coder's Ping chooses its own payload: a counter, "1" for the first ping.
func TestCoder(t *testing.T) {
	t.Parallel()
	runMatrix(t, newGoPeer(t, coderServe, coderDial), caps{pingPayload: "1"}, newLatchServer(t, nil), false)
}

// goPeer runs an in-process Go library as a peer; its connections report
// events straight into the router.
type goPeer struct {
	r      *router
	srv    *httptest.Server
	wg     sync.WaitGroup // connection goroutines
	ctx    context.Context
	dialFn func(ctx context.Context, url string, o dialOpts, emit func(event)) error
}

// dialOpts is how a Go peer dials: the subprotocols it offers and its
// compression mode ("" = none; see the Deflate tests).
type dialOpts struct {
	protocols []string
	deflate   string
}

func newGoPeer(t *testing.T,
	serveFn func(ctx context.Context, w http.ResponseWriter, r *http.Request, emit func(event)),
	dialFn func(ctx context.Context, url string, o dialOpts, emit func(event)) error,
) *goPeer {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	p := &goPeer{r: newRouter(), ctx: ctx, dialFn: dialFn}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.wg.Add(1)
		defer p.wg.Done()
		id := strings.TrimPrefix(r.URL.Path, "/")
		serveFn(ctx, w, r, p.emitter(t, id))
	}))
	t.Cleanup(func() {
		cancel()
		p.srv.Close()
		p.wg.Wait()
	})
	return p
}

func (p *goPeer) emitter(t *testing.T, id string) func(event) {
	return func(ev event) {
		ev.Conn = id
		p.r.deliver(t, ev)
	}
}

func (p *goPeer) dial(t *testing.T, id, url string, protocols []string) *peerConn {
	return p.connect(t, id, url, dialOpts{protocols: protocols})
}

func (p *goPeer) connect(t *testing.T, id, url string, o dialOpts) *peerConn {
	pc := p.r.register(id)
	emit := p.emitter(t, id)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := p.dialFn(p.ctx, url, o, emit); err != nil {
			emit(event{Event: "error", Error: err.Error()})
		}
	}()
	return pc
}

func (p *goPeer) serve(t *testing.T, id string) (string, *peerConn) {
	return "ws" + strings.TrimPrefix(p.srv.URL, "http") + "/" + id, p.r.register(id)
}

func messageEvent(text bool, b []byte) event {
	typ := "binary"
	if text {
		typ = "text"
	}
	return event{Event: "message", Type: typ, Len: len(b), CRC: crc32.ChecksumIEEE(b)}
}

// splitCommand returns the command and its argument of a "cmd ..." message.
func splitCommand(b []byte) (name, arg string, ok bool) {
	s, ok := strings.CutPrefix(string(b), "cmd ")
	if !ok {
		return "", "", false
	}
	name, arg, _ = strings.Cut(s, " ")
	return name, arg, true
}

// --- gorilla ---------------------------------------------------------------

// gorillaBuf is small so that NextWriter's several Writes leave as several
// frames: gorilla has no other way to send fragments.
const gorillaBuf = 1024

// gorilla compresses with EnableCompression when the URL has a ?deflate=
// query (any value): gorilla knows only no context takeover.
func gorillaServe(_ context.Context, w http.ResponseWriter, r *http.Request, emit func(event)) {
	up := gorilla.Upgrader{
		Subprotocols:      []string{"chat.v1"},
		WriteBufferSize:   gorillaBuf,
		EnableCompression: r.URL.Query().Get("deflate") != "",
	}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		emit(event{Event: "error", Error: err.Error()})
		return
	}
	// gorilla has no API for the response it sent.
	gorillaRun(c, event{Offer: r.Header.Get("Sec-WebSocket-Extensions")}, emit)
}

func gorillaDial(ctx context.Context, url string, o dialOpts, emit func(event)) error {
	d := gorilla.Dialer{
		Subprotocols:      o.protocols,
		WriteBufferSize:   gorillaBuf,
		HandshakeTimeout:  eventTimeout,
		EnableCompression: o.deflate != "",
	}
	c, resp, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return err
	}
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	gorillaRun(c, event{Extensions: &ext}, emit)
	return nil
}

// gorillaRun runs the peer protocol; open carries what the handshake showed.
func gorillaRun(c *gorilla.Conn, open event, emit func(event)) {
	defer c.Close()
	open.Event, open.Protocol = "open", c.Subprotocol()
	emit(open)
	c.SetPongHandler(func(s string) error {
		emit(event{Event: "pong", Data: s})
		return c.WriteMessage(gorilla.TextMessage, []byte("pong "+s))
	})
	for range 100 {
		c.SetReadDeadline(time.Now().Add(2 * eventTimeout))
		typ, b, err := c.ReadMessage()
		if err != nil {
			var ce *gorilla.CloseError
			if errors.As(err, &ce) {
				// gorilla's default close handler has echoed the code.
				emit(event{Event: "close", Code: ce.Code, Reason: ce.Text, Clean: true})
			} else {
				emit(event{Event: "close", Code: 1006, Error: err.Error()})
			}
			return
		}
		if name, arg, ok := splitCommand(b); ok && typ == gorilla.TextMessage {
			// "frag big" is "frag" here: gorilla compresses every message.
			if err := gorillaCommand(c, name, arg); err != nil {
				emit(event{Event: "error", Error: err.Error()})
				return
			}
			continue
		}
		emit(messageEvent(typ == gorilla.TextMessage, b))
		if err := c.WriteMessage(typ, b); err != nil {
			emit(event{Event: "error", Error: err.Error()})
			return
		}
	}
}

func gorillaCommand(c *gorilla.Conn, name, arg string) error {
	deadline := time.Now().Add(eventTimeout)
	switch name {
	case "frag":
		for _, m := range []struct {
			typ int
			b   []byte
		}{{gorilla.TextMessage, []byte(fragText)}, {gorilla.BinaryMessage, fragBinary()}} {
			w, err := c.NextWriter(m.typ)
			if err != nil {
				return err
			}
			for i := 0; i < len(m.b); i += 700 {
				if _, err := w.Write(m.b[i:min(i+700, len(m.b))]); err != nil {
					return err
				}
			}
			if err := w.Close(); err != nil {
				return err
			}
		}
		return nil
	case "ping":
		// The pong handler reports the answer.
		return c.WriteControl(gorilla.PingMessage, []byte(arg), deadline)
	case "close":
		code, reason, _ := strings.Cut(arg, " ")
		n := 0
		for _, d := range code {
			n = n*10 + int(d-'0')
		}
		// The read loop then gets the peer's answering close frame.
		return c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(n, reason), deadline)
	}
	return errors.New("unknown command " + name)
}

// --- coder -----------------------------------------------------------------

// coderModes maps a ?deflate= query or dial mode to coder's compression.
var coderModes = map[string]coder.CompressionMode{
	"":           coder.CompressionDisabled,
	"takeover":   coder.CompressionContextTakeover,
	"notakeover": coder.CompressionNoContextTakeover,
}

func coderServe(ctx context.Context, w http.ResponseWriter, r *http.Request, emit func(event)) {
	mode, ok := coderModes[r.URL.Query().Get("deflate")]
	if !ok {
		emit(event{Event: "error", Error: "unknown deflate mode " + r.URL.RawQuery})
		return
	}
	c, err := coder.Accept(w, r, &coder.AcceptOptions{Subprotocols: []string{"chat.v1"}, CompressionMode: mode})
	if err != nil {
		emit(event{Event: "error", Error: err.Error()})
		return
	}
	// coder has no API for the response it sent.
	coderRun(ctx, c, event{Offer: r.Header.Get("Sec-WebSocket-Extensions")}, emit)
}

func coderDial(ctx context.Context, url string, o dialOpts, emit func(event)) error {
	mode, ok := coderModes[o.deflate]
	if !ok {
		return errors.New("unknown deflate mode " + o.deflate)
	}
	c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{Subprotocols: o.protocols, CompressionMode: mode})
	if err != nil {
		return err
	}
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	coderRun(ctx, c, event{Extensions: &ext}, emit)
	return nil
}

// coderRun runs the peer protocol; open carries what the handshake showed.
func coderRun(ctx context.Context, c *coder.Conn, open event, emit func(event)) {
	defer c.CloseNow()
	c.SetReadLimit(64 << 20)
	open.Event, open.Protocol = "open", c.Subprotocol()
	emit(open)
	var pingers sync.WaitGroup
	defer pingers.Wait()
	for range 100 {
		rctx, cancel := context.WithTimeout(ctx, 2*eventTimeout)
		typ, b, err := c.Read(rctx)
		cancel()
		if err != nil {
			var ce coder.CloseError
			if errors.As(err, &ce) {
				// coder has echoed the code and reason.
				emit(event{Event: "close", Code: int(ce.Code), Reason: ce.Reason, Clean: true})
			} else {
				emit(event{Event: "close", Code: 1006, Error: err.Error()})
			}
			return
		}
		if name, arg, ok := splitCommand(b); ok && typ == coder.MessageText {
			switch name {
			case "frag":
				err = coderFragments(ctx, c, arg == "big")
			case "ping":
				// Ping waits for the pong, which only this loop's Read
				// delivers, so it runs beside the loop.
				pingers.Go(func() {
					pctx, cancel := context.WithTimeout(ctx, eventTimeout)
					defer cancel()
					if err := c.Ping(pctx); err != nil {
						emit(event{Event: "error", Error: err.Error()})
						return
					}
					emit(event{Event: "pong", Data: "1"})
					c.Write(pctx, coder.MessageText, []byte("pong 1"))
				})
			case "close":
				code, reason, _ := strings.Cut(arg, " ")
				n := 0
				for _, d := range code {
					n = n*10 + int(d-'0')
				}
				// Close returns nil only when the peer's close frame carried
				// the same code.
				if err := c.Close(coder.StatusCode(n), reason); err != nil {
					emit(event{Event: "close", Code: int(coder.CloseStatus(err)), Error: err.Error()})
				} else {
					emit(event{Event: "close", Code: n, Clean: true})
				}
				return
			default:
				err = errors.New("unknown command " + name)
			}
			if err != nil {
				emit(event{Event: "error", Error: err.Error()})
				return
			}
			continue
		}
		emit(messageEvent(typ == coder.MessageText, b))
		wctx, cancel := context.WithTimeout(ctx, eventTimeout)
		err = c.Write(wctx, typ, b)
		cancel()
		if err != nil {
			emit(event{Event: "error", Error: err.Error()})
			return
		}
	}
}

// coderFragments relies on coder's Writer sending each Write as a frame
// (uncompressed). coder compresses a Writer's message only when its first
// Write reaches the compression threshold, hence big first fragments.
func coderFragments(ctx context.Context, c *coder.Conn, big bool) error {
	ctx, cancel := context.WithTimeout(ctx, eventTimeout)
	defer cancel()
	text := []byte(fragText)
	textCuts, binCuts := []int{10, 30*133 + 27}, []int{1000, 2000}
	if big {
		textCuts, binCuts = []int{30*40 + 10, 30*133 + 27}, []int{1500, 2500}
	}
	for _, m := range []struct {
		typ  coder.MessageType
		b    []byte
		cuts []int
	}{{coder.MessageText, text, textCuts}, {coder.MessageBinary, fragBinary(), binCuts}} {
		w, err := c.Writer(ctx, m.typ)
		if err != nil {
			return err
		}
		prev := 0
		for _, cut := range append(m.cuts, len(m.b)) {
			if _, err := w.Write(m.b[prev:cut]); err != nil {
				return err
			}
			prev = cut
		}
		if err := w.Close(); err != nil {
			return err
		}
	}
	return nil
}
