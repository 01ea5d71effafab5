package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/latchws/latch/internal/deflate"
	"github.com/latchws/latch/internal/deflate/windowcheck"
	"github.com/latchws/latch/internal/mask"
)

// Window bits (RFC 7692 §7.1.2): every compressed message Latch sends must
// keep its back-references within the 2^N bytes it agreed to. The raw peer
// inflates each message with windowcheck, an inflater of its own that
// records the farthest distance any back-reference reaches, across message
// boundaries too when the context is kept. That checks the rule itself, for
// every message: not only that no reference reaches before the message
// (which a fresh inflater would show) but that none inside it, or into the
// previous messages, reaches further than 2^N.

// windowText is n bytes of JSON-like text made of pieces of one 48 KiB
// corpus, so that it repeats itself at every distance up to 48 KiB, inside
// a message and from one message to the next.
func windowText(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, 0, n)
	for len(b) < n {
		from := r.IntN(len(windowCorpus) - 64)
		b = append(b, windowCorpus[from:from+16+r.IntN(48)]...)
	}
	return b[:n]
}

var windowCorpus = func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b []byte
	for i := 0; len(b) < 48<<10; i++ {
		b = fmt.Appendf(b, `{"id":%d,"user":"u%d","text":"%x","ok":%t},`, i, r.IntN(1e6), r.Uint64(), r.IntN(2) == 0)
	}
	return b
}()

// windowMessages is what each connection sends: small and large, with the
// same long message twice so that a kept context could reach back to it.
var windowMessages = func() [][]byte {
	var ms [][]byte
	for i, n := range []int{200, 1000, 300, 5000, 20000, 70000, 256, 3000, 70000} {
		ms = append(ms, windowText(n, uint64(i)))
	}
	ms = append(ms, ms[3]) // 5000 bytes again, two messages later
	return ms
}()

