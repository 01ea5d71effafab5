package interop

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/latchws/latch/websocket"
)

// Compression interop (permessage-deflate, RFC 7692). Every case runs one
// connection and checks three things: what the client offered and the
// server answered (as both sides saw it), that both sides act on it
// (Latch's Compressed, the peer's own API where it has one), and that the
// bytes on the wire really are compressed — a relay between Latch and the
// peer counts them. Every case runs with the Latch side blocking and again
// on an event engine.

// Offers Latch's Dialer makes: by default it asks for no context takeover
// both ways; with CompressionContextTakeover it offers the bare extension.
const (
	latchOffer         = noTakeoverClientFirst
	latchOfferTakeover = "permessage-deflate"
	// No context takeover either way, in the two orders seen: Latch's
	// Upgrader, gorilla and Python write the server's parameter first;
	// ws and coder echo the order of the offer.
	noTakeover            = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	noTakeoverClientFirst = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
)

// zcase is one pair of compression configurations on one connection.
type zcase struct {
	name     string // subtest name, also part of the connection id
	mode     string // the peer's configuration (each peer's table says which)
	takeover bool   // Latch's CompressionContextTakeover
	bits     int    // Latch's Dialer.CompressionMaxWindowBits
	offer    string // the client's Sec-WebSocket-Extensions, as the server saw it
	header   string // the agreed response header; "" = compression declined
	// latchCT, peerCT: the sender keeps its compression context between
	// messages (RFC 7692 §7.1.1), so a repeated random message shrinks.
	latchCT, peerCT bool
	peerMin         int // the smallest message the peer compresses
	// peerReach: the farthest match the peer's compressor finds, 0: its
	// whole window. zlib stops 262 bytes short of its window (MAX_DIST),
	// so with 9 bits (and 8, which zlib turns into 9) it finds none beyond
	// 250 bytes.
	peerReach int
	// refused: the peer rejects the handshake. With Latch as the server it
	// reports an error containing this text, with Latch as the client the
	// response status is this.
	refused string
}

// zpeer is a peer whose compression configuration can be chosen per
// connection.
type zpeer interface {
	dialDeflate(t *testing.T, id, url, mode string) *peerConn
	serveDeflate(t *testing.T, id, mode string) (url string, pc *peerConn)
}

func (p *procPeer) dialDeflate(t *testing.T, id, url, mode string) *peerConn {
	t.Helper()
	return p.connect(t, id, url, nil, mode)
}

func (p *procPeer) serveDeflate(t *testing.T, id, mode string) (string, *peerConn) {
	url, pc := p.serve(t, id)
	return withQuery(url, "deflate", mode), pc
}

func (p *goPeer) dialDeflate(t *testing.T, id, url, mode string) *peerConn {
	return p.connect(t, id, url, dialOpts{deflate: mode})
}

func (p *goPeer) serveDeflate(t *testing.T, id, mode string) (string, *peerConn) {
	url, pc := p.serve(t, id)
	return withQuery(url, "deflate", mode), pc
}

// A page's WebSocket has no configuration: Chromium always offers
// "permessage-deflate; client_max_window_bits".
func (b *browserPeer) dialDeflate(t *testing.T, id, url, mode string) *peerConn {
	t.Helper()
	if mode != "" {
		t.Fatalf("Chromium has no compression mode %q", mode)
	}
	return b.dial(t, id, url, nil)
}

func (b *browserPeer) serveDeflate(t *testing.T, id, mode string) (string, *peerConn) {
	t.Fatal("Chromium is a client only")
	return "", nil
}

func withQuery(url, key, value string) string {
	if value == "" {
		return url
	}
	return url + "?" + key + "=" + value
}

// relay forwards TCP between Latch and a peer on loopback and counts the
// bytes each way. The count cannot be taken on Latch's net.Conn: an engine
// holds only a plain socket on its loop (a wrapper that counts is served
// on a goroutine), so both drivers are measured here, the same way.
type relay struct {
	ln         net.Listener
	target     string
	latchDials bool         // the inbound connection is Latch's (Latch is the client)
	sent, got  atomic.Int64 // Latch → peer, peer → Latch
	wg         sync.WaitGroup
	mu         sync.Mutex
	conns      []net.Conn // guarded by mu
}