// sendThreeWays writes message i with WriteMessage, NextWriter in pieces
// or WritePreparedMessage, in turn.
func sendThreeWays(c *Conn, prepared []*PreparedMessage) error {
	for i, m := range windowMessages {
		switch i % 3 {
		case 0:
			if err := c.WriteMessage(BinaryMessage, m); err != nil {
				return err
			}
		case 1:
			w, err := c.NextWriter(TextMessage)
			if err != nil {
				return err
			}
			for p := m; len(p) > 0; {
				k := min(len(p), 1500)
				if _, err := w.Write(p[:k]); err != nil {
					return err
				}
				p = p[k:]
			}
			if err := w.Close(); err != nil {
				return err
			}
		default:
			if err := c.WritePreparedMessage(prepared[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func newPrepared(t *testing.T) []*PreparedMessage {
	t.Helper()
	ps := make([]*PreparedMessage, len(windowMessages))
	for i, m := range windowMessages {
		pm, err := NewPreparedMessage(BinaryMessage, m)
		if err != nil {
			t.Fatal(err)
		}
		ps[i] = pm
	}
	return ps
}

// readRawMessage reads one data message frame by frame, unmasking client
// frames; rsv1 is the first frame's.
func readRawMessage(br *bufio.Reader) (rsv1 bool, payload []byte, err error) {
	for first := true; ; first = false {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return false, nil, err
		}
		if first {
			rsv1 = h[0]&0x40 != 0
		} else if h[0]&0x70 != 0 {
			return false, nil, fmt.Errorf("RSV bits %#x on a continuation frame", h[0]&0x70)
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return false, nil, err
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return false, nil, err
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		var key [4]byte
		if h[1]&0x80 != 0 {
			if _, err := io.ReadFull(br, key[:]); err != nil {
				return false, nil, err
			}
		}
		if n > 1<<20 {
			return false, nil, fmt.Errorf("frame of %d bytes", n)
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return false, nil, err
		}
		if h[1]&0x80 != 0 {
			mask.Apply(key, 0, p)
		}
		payload = append(payload, p...)
		if h[0]&0x80 != 0 {
			return rsv1, payload, nil
		}
	}
}

// checkWindow reads every message of windowMessages from br and checks it
// against the window of 2^bits bytes.
func checkWindow(t *testing.T, br *bufio.Reader, bits int, takeover bool) {
	t.Helper()
	inf := windowcheck.Inflater{Takeover: takeover}
	farthest := 0
	for i, want := range windowMessages {
		rsv1, payload, err := readRawMessage(br)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !rsv1 {
			t.Fatalf("message %d (%d bytes) went out uncompressed", i, len(want))
		}
		got, dist, err := inf.Inflate(payload)
		if err != nil {
			t.Fatalf("message %d (%d bytes): %v", i, len(want), err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d: inflated %d bytes, not the %d sent", i, len(got), len(want))
		}
		if dist > 1<<bits {
			t.Fatalf("message %d (%d bytes): a back-reference reaches %d bytes back, window %d", i, len(want), dist, 1<<bits)
		}
		if len(want) >= 1000 && len(payload) > len(want)/2 {
			t.Errorf("message %d: %d bytes compressed to %d", i, len(want), len(payload))
		}
		farthest = max(farthest, dist)
	}
	// The data repeats at every distance: a window honoured by not
	// compressing, or by never matching far, would not come close.
	if farthest < 1<<bits/2 {
		t.Errorf("farthest back-reference %d bytes in a window of %d", farthest, 1<<bits)
	}
	t.Logf("window %d bytes, takeover=%v: farthest back-reference %d", 1<<bits, takeover, farthest)
}

// TestServerHonoursServerMaxWindowBits: for every N in 8..14, with and
// without context takeover, what the server sends with WriteMessage,
// NextWriter and WritePreparedMessage stays within 2^N bytes.
func TestServerHonoursServerMaxWindowBits(t *testing.T) {
	prepared := newPrepared(t) // shared by all connections: one encoding per window
	for bits := 8; bits <= 14; bits++ {
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("bits=%d/takeover=%v", bits, takeover), func(t *testing.T) {
				done := make(chan error, 1)
				u := &Upgrader{EnableCompression: true, CompressionContextTakeover: takeover, CompressionThreshold: -1, HeartbeatInterval: -1}
				url := serve(t, u, func(c *Conn) {
					defer c.Close()
					done <- sendThreeWays(c, prepared)
					c.ReadMessage() // until the peer goes
				})
				offer := fmt.Sprintf("permessage-deflate; client_max_window_bits; server_max_window_bits=%d", bits)
				want := fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits)
				if !takeover {
					want = fmt.Sprintf("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=%d", bits)
				}
				nc, br := rawOffer(t, url, offer, want)
				defer nc.Close()
				checkWindow(t, br, bits, takeover)
				if err := <-done; err != nil {
					t.Fatalf("server writes: %v", err)
				}
			})
		}
	}
	// Without context takeover a prepared message is encoded once per
	// window and shared by the connections with that window.
	for i, pm := range prepared {
		if i%3 == 2 && len(pm.compressed) != 7 {
			t.Errorf("prepared message %d: %d encodings, want 7 (one per window)", i, len(pm.compressed))
		}
	}
}

// rawOffer upgrades by hand with offer and checks the exact response.
func rawOffer(t *testing.T, url, offer, wantResp string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", strings.TrimPrefix(url, "ws://"))
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: " + offer + "\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	if got := resp.Header.Get("Sec-Websocket-Extensions"); got != wantResp {
		t.Fatalf("offer %q answered %q, want %q", offer, got, wantResp)
	}
	return nc, br
}

// TestClientHonoursClientMaxWindowBits: a Dialer asking for 14 bits both
// ways, answered client_max_window_bits=N (8..14), compresses within 2^N
// bytes, with and without context takeover.
func TestClientHonoursClientMaxWindowBits(t *testing.T) {
	prepared := newPrepared(t)
	for bits := 8; bits <= 14; bits++ {
		for _, takeover := range []bool{false, true} {
			t.Run(fmt.Sprintf("bits=%d/takeover=%v", bits, takeover), func(t *testing.T) {
				offered := make(chan string, 1)
				raw := make(chan *bufio.Reader, 1)
				resp := fmt.Sprintf("permessage-deflate; server_max_window_bits=14; client_max_window_bits=%d", bits)
				if !takeover {
					resp += "; server_no_context_takeover; client_no_context_takeover"
				}
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					offered <- r.Header.Get("Sec-Websocket-Extensions")
					nc, brw, err := http.NewResponseController(w).Hijack()
					if err != nil {
						t.Error(err)
						return
					}
					t.Cleanup(func() { nc.Close() })
					nc.SetDeadline(time.Now().Add(10 * time.Second))
					fmt.Fprintf(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: %s\r\n\r\n",
						acceptKey(r.Header.Get("Sec-Websocket-Key")), resp)
					raw <- brw.Reader
				}))
				t.Cleanup(srv.Close)
				d := Dialer{EnableCompression: true, CompressionContextTakeover: takeover, CompressionThreshold: -1, CompressionMaxWindowBits: 14}
				c, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer c.CloseNow()
				wantOffer := "permessage-deflate; server_max_window_bits=14; client_max_window_bits=14"
				if !takeover {
					wantOffer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover; server_max_window_bits=14; client_max_window_bits=14"
				}
				if got := <-offered; got != wantOffer {
					t.Fatalf("Dialer offered %q, want %q", got, wantOffer)
				}
				done := make(chan error, 1)
				go func() { done <- sendThreeWays(c, prepared) }()
				checkWindow(t, <-raw, bits, takeover)
				if err := <-done; err != nil {
					t.Fatalf("client writes: %v", err)
				}
			})
		}
	}
}

// TestDialerRejectsBadWindowBits: a window outside 8..15 is a Dial error,
// before any connection.
func TestDialerRejectsBadWindowBits(t *testing.T) {
	for _, bits := range []int{-1, 1, 7, 16} {
		d := Dialer{EnableCompression: true, CompressionMaxWindowBits: bits}
		if _, _, err := d.Dial("ws://127.0.0.1:1/", nil); err != errBadWindowBits {
			t.Errorf("CompressionMaxWindowBits %d: Dial error %v, want %v", bits, err, errBadWindowBits)
		}
	}
}

// costJSON is n bytes of chat-like JSON events, different for each seed.
func costJSON(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)^0x15))
	words := strings.Fields("hello there see you at the meeting tomorrow ok thanks great idea lunch deploy done review merged build failed passing latency dashboard alert")
	b := []byte("[")
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, `{"id":%d,"type":"message","channel":"room-%d","user":{"id":%d,"name":"user-%04d"},"text":"`,
			r.IntN(1e9), r.IntN(50), r.IntN(1e5), r.IntN(1e4))
		for w := r.IntN(12) + 3; w > 0; w-- {
			b = append(append(b, words[r.IntN(len(words))]...), ' ')
		}
		b = fmt.Appendf(b, `","ts":%d,"online":%t,"score":%.2f},`, 1765000000000+r.Int64N(1e9), r.IntN(2) == 0, r.Float64()*100)
	}
	return b[:n]
}