// newRelay listens on 127.0.0.1 and relays every connection to target.
func newRelay(t *testing.T, target string, latchDials bool) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, latchDials: latchDials}
	r.wg.Add(1)
	go r.serve(t)
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

// via returns rawURL with its host replaced by the relay's address.
func (r *relay) via(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = r.ln.Addr().String()
	return u.String()
}

func (r *relay) serve(t *testing.T) {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", r.target, eventTimeout)
		if err != nil {
			t.Errorf("relay to %s: %v", r.target, err)
			in.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, in, out)
		r.mu.Unlock()
		fromIn, fromOut := &r.got, &r.sent
		if r.latchDials {
			fromIn, fromOut = &r.sent, &r.got
		}
		var ends atomic.Int32
		r.wg.Add(2)
		go r.pipe(out, in, fromIn, &ends)
		go r.pipe(in, out, fromOut, &ends)
	}
}

// pipe copies src to dst, counting each read before it is passed on, so
// that whatever the receiver has is counted. The end of src is passed on
// as a half-close, as TCP has it; the pair is closed when both ends came.
func (r *relay) pipe(dst, src net.Conn, n *atomic.Int64, ends *atomic.Int32) {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.Add(int64(k))
			if _, werr := dst.Write(buf[:k]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.(*net.TCPConn).CloseWrite()
	if ends.Add(1) == 2 {
		src.Close()
		dst.Close()
	}
}

// newDeflateServer is a Latch server with compression on, Latch's default
// (no context takeover) at /ws/ID and CompressionContextTakeover at
// /ws/ID?latch=takeover. The heartbeat is off so that no ping enters the
// byte counts. origins admits the browser page when it comes from another
// test server.
func newDeflateServer(t *testing.T, origins ...string) *latchServer {
	up := websocket.Upgrader{EnableCompression: true, HeartbeatInterval: -1, OriginPatterns: origins}
	tk := up
	tk.CompressionContextTakeover = true
	ls := &latchServer{upgrader: up, takeover: &tk}
	ls.start(t, nil)
	return ls
}

// runDeflate runs every server case with Latch as the server (the peer
// dials) and every client case with Latch as the client (the peer serves),
// each through a counting relay, on each driver (latch-server,
// latch-server-engine, ...).
func runDeflate(t *testing.T, p zpeer, pcaps caps, ls *latchServer, server, client []zcase) {
	for _, drv := range drivers {
		runDeflateDriver(t, p, pcaps, ls, server, client, drv)
	}
}

func runDeflateDriver(t *testing.T, p zpeer, pcaps caps, ls *latchServer, server, client []zcase, drv driver) {
	t.Run("latch-server"+drv.suffix, func(t *testing.T) {
		for _, zc := range server {
			t.Run(zc.name, func(t *testing.T) {
				id := drv.prefix + "z-s-" + zc.name
				r := newRelay(t, ls.srv.Listener.Addr().String(), false)
				wsURL := r.via(t, ls.url(id))
				if zc.takeover {
					wsURL = withQuery(wsURL, "latch", "takeover")
				}
				pc := p.dialDeflate(t, id, wsURL, zc.mode)
				c := drv.side(t, ls.accept(t, id))
				if zc.refused != "" {
					checkRefusedByClient(t, zc, c, pc, ls.offer(id))
					return
				}
				pc.open = pc.waitFor(t, "open")
				if pc.open.Extensions == nil {
					t.Fatal("the peer, a client, did not report the response's Sec-WebSocket-Extensions")
				}
				checkAgreement(t, zc, c, ls.offer(id), nil, pc.open)
				runDeflateBattery(t, c, r, pc, zc, pcaps, true)
			})
		}
	})
	if len(client) == 0 {
		return
	}
	t.Run("latch-client"+drv.suffix, func(t *testing.T) {
		for _, zc := range client {
			if zc.refused != "" && drv.engine {
				continue // no connection for an engine to hold: the blocking run covers it
			}
			t.Run(zc.name, func(t *testing.T) {
				id := drv.prefix + "z-c-" + zc.name
				wsURL, pc := p.serveDeflate(t, id, zc.mode)
				r := newRelay(t, hostOf(t, wsURL), true)
				wsURL = r.via(t, wsURL)
				d := websocket.Dialer{
					HandshakeTimeout:           eventTimeout,
					EnableCompression:          true,
					CompressionContextTakeover: zc.takeover,
					CompressionMaxWindowBits:   zc.bits,
				}
				c, resp, err := d.Dial(wsURL, nil)
				if zc.refused != "" {
					if c != nil {
						c.CloseNow()
					}
					if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil || resp.Status != zc.refused {
						t.Fatalf("dial: error %v, response %v; want %v and status %q", err, resp, websocket.ErrBadHandshake, zc.refused)
					}
					t.Logf("offer %q refused: %s", zc.offer, resp.Status)
					return
				}
				if err != nil {
					t.Fatalf("dial %s: %v (response %v)", wsURL, err, resp)
				}
				t.Cleanup(func() { c.CloseNow() })
				lc := drv.side(t, c)
				pc.open = pc.waitFor(t, "open")
				header := resp.Header.Get("Sec-WebSocket-Extensions")
				checkAgreement(t, zc, lc, pc.open.Offer, &header, pc.open)
				runDeflateBattery(t, lc, r, pc, zc, pcaps, false)
			})
		}
	})
}

func hostOf(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// checkRefusedByClient: Latch's server answered, the peer rejected the
// answer and failed the connection (RFC 6455 §4.1), so Latch's next read
// fails before its deadline.
func checkRefusedByClient(t *testing.T, zc zcase, c latchConn, pc *peerConn, offer string) {
	t.Helper()
	if offer != zc.offer {
		t.Errorf("client offered %q, want %q", offer, zc.offer)
	}
	ev := pc.waitFor(t, "error")
	if !strings.Contains(ev.Error, zc.refused) {
		t.Errorf("peer error %q; want one containing %q", ev.Error, zc.refused)
	}
	t.Logf("offer %q; the peer refused Latch's answer: %s", offer, ev.Error)
	c.SetReadDeadline(time.Now().Add(eventTimeout))
	_, _, err := c.ReadMessage()
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Latch read after the peer refused: %v; want the connection gone", err)
	}
}

// checkAgreement compares the handshake with zc: the offer as the server
// saw it, the response header as Latch's client (latchHeader, nil on the
// server side) and the peer saw it, and whether both sides compress.
func checkAgreement(t *testing.T, zc zcase, c latchConn, offer string, latchHeader *string, open event) {
	t.Helper()
	peerHeader := "(not reported)"
	if open.Extensions != nil {
		peerHeader = fmt.Sprintf("%q", *open.Extensions)
	}
	t.Logf("offer %q; response as the peer saw it %s; Latch Compressed()=%v", offer, peerHeader, c.Compressed())
	if offer != zc.offer {
		t.Errorf("client offered %q, want %q", offer, zc.offer)
	}
	if latchHeader != nil && *latchHeader != zc.header {
		t.Errorf("Latch's client got Sec-WebSocket-Extensions %q, want %q", *latchHeader, zc.header)
	}
	if open.Extensions != nil && *open.Extensions != zc.header {
		t.Errorf("peer saw Sec-WebSocket-Extensions %q, want %q", *open.Extensions, zc.header)
	}
	want := zc.header != ""
	if c.Compressed() != want {
		t.Errorf("Latch Compressed() = %v, want %v", c.Compressed(), want)
	}
	if open.Active != nil && *open.Active != want {
		t.Errorf("peer reports permessage-deflate in force = %v, want %v", *open.Active, want)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// zSizes are the message sizes of the battery.
var zSizes = []int{0, 100, 1 << 10, 64 << 10, mib}

// jsonLike returns n bytes of repetitive JSON-like UTF-8 text, the kind of
// payload compression is for (deflate shrinks it 4-10x).
func jsonLike(n int) []byte {
	b := make([]byte, 0, n+128)
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, `{"id":%d,"user":"user-%04d","city":"Zürich","online":%t,"score":%d,"tags":["chat","presence","✓"]},`,
			i, i*7%10000, i%3 == 0, i*37%1000)
	}
	b = b[:n]
	for !utf8.Valid(b) { // a rune cut at the end
		b = b[:len(b)-1]
	}
	for len(b) < n {
		b = append(b, ' ')
	}
	return b
}

// randomBytes returns n bytes that deflate cannot shrink, the same for the
// same seed.
func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// frameSize is the wire size of an uncompressed single-frame message
// (RFC 6455 §5.2).
func frameSize(n int, masked bool) int64 {
	size := int64(2 + n)
	switch {
	case n > 65535:
		size += 8
	case n > 125:
		size += 2
	}
	if masked {
		size += 4
	}
	return size
}

// wire is what one exchange cost between Latch and the peer.
type wire struct{ sent, got int64 }

// measure counts the bytes of an exchange that ends with both sides
// having what was sent (the peer reported it, Latch read it), so none of
// it is still on its way.
func measure(r *relay, f func()) wire {
	s0, g0 := r.sent.Load(), r.got.Load()
	f()
	return wire{sent: r.sent.Load() - s0, got: r.got.Load() - g0}
}

// runDeflateBattery echoes the message battery, a repeated random message
// that shows context takeover, and fragmented messages both ways.
func runDeflateBattery(t *testing.T, c latchConn, r *relay, pc *peerConn, zc zcase, pcaps caps, latchIsServer bool) {
	compressed := zc.header != ""

	for _, kind := range []struct {
		name         string
		typ          int
		compressible bool
		gen          func(n int) []byte
	}{
		{"text-json", websocket.TextMessage, true, jsonLike},
		{"binary-json", websocket.BinaryMessage, true, jsonLike},
		{"binary-random", websocket.BinaryMessage, false, func(n int) []byte { return randomBytes(n, byte(n)) }},
	} {
		for _, n := range zSizes {
			msg := kind.gen(n)
			what := fmt.Sprintf("%s %d bytes", kind.name, n)
			w := measure(r, func() { echo(t, c, pc, kind.typ, msg) })
			checkLatchWire(t, what, compressed, latchIsServer, w.sent, n, kind.compressible)
			checkPeerWire(t, what, zc, w.got, n, kind.compressible)
		}
	}

	// The same 2 KiB of random bytes twice: only a sender that keeps its
	// context can point back at the first copy.
	probe := randomBytes(2<<10, 99)
	echo(t, c, pc, websocket.BinaryMessage, probe)
	w := measure(r, func() { echo(t, c, pc, websocket.BinaryMessage, probe) })
	t.Logf("repeated 2 KiB random message: Latch sent %d bytes, the peer %d", w.sent, w.got)
	checkRepeat(t, "Latch", compressed && zc.latchCT, w.sent)
	checkRepeat(t, "the peer", compressed && zc.peerCT, w.got)

	// A compressed message written through NextWriter in several Writes
	// (RFC 7692 §6.1: RSV1 on the first frame only), echoed by the peer.
	for _, m := range []struct {
		what   string
		typ    int
		msg    []byte
		cuts   []int
		period int // the message repeats itself every period bytes
	}{
		{"fragmented text", websocket.TextMessage, []byte(fragText), []int{10, 30*133 + 27, 30*300 + 1}, len(fragText) / 400},
		{"fragmented binary", websocket.BinaryMessage, append(append(fragBinary(), fragBinary()...), fragBinary()...), []int{1, 5000}, 251},
	} {
		// Measured to the echo: an engine's writes leave from its loop, so
		// Latch's bytes may still be on their way when Close returns.
		w := measure(r, func() {
			wr, err := c.NextWriter(m.typ)
			if err != nil {
				t.Fatalf("NextWriter: %v", err)
			}
			prev := 0
			for _, cut := range append(m.cuts, len(m.msg)) {
				if _, err := wr.Write(m.msg[prev:cut]); err != nil {
					t.Fatalf("write fragment: %v", err)
				}
				prev = cut
			}
			if err := wr.Close(); err != nil {
				t.Fatalf("close writer: %v", err)
			}
			checkPeerGot(t, pc, m.typ, m.msg)
			readExpect(t, c, m.typ, m.msg)
		})
		t.Logf("%s, %d bytes: Latch sent %d bytes, the peer %d", m.what, len(m.msg), w.sent, w.got)
		checkCompressible(t, "Latch", m.what, compressed, w.sent, len(m.msg))
		if zc.peerReach > 0 && m.period > zc.peerReach && compressed {
			checkBounded(t, "the peer", m.what, w.got, len(m.msg))
		} else {
			checkCompressible(t, "the peer", m.what, compressed && len(m.msg) >= zc.peerMin, w.got, len(m.msg))
		}
	}

	// The peer sends compressed fragments ("cmd frag big": first fragments
	// over every peer's threshold); Latch inflates across frames.
	if pcaps.noFragments {
		return
	}
	w = measure(r, func() {
		if err := c.WriteMessage(websocket.TextMessage, []byte("cmd frag big")); err != nil {
			t.Fatal(err)
		}
		readExpect(t, c, websocket.TextMessage, []byte(fragText))
		readExpect(t, c, websocket.BinaryMessage, fragBinary())
	})
	n := len(fragText) + len(fragBinary())
	t.Logf("fragments from the peer, %d bytes: %d on the wire", n, w.got)
	checkCompressible(t, "the peer", "fragmented messages", compressed, w.got, n)
}

// checkLatchWire: below the threshold, or without compression, Latch sends
// the plain frame to the byte; compressible data shrinks below a third;
// random data does not grow by more than deflate's block overhead.
func checkLatchWire(t *testing.T, what string, compressed, latchIsServer bool, sent int64, n int, compressible bool) {
	t.Helper()
	switch {
	case !compressed || n < websocket.DefaultCompressionThreshold:
		if want := frameSize(n, !latchIsServer); sent != want {
			t.Errorf("%s: Latch sent %d bytes, want %d (one uncompressed frame)", what, sent, want)
		}
	case compressible:
		checkCompressible(t, "Latch", what, true, sent, n)
	default:
		checkBounded(t, "Latch", what, sent, n)
	}
}

// checkPeerWire is checkLatchWire for the echo; peers have their own
// thresholds and frame sizes, so an uncompressed echo is only "at least n".
func checkPeerWire(t *testing.T, what string, zc zcase, got int64, n int, compressible bool) {
	t.Helper()
	switch {
	case n == 0:
	case zc.header == "" || n < zc.peerMin:
		if got < int64(n) {
			t.Errorf("%s: the peer sent %d bytes; want at least %d (uncompressed)", what, got, n)
		}
	case compressible && n >= 1<<10:
		checkCompressible(t, "the peer", what, true, got, n)
	default:
		checkBounded(t, "the peer", what, got, n)
	}
}

// checkCompressible: compressed, a compressible message of n bytes takes
// less than n/3 on the wire; uncompressed, at least n.
func checkCompressible(t *testing.T, who, what string, compressed bool, wire int64, n int) {
	t.Helper()
	if compressed && wire >= int64(n/3) {
		t.Errorf("%s: %s sent %d bytes on the wire for %d; want fewer than %d (compressed)", what, who, wire, n, n/3)
	}
	if !compressed && wire < int64(n) {
		t.Errorf("%s: %s sent %d bytes on the wire for %d; want at least %d (uncompressed)", what, who, wire, n, n)
	}
}

// checkBounded: deflate falls back to stored blocks for random data
// (RFC 1951 §3.2.4), so it grows by a few bytes per 64 KiB only.
func checkBounded(t *testing.T, who, what string, wire int64, n int) {
	t.Helper()
	if limit := int64(n + n/64 + 64); wire > limit {
		t.Errorf("%s: %s sent %d bytes on the wire; want at most %d", what, who, wire, limit)
	}
}

// checkRepeat: a sender with context takeover sends the second copy of a
// 2 KiB random message as back-references, a few dozen bytes; without,
// it costs the full 2 KiB again.
func checkRepeat(t *testing.T, who string, takeover bool, wire int64) {
	t.Helper()
	const n = 2 << 10
	if takeover && wire >= 256 {
		t.Errorf("repeated random message: %s sent %d bytes; want < 256 (context takeover)", who, wire)
	}
	if !takeover && wire < n {
		t.Errorf("repeated random message: %s sent %d bytes; want at least %d (no context takeover)", who, wire, n)
	}
}

// TestNodeWSDeflate: ws with perMessageDeflate true (threshold 1024) and
// with context takeover both ways and threshold 0.
func TestNodeWSDeflate(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	requirePeer(t, err == nil, "node")
	_, err = os.Stat(filepath.Join("node", "node_modules", "ws", "package.json"))
	requirePeer(t, err == nil, "Node.js ws (interop/node/node_modules)")
	p := startProcPeer(t, node, filepath.Join("node", "peer.js"))
	const wsOffer = "permessage-deflate; client_max_window_bits"
	// ws applies its threshold only to a direction without context
	// takeover; with takeover it compresses every message.
	server := []zcase{
		{name: "deflate-latch-default", mode: "deflate", offer: wsOffer, header: noTakeover, peerMin: 1024},
		{name: "deflate-latch-takeover", mode: "deflate", takeover: true, offer: wsOffer, header: "permessage-deflate", latchCT: true, peerCT: true},
		// clientNoContextTakeover: false makes ws fail the connection when
		// the response has client_no_context_takeover (RFC 7692 §7.1.1.2
		// lets a server add it), and Latch's default always does.
		{name: "takeover-latch-default", mode: "takeover", offer: wsOffer, refused: "Invalid Sec-WebSocket-Extensions header"},
		{name: "takeover-latch-takeover", mode: "takeover", takeover: true, offer: wsOffer, header: "permessage-deflate", latchCT: true, peerCT: true},
	}
	client := []zcase{
		{name: "deflate-latch-default", mode: "deflate", offer: latchOffer, header: noTakeoverClientFirst, peerMin: 1024},
		{name: "deflate-latch-takeover", mode: "deflate", takeover: true, offer: latchOfferTakeover, header: "permessage-deflate", latchCT: true, peerCT: true},
		// serverNoContextTakeover: false makes ws decline an offer with
		// server_no_context_takeover, Latch's default offer, with a 400.
		{name: "takeover-latch-default", mode: "takeover", offer: latchOffer, refused: "400 Bad Request"},
		{name: "takeover-latch-takeover", mode: "takeover", takeover: true, offer: latchOfferTakeover, header: "permessage-deflate", latchCT: true, peerCT: true},
	}
	server = append(server, wsWindowServer...)
	client = append(client, wsWindowClient...)
	runDeflate(t, p, caps{}, newDeflateServer(t), server, client)
}

// Windows under 2^15 with ws (RFC 7692 §7.1.2). ws inflates with the
// window agreed for its peer, so a Latch back-reference beyond it would
// fail the connection. The repeated 2 KiB probe can only shrink with a
// window of 4 KiB or more.
var wsWindowServer = func() []zcase {
	var cs []zcase
	for _, bits := range []int{8, 9, 12, 14} {
		offer := fmt.Sprintf("permessage-deflate; server_max_window_bits=%d; client_max_window_bits=%d", bits, bits)
		answer := fmt.Sprintf("; server_max_window_bits=%d", bits)
		mode := fmt.Sprintf("window%d", bits)
		reach := 0
		if bits <= 9 {
			reach = 250
		}
		cs = append(cs,
			zcase{name: mode + "-latch-default", mode: mode, offer: offer, header: noTakeover + answer, peerReach: reach},
			zcase{name: mode + "-latch-takeover", mode: mode, takeover: true, offer: offer, header: "permessage-deflate" + answer,
				latchCT: bits >= 12, peerCT: bits >= 12, peerReach: reach})
	}
	return cs
}()

var wsWindowClient = []zcase{
	// ws's server with clientMaxWindowBits declines an offer without
	// client_max_window_bits, Latch's default one.
	{name: "window9-latch-default", mode: "window9", offer: latchOffer, refused: "400 Bad Request"},
	// CompressionMaxWindowBits 15 offers it without a value; ws picks 9.
	{name: "window9-latch-offers-client-bits", mode: "window9", bits: 15, offer: latchOffer + "; client_max_window_bits",
		header: noTakeoverClientFirst + "; client_max_window_bits=9; server_max_window_bits=9", peerReach: 250},
	{name: "window9-latch-takeover-offers-client-bits", mode: "window9", takeover: true, bits: 15, offer: "permessage-deflate; client_max_window_bits",
		header: "permessage-deflate; client_max_window_bits=9; server_max_window_bits=9", peerReach: 250},
	{name: "window9-latch-asks-9", mode: "window9", bits: 9, offer: latchOffer + "; server_max_window_bits=9; client_max_window_bits=9",
		header: noTakeoverClientFirst + "; server_max_window_bits=9; client_max_window_bits=9", peerReach: 250},
	{name: "window8-latch-offers-client-bits", mode: "window8", bits: 15, offer: latchOffer + "; client_max_window_bits",
		header: noTakeoverClientFirst + "; client_max_window_bits=8; server_max_window_bits=8", peerReach: 250},
	{name: "window8-latch-takeover-asks-8", mode: "window8", takeover: true, bits: 8, offer: "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
		header: "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8", peerReach: 250},
	{name: "window12-latch-takeover-offers-client-bits", mode: "window12", takeover: true, bits: 15, offer: "permessage-deflate; client_max_window_bits",
		header: "permessage-deflate; client_max_window_bits=12; server_max_window_bits=12", latchCT: true, peerCT: true},
	{name: "window14-latch-asks-14", mode: "window14", bits: 14, offer: latchOffer + "; server_max_window_bits=14; client_max_window_bits=14",
		header: noTakeoverClientFirst + "; server_max_window_bits=14; client_max_window_bits=14"},
}

// TestPythonDeflate: websockets' default compression="deflate" (as a
// server it limits both windows to 12 bits), factories allowing context
// takeover, and server_max_window_bits=10, which both Latch's server
// (compressing within 2^10 bytes) and Latch's client accept.
func TestPythonDeflate(t *testing.T) {
	t.Parallel()
	err := exec.Command(debianPython, "-c", "import websockets").Run()
	requirePeer(t, err == nil, "Python websockets ("+debianPython+" with python3-websockets)")
	p := startProcPeer(t, debianPython, filepath.Join("python", "peer.py"))
	const pyOffer = "permessage-deflate; client_max_window_bits"
	const pyOffer10 = "permessage-deflate; server_max_window_bits=10; client_max_window_bits"
	server := []zcase{
		{name: "deflate-latch-default", mode: "deflate", offer: pyOffer, header: noTakeover},
		{name: "deflate-latch-takeover", mode: "deflate", takeover: true, offer: pyOffer, header: "permessage-deflate", latchCT: true, peerCT: true},
		{name: "takeover-latch-default", mode: "takeover", offer: pyOffer, header: noTakeover},
		{name: "takeover-latch-takeover", mode: "takeover", takeover: true, offer: pyOffer, header: "permessage-deflate", latchCT: true, peerCT: true},
		// Latch compresses within the 1 KiB window, which cannot reach the
		// first copy of the 2 KiB probe.
		{name: "window10-latch-default", mode: "window10", offer: pyOffer10, header: noTakeover + "; server_max_window_bits=10"},
		{name: "window10-latch-takeover", mode: "window10", takeover: true, offer: pyOffer10, header: "permessage-deflate; server_max_window_bits=10", peerCT: true},
	}
	client := []zcase{
		{name: "deflate-latch-default", mode: "deflate", offer: latchOffer, header: noTakeover + "; server_max_window_bits=12"},
		// A 4 KiB window still reaches the first copy of the 2 KiB probe.
		{name: "deflate-latch-takeover", mode: "deflate", takeover: true, offer: latchOfferTakeover, header: "permessage-deflate; server_max_window_bits=12", latchCT: true, peerCT: true},
		{name: "takeover-latch-default", mode: "takeover", offer: latchOffer, header: noTakeover},
		{name: "takeover-latch-takeover", mode: "takeover", takeover: true, offer: latchOfferTakeover, header: "permessage-deflate", latchCT: true, peerCT: true},
		{name: "window10-latch-default", mode: "window10", offer: latchOffer, header: noTakeover + "; server_max_window_bits=10"},
		// Python keeps its context, but a 1 KiB window cannot reach 2 KiB back.
		{name: "window10-latch-takeover", mode: "window10", takeover: true, offer: latchOfferTakeover, header: "permessage-deflate; server_max_window_bits=10", latchCT: true},
	}
	runDeflate(t, p, caps{}, newDeflateServer(t), server, client)
}

// TestGorillaDeflate: gorilla's EnableCompression, which knows only no
// context takeover and compresses every message.
func TestGorillaDeflate(t *testing.T) {
	t.Parallel()
	p := newGoPeer(t, gorillaServe, gorillaDial)
	server := []zcase{
		{name: "latch-default", mode: "on", offer: noTakeover, header: noTakeover},
		{name: "latch-takeover", mode: "on", takeover: true, offer: noTakeover, header: noTakeover},
	}
	client := []zcase{
		{name: "latch-default", mode: "on", offer: latchOffer, header: noTakeover},
		{name: "latch-takeover", mode: "on", takeover: true, offer: latchOfferTakeover, header: noTakeover},
	}
	runDeflate(t, p, caps{}, newDeflateServer(t), server, client)
}

// TestCoderDeflate: coder's CompressionContextTakeover (threshold 128) and
// CompressionNoContextTakeover (threshold 512).
func TestCoderDeflate(t *testing.T) {
	t.Parallel()
	p := newGoPeer(t, coderServe, coderDial)
	server := []zcase{
		{name: "takeover-latch-default", mode: "takeover", offer: "permessage-deflate", header: noTakeover, peerMin: 128},
		{name: "takeover-latch-takeover", mode: "takeover", takeover: true, offer: "permessage-deflate", header: "permessage-deflate", latchCT: true, peerCT: true, peerMin: 128},
		{name: "notakeover-latch-default", mode: "notakeover", offer: noTakeoverClientFirst, header: noTakeover, peerMin: 512},
		{name: "notakeover-latch-takeover", mode: "notakeover", takeover: true, offer: noTakeoverClientFirst, header: noTakeover, peerMin: 512},
	}
	client := []zcase{
		{name: "takeover-latch-default", mode: "takeover", offer: latchOffer, header: noTakeoverClientFirst, peerMin: 128},
		{name: "takeover-latch-takeover", mode: "takeover", takeover: true, offer: latchOfferTakeover, header: "permessage-deflate", latchCT: true, peerCT: true, peerMin: 128},
		{name: "notakeover-latch-default", mode: "notakeover", offer: latchOffer, header: noTakeoverClientFirst, peerMin: 512},
		{name: "notakeover-latch-takeover", mode: "notakeover", takeover: true, offer: latchOfferTakeover, header: noTakeoverClientFirst, peerMin: 512},
	}
	runDeflate(t, p, caps{pingPayload: "1"}, newDeflateServer(t), server, client)
}

// chromiumDeflate: Chromium offers "permessage-deflate;
// client_max_window_bits" and allows context takeover both ways.
var chromiumDeflate = []zcase{
	{name: "latch-default", offer: "permessage-deflate; client_max_window_bits", header: noTakeover},
	{name: "latch-takeover", takeover: true, offer: "permessage-deflate; client_max_window_bits", header: "permessage-deflate", latchCT: true, peerCT: true},
}