// TestWindowBitsCost measures what smaller windows cost in compression
// ratio on JSON messages of 100 B to 64 KiB (docs/compression.md has the
// table), and checks every output against its window. Nothing goes out
// uncompressed for its size: the encoder limits its match distance, so the
// threshold alone decides.
func TestWindowBitsCost(t *testing.T) {
	sizes := []int{100, 300, 1 << 10, 4 << 10, 16 << 10, 64 << 10}
	const perSize = 20 // distinct messages of each size
	t.Log("ratio = compressed / original bytes; below 15 bits klauspost's windowed encoder (about level 5)")
	t.Log("encoder        | takeover | " + fmt.Sprint(sizes))
	for _, enc := range []struct {
		name        string
		level, bits int
	}{
		{"15 bits, L1", defaultCompressionLevel, 15}, // Latch's default
		{"15 bits, L5", 5, 15},
		{"14 bits", defaultCompressionLevel, 14},
		{"12 bits", defaultCompressionLevel, 12},
		{"9 bits", defaultCompressionLevel, 9},
		{"8 bits", defaultCompressionLevel, 8},
	} {
		bits := enc.bits
		for _, tk := range []bool{false, true} {
			kind := deflaterKind(enc.level, bits)
			row := fmt.Sprintf("%-14s | %-8v |", enc.name, tk)
			for _, n := range sizes {
				var plain, packed int
				inf := windowcheck.Inflater{Takeover: tk}
				var cb compressedBuf
				fw := newDeflater(&cb, kind)
				for i := range perSize {
					msg := costJSON(n, uint64(i))
					var out []byte
					if tk {
						cb.b = cb.b[:0]
						fw.Write(msg)
						fw.Flush()
						out = trimFlushTail(cb.b)
					} else {
						out = deflateBytes(kind, msg)
					}
					got, dist, err := inf.Inflate(out)
					if err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("bits %d, %d bytes: inflate: %v", bits, n, err)
					}
					if dist > 1<<bits {
						t.Fatalf("bits %d, %d bytes: back-reference %d bytes back", bits, n, dist)
					}
					plain += n
					packed += len(out)
				}
				ratio := float64(packed) / float64(plain)
				if n >= 1<<10 && ratio > 0.6 {
					t.Errorf("bits %d, takeover %v, %d bytes: ratio %.3f", bits, tk, n, ratio)
				}
				row += fmt.Sprintf(" %.3f", ratio)
			}
			t.Log(row)
		}
	}
	// The check above can fail: at 15 bits a 64 KiB message refers back
	// further than 16 KiB.
	var farthest int
	for i := range perSize {
		_, d, err := (&windowcheck.Inflater{}).Inflate(deflateBytes(deflaterKind(defaultCompressionLevel, 15), costJSON(64<<10, uint64(i))))
		if err != nil {
			t.Fatal(err)
		}
		farthest = max(farthest, d)
	}
	if farthest <= 1<<14 {
		t.Errorf("full window: farthest back-reference %d, want over 16 KiB (else the window checks prove nothing)", farthest)
	}
}

// BenchmarkDeflateWindowBits is the CPU side of TestWindowBitsCost: one
// message compressed without context takeover by each encoder.
//
//	go test -run '^$' -bench DeflateWindowBits -benchtime 2000x ./websocket
func BenchmarkDeflateWindowBits(b *testing.B) {
	for _, n := range []int{1 << 10, 16 << 10} {
		msg := costJSON(n, 1)
		for _, enc := range []struct {
			name        string
			level, bits int
		}{{"15bits-L1", 1, 15}, {"15bits-L5", 5, 15}, {"14bits", 1, 14}, {"12bits", 1, 12}, {"9bits", 1, 9}} {
			b.Run(fmt.Sprintf("%dB/%s", n, enc.name), func(b *testing.B) {
				kind := deflaterKind(enc.level, enc.bits)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				var out int
				for b.Loop() {
					out = len(deflateBytes(kind, msg))
				}
				b.ReportMetric(float64(out)/float64(n), "ratio")
			})
		}
	}
}

// TestPooledDeflaterReturnsToItsOwnPool: a level change while a message is
// being compressed must not put a windowed writer into the pool of
// NoCompression writers, from which a connection with a smaller window
// (8 bits) would take it.
func TestPooledDeflaterReturnsToItsOwnPool(t *testing.T) {
	c := newConn(&replayConn{frame: []byte{0x82, 0}}, connConfig{isServer: true, compression: &compressionConfig{
		params: deflate.Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 9, ClientMaxWindowBits: 15}}})
	const noCompression = 0
	wrong := &deflaters[deflaterKind(noCompression, 8)]
	for range 20 { // sync.Pool may drop a Put; twenty all dropped will not happen
		c.SetCompressionLevel(1)
		fw := c.getDeflater(io.Discard)
		c.SetCompressionLevel(noCompression)
		c.putDeflater(fw)
		for g := wrong.Get(); g != nil; g = wrong.Get() {
			if g == fw {
				t.Fatal("the 9-bit writer went into the NoCompression pool")
			}
		}
	}
}
