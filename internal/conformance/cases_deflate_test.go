package conformance

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCompression runs the permessage-deflate cases (RFC 7692): sections
// 12 (compressed echo), 13 (negotiation) and D (protocol errors with
// compression), against the same targets as TestConformance.
func TestCompression(t *testing.T) {
	runTable(t, slices.Concat(deflateEchoCases(), negotiationCases(), windowCases(), deflateErrorCases()))
}

// zWords mixes ASCII with 2-, 3- and 4-byte UTF-8 so that compressed text
// crosses code points at block and fragment boundaries.
var zWords = strings.Fields("the quick brown fox jumps over lazy dog WebSocket permessage-deflate frame message " +
	"κόσμε Grüße 日本語 😀 ünïcödé latch echo 0123456789 ping pong close RFC 6455 7692 window context")

// zText is n bytes of valid UTF-8 made of words in a pseudo-random order:
// compressible, but not trivially.
func zText(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, 0, n)
	for {
		w := zWords[r.IntN(len(zWords))]
		if len(b)+len(w)+1 > n {
			break
		}
		b = append(append(b, w...), ' ')
	}
	for len(b) < n {
		b = append(b, '.')
	}
	return b
}

// zBinary is n bytes: runs of text interleaved with random bytes.
func zBinary(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)^0xb1))
	t := zText(n, seed)
	for i := 0; i < n; i += 16 {
		if r.IntN(3) == 0 {
			for j := i; j < min(i+16, n); j++ {
				t[j] = byte(r.Uint32())
			}
		}
	}
	return t
}

// zVariant is one handshake under which section 12 runs: the server
// targets get offer, the client target gets clientResp from the raw server.
type zVariant struct {
	name       string
	takeover   bool
	offer      string
	wantResp   string
	clientResp string
}

const (
	pmdNoTakeover = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
)

var zVariants = []zVariant{
	// Latch's default: no context takeover either way (RFC 7692 §7.1.1).
	{"default", false, "permessage-deflate", pmdNoTakeover, pmdNoTakeover},
	{"client_max_window_bits offered", false, "permessage-deflate; client_max_window_bits", pmdNoTakeover,
		"permessage-deflate; server_no_context_takeover"},
	{"server_no_context_takeover offered", false, "permessage-deflate; server_no_context_takeover", pmdNoTakeover,
		"permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
	{"client_no_context_takeover offered", false, "permessage-deflate; client_no_context_takeover", pmdNoTakeover,
		"permessage-deflate; server_no_context_takeover; server_max_window_bits=15"},
	// The client variant also covers server_max_window_bits=10 in a
	// response: the client must accept it (RFC 7692 §7.1.2.1).
	{"both no_context_takeover offered", false, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", pmdNoTakeover,
		"permessage-deflate; server_no_context_takeover; server_max_window_bits=10"},
	// Latch with CompressionContextTakeover.
	{"takeover", true, "permessage-deflate", "permessage-deflate", "permessage-deflate"},
	{"takeover, client_max_window_bits offered", true, "permessage-deflate; client_max_window_bits", "permessage-deflate",
		"permessage-deflate; server_max_window_bits=12"},
	{"takeover, server_no_context_takeover offered", true, "permessage-deflate; server_no_context_takeover",
		"permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"},
	{"takeover, client_no_context_takeover offered", true, "permessage-deflate; client_no_context_takeover",
		"permessage-deflate; client_no_context_takeover", "permessage-deflate; client_no_context_takeover"},
	{"takeover, both no_context_takeover offered", true, "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		pmdNoTakeover, "permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
}

func (v zVariant) conf() *zconf {
	return &zconf{takeover: v.takeover, offers: []string{v.offer}, wantResp: v.wantResp, resp: v.clientResp}
}

// zSizes are the section 12 message sizes; the 256 KiB message goes only
// with the default and the takeover variant, to keep the section short
// under -race on two cores.
var zSizes = []int{16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10}

// Section 12: compressed echo, RFC 7692 §6-7. Each case sends one message
// of every size in zSizes (so later messages exercise context takeover),
// in one frame or in four fragments.
func deflateEchoCases() []tcase {
	var cs []tcase
	for vi, v := range zVariants {
		for ti, op := range []byte{opText, opBinary} {
			for fi, frags := range []int{1, 4} {
				var frames []frame
				var want []event
				sizes := zSizes
				if vi != 0 && vi != 5 {
					sizes = zSizes[:len(zSizes)-1]
				}
				for _, n := range sizes {
					p := zText(n, uint64(vi))
					if op == opBinary {
						p = zBinary(n, uint64(vi))
					}
					frames = append(frames, frame{fin: true, opcode: op, payload: p, deflate: true, zfrags: frags})
					want = append(want, event{kind: "msg", op: op, data: p, z: zAuto})
				}
				kind := map[byte]string{opText: "text", opBinary: "binary"}[op]
				how := map[int]string{1: "in one frame", 4: "in 4 fragments"}[frags]
				cs = append(cs, tcase{
					name:   fmt.Sprintf("12.%d.%d %s: %s 16 B-%d KiB %s", vi+1, ti*2+fi+1, v.name, kind, sizes[len(sizes)-1]>>10, how),
					frames: frames, want: want, comp: v.conf(),
					timeout: 5 * time.Second, // 256 KiB deflated both ways under -race
				})
			}
		}
		// The same 4 KiB message twice: with context takeover the second
		// copy is mostly one back-reference (RFC 7692 §7.2.3.2).
		msg := zText(4<<10, 99)
		cs = append(cs, tcase{
			name:   fmt.Sprintf("12.%d.5 %s: repeated 4 KiB message", vi+1, v.name),
			frames: []frame{{fin: true, opcode: opText, payload: msg, deflate: true}, {fin: true, opcode: opText, payload: msg, deflate: true}},
			want:   []event{{kind: "msg", op: opText, data: msg, z: zComp}, {kind: "msg", op: opText, data: msg, z: zComp}},
			comp:   v.conf(),
			check: func(t *testing.T, p *peer) {
				// readTakeover: the agreed parameters let the
				// implementation keep its context (RFC 7692 §7.1.1).
				a, b, tk := p.got[0].wire, p.got[1].wire, p.z.readTakeover
				switch {
				case tk && b*4 > a:
					t.Errorf("with context takeover the repeated message took %d bytes, the first %d: want under a quarter", b, a)
				case !tk && b*2 < a:
					t.Errorf("without context takeover the repeated message took %d bytes, the first %d", b, a)
				}
			},
		})
	}
	// Mixed: uncompressed messages between compressed ones do not enter
	// the LZ77 window (RFC 7692 §7.2.3.2 speaks of compressed messages).
	m1, m2, m3 := zText(2000, 1), zText(3000, 2), zText(2500, 3)
	mixed := []frame{{fin: true, opcode: opText, payload: m1, deflate: true}, textF(string(m2)),
		{fin: true, opcode: opText, payload: m3, deflate: true}, {fin: true, opcode: opText, payload: m1, deflate: true}}
	mixedWant := []event{{kind: "msg", op: opText, data: m1, z: zAuto}, {kind: "msg", op: opText, data: m2, z: zAuto},
		{kind: "msg", op: opText, data: m3, z: zAuto}, {kind: "msg", op: opText, data: m1, z: zAuto}}
	cs = append(cs,
		tcase{name: "12.11.1 takeover: compressed and uncompressed messages mixed", frames: mixed, want: mixedWant, comp: zVariants[5].conf()},
		tcase{name: "12.11.2 default: compressed and uncompressed messages mixed", frames: mixed, want: mixedWant, comp: zVariants[0].conf()},
		// RFC 7692 §7.2.3.6: an empty message may be sent as a single 0x00.
		tcase{name: "12.11.3 empty compressed message as 0x00", frames: []frame{{fin: true, rsv: 4, opcode: opText, payload: []byte{0}}},
			want: []event{textEv("")}, comp: zVariants[0].conf()},
		tcase{name: "12.11.4 empty compressed message from a flushed writer", frames: []frame{{fin: true, opcode: opBinary, payload: nil, deflate: true}},
			want: []event{binEv([]byte{})}, comp: zVariants[5].conf()},
		tcase{name: "12.11.5 text in 1-byte compressed fragments", frames: []frame{{fin: true, opcode: opText, payload: zText(300, 5), deflate: true, zfrags: 1000}},
			want: []event{{kind: "msg", op: opText, data: zText(300, 5), z: zAuto}}, comp: zVariants[5].conf()},
	)
	// CompressionThreshold < 0 compresses every message, even 1 byte.
	thr := zVariants[0].conf()
	thr.threshold = -1
	cs = append(cs, tcase{name: "12.11.6 threshold < 0 compresses small messages",
		frames: []frame{textF("a"), binF(binPayload(16))},
		want:   []event{{kind: "msg", op: opText, data: []byte("a"), z: zComp}, {kind: "msg", op: opBinary, data: binPayload(16), z: zComp}},
		comp:   thr})
	return cs
}

// Section 13: negotiation (RFC 7692 §5, §7). Offers the server must decline
// leave the connection uncompressed: a large message echoes with RSV1
// clear (the raw peer rejects RSV1 then), and RSV1 from the client is a
// protocol error (RFC 6455 §5.2).
func negotiationCases() []tcase {
	big := zText(2000, 13)
	declined := func(i int, offer string, takeover bool) tcase {
		return tcase{
			name: fmt.Sprintf("13.1.%d declined: %s", i, offer), only: "server",
			frames: []frame{textF(string(big)), {fin: true, rsv: 4, opcode: opText, payload: deflateFresh(big)}},
			want:   []event{{kind: "msg", op: opText, data: big, z: zPlain}, closeEv(cProtocol)},
			comp:   &zconf{takeover: takeover, offers: []string{offer}},
		}
	}
	var cs []tcase
	for i, o := range []string{
		"permessage-deflate; server_max_window_bits=16", // RFC 7692 §7.1.2.1: 8..15 only
		"permessage-deflate; server_max_window_bits=7",
		"permessage-deflate; x-unknown-param",
		"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
		"permessage-deflate; client_max_window_bits=16",
		"permessage-deflate; server_max_window_bits=08",
		"permessage-deflate; client_max_window_bits=7",
		"permessage-deflate; server_max_window_bits",
		"permessage-deflate; client_no_context_takeover=1",
		"x-webkit-deflate-frame",
	} {
		cs = append(cs, declined(i+1, o, false), declined(i+11, o, true))
	}
	accepted := func(name string, offers []string, takeover bool, resp string) tcase {
		return tcase{
			name: "13.2." + name, only: "server",
			frames: []frame{{fin: true, opcode: opText, payload: big, deflate: true}},
			want:   []event{{kind: "msg", op: opText, data: big, z: zComp}},
			comp:   &zconf{takeover: takeover, offers: offers, wantResp: resp},
		}
	}
	cs = append(cs,
		accepted("1 first offer declined, second accepted", []string{"permessage-deflate; server_max_window_bits=16, permessage-deflate"}, false, pmdNoTakeover),
		accepted("2 first offer declined, second accepted (takeover)", []string{"permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits"}, true, "permessage-deflate"),
		accepted("3 unknown param declined, second accepted (takeover)", []string{"permessage-deflate; x-unknown, permessage-deflate; server_no_context_takeover"}, true, "permessage-deflate; server_no_context_takeover"),
		accepted("4 offers on two header lines", []string{"permessage-deflate; client_max_window_bits=16", "permessage-deflate; client_no_context_takeover"}, true, "permessage-deflate; client_no_context_takeover"),
		accepted("5 unknown extension before permessage-deflate", []string{"x-webkit-deflate-frame, permessage-deflate"}, true, "permessage-deflate"),
		accepted("6 server_max_window_bits=15 echoed", []string{"permessage-deflate; server_max_window_bits=15"}, true, "permessage-deflate; server_max_window_bits=15"),
		accepted("7 client_max_window_bits=9 answered without it", []string{"permessage-deflate; client_max_window_bits=9"}, true, "permessage-deflate"),
		// The client side: no extension in the response is no compression.
		tcase{name: "13.3.1 client: server declines, connection uncompressed", only: "client",
			frames: []frame{textF(string(big))}, want: []event{{kind: "msg", op: opText, data: big, z: zPlain}},
			comp: &zconf{}},
		tcase{name: "13.3.2 client: server declines, RSV1 fails 1002", only: "client",
			frames: []frame{{fin: true, rsv: 4, opcode: opText, payload: deflateFresh(big)}}, want: fail(cProtocol),
			comp: &zconf{takeover: true}},
	)
	return cs
}

// Autobahn's section 13 (case13_x_x.py): compressed echo under seven
// client offers, each "permessage-deflate; client_no_context_takeover;
// client_max_window_bits" plus (server_no_context_takeover,
// server_max_window_bits): (no, -), (yes, -), (no, 8), (no, 15), (yes, 8),
// (yes, 15), and the three offers (yes, 8), (yes, -), (no, -) in one header.
// Autobahn sends its JSON file in messages of 16 B to 128 KiB, whole and
// auto-fragmented; here each size goes once, whole or in 256-byte frames.
const ab13Base = "permessage-deflate; client_no_context_takeover; client_max_window_bits"

var ab13Offers = []struct {
	offer      string
	serverNCT  bool // the accepted offer asks for server_no_context_takeover
	serverBits int  // its server_max_window_bits, 0: none
}{
	{ab13Base, false, 0},
	{ab13Base + "; server_no_context_takeover", true, 0},
	{ab13Base + "; server_max_window_bits=8", false, 8},
	{ab13Base + "; server_max_window_bits=15", false, 15},
	{ab13Base + "; server_no_context_takeover; server_max_window_bits=8", true, 8},
	{ab13Base + "; server_no_context_takeover; server_max_window_bits=15", true, 15},
	{ab13Base + "; server_no_context_takeover; server_max_window_bits=8, " + ab13Base + "; server_no_context_takeover, " + ab13Base, true, 8},
}

// ab13Sizes are Autobahn's 13.x payload sizes up to 64 KiB.
var ab13Sizes = []int{16, 64, 256, 1 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10, 64 << 10}

// windowResponse is Latch's exact answer to an accepted offer: with
// CompressionContextTakeover off it asks for no context takeover both
// ways; it echoes what the offer asked for; it answers
// server_max_window_bits with the offered value (RFC 7692 §7.1.1, §7.1.2.1).
func windowResponse(takeover, serverNCT, clientNCT bool, serverBits int) string {
	r := "permessage-deflate"
	if serverNCT || !takeover {
		r += "; server_no_context_takeover"
	}
	if clientNCT || !takeover {
		r += "; client_no_context_takeover"
	}
	if serverBits != 0 {
		r += fmt.Sprintf("; server_max_window_bits=%d", serverBits)
	}
	return r
}

// windowEcho is the compressed echo of windowCases: every size of
// ab13Sizes, whole or in frags-byte frames. With a window under 2^15 the
// raw peer checks every echoed message against it (deflate_test.go), and
// check asserts that Latch really used most of the window.
func windowEcho(name string, z *zconf, frag int, bits int) tcase {
	var frames []frame
	var want []event
	for i, n := range ab13Sizes {
		p := zText(n, uint64(100+i))
		frames = append(frames, frame{fin: true, opcode: opText, payload: p, deflate: true, zfrags: max(1, n/max(frag, 1))})
		want = append(want, event{kind: "msg", op: opText, data: p, z: zAuto})
	}
	if frag == 0 {
		for i := range frames {
			frames[i].zfrags = 1
		}
	}
	tc := tcase{name: name, frames: frames, want: want, comp: z, timeout: 5 * time.Second}
	if bits > 0 && bits < 15 {
		tc.check = func(t *testing.T, p *peer) {
			if p.z.maxDist < 1<<bits/2 {
				t.Errorf("%s: farthest back-reference %d bytes with a window of %d: the window is not used", implName, p.z.maxDist, 1<<bits)
			}
		}
	}
	return tc
}

// Window bits (RFC 7692 §7.1.2): Autobahn's 13.x offers against the
// server, every other server_max_window_bits, and Autobahn's 13.x server
// answers against the client.
func windowCases() []tcase {
	var cs []tcase
	for i, o := range ab13Offers {
		for _, tk := range []bool{false, true} {
			cfg := "default"
			if tk {
				cfg = "takeover"
			}
			resp := windowResponse(tk, o.serverNCT, true, o.serverBits)
			for _, frag := range []int{0, 256} {
				how := "whole"
				if frag > 0 {
					how = "in 256-byte frames"
				}
				z := &zconf{takeover: tk, offers: []string{o.offer}, wantResp: resp}
				tc := windowEcho(fmt.Sprintf("13.A%d %s, %s: %s", i+1, cfg, how, o.offer), z, frag, o.serverBits)
				tc.only = "server"
				cs = append(cs, tc)
			}
		}
	}
	// Every other window, offered alone.
	for bits := 9; bits <= 14; bits++ {
		for _, tk := range []bool{false, true} {
			offer := fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", bits)
			z := &zconf{takeover: tk, offers: []string{offer}, wantResp: windowResponse(tk, false, false, bits)}
			tc := windowEcho(fmt.Sprintf("13.B%d takeover=%v: %s", bits, tk, offer), z, 0, bits)
			tc.only = "server"
			cs = append(cs, tc)
		}
	}
	// The client: Autobahn's 13.x answers (PerMessageDeflateOfferAccept)
	// to Latch's offer with CompressionMaxWindowBits 15, which adds
	// client_max_window_bits. Without takeover Latch offers both
	// no-context-takeover flags, and every answer applies; with takeover
	// it offers neither, and Autobahn's accept2, 5 and 6, which need
	// client_no_context_takeover in the offer, decline: no compression.
	type answer struct {
		resp string
		bits int // client_max_window_bits in resp
	}
	noCtx := map[int]answer{
		1: {"permessage-deflate; server_no_context_takeover", 0},
		2: {"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 0},
		3: {"permessage-deflate; server_no_context_takeover; client_max_window_bits=8", 8},
		4: {"permessage-deflate; server_no_context_takeover; client_max_window_bits=15", 15},
		5: {"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=8", 8},
		6: {"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15", 15},
		7: {"permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=8", 8},
	}
	withCtx := map[int]answer{
		1: {"permessage-deflate", 0}, 2: {"", 0},
		3: {"permessage-deflate; client_max_window_bits=8", 8}, 4: {"permessage-deflate; client_max_window_bits=15", 15},
		5: {"", 0}, 6: {"", 0}, 7: {"permessage-deflate", 0},
	}
	for i := 1; i <= 7; i++ {
		for _, tk := range []bool{false, true} {
			a, cfg := noCtx[i], "default"
			if tk {
				a, cfg = withCtx[i], "takeover"
			}
			z := &zconf{takeover: tk, maxWindowBits: 15, resp: a.resp}
			if a.resp == "" {
				big := zText(2000, 13)
				cs = append(cs, tcase{name: fmt.Sprintf("13.C%d client %s: Autobahn accept%d declines", i, cfg, i), only: "client",
					frames: []frame{textF(string(big))}, want: []event{{kind: "msg", op: opText, data: big, z: zPlain}}, comp: z})
				continue
			}
			tc := windowEcho(fmt.Sprintf("13.C%d client %s: answer %q", i, cfg, a.resp), z, 256, a.bits)
			tc.only = "client"
			cs = append(cs, tc)
		}
	}
	// The client asking for 9 bits both ways; the server answers 9 or less.
	for _, a := range []answer{
		{"permessage-deflate; server_no_context_takeover; server_max_window_bits=9", 9},
		{"permessage-deflate; server_no_context_takeover; server_max_window_bits=8; client_max_window_bits=8", 8},
		{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9", 9},
	} {
		z := &zconf{maxWindowBits: 9, resp: a.resp}
		tc := windowEcho(fmt.Sprintf("13.D client asks 9 bits: answer %q", a.resp), z, 0, a.bits)
		tc.only = "client"
		cs = append(cs, tc)
	}
	for _, a := range []string{
		"permessage-deflate; server_max_window_bits=9",
		"permessage-deflate; server_max_window_bits=8; client_max_window_bits=9",
	} {
		z := &zconf{takeover: true, maxWindowBits: 9, resp: a}
		tc := windowEcho(fmt.Sprintf("13.D client takeover asks 9 bits: answer %q", a), z, 256, 9)
		tc.only = "client"
		cs = append(cs, tc)
	}
	return cs
}

// Protocol errors with compression (ours, "D"): RFC 7692 §6.1 and §6.2,
// RFC 6455 §8.1, and the read limit applied to inflated bytes.
func deflateErrorCases() []tcase {
	const kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	def, tk := zVariants[0].conf(), zVariants[5].conf()
	first := deflateFresh([]byte("Hello, compressed world"))
	invalid := deflateFresh([]byte(kosme + "\xed\xa0\x80edited"))
	// One flushed stream cut in two: the invalid sequence F4 90 80 80
	// straddles the fragments once inflated.
	split := deflateFresh([]byte(kosme + "\xf4\x90\x80\x80 more text after it"))
	z := pmd{writeTakeover: true}
	part1 := z.compress([]byte(kosme + "\xf4"))
	part1 = append(part1, 0, 0, 0xff, 0xff) // keep the sync flush inside the message
	part2 := z.compress([]byte("\x90\x80\x80"))
	bomb := deflateBomb(64)
	bombFrags := fragments(opBinary, bomb, len(bomb)/16+1)
	bombFrags[0].rsv = 4
	hello := []event{textEv("Hello, compressed world")}
	cs := []tcase{
		{name: "D.1.1 RSV1 on a continuation frame fails 1002", comp: def,
			frames: []frame{{rsv: 4, opcode: opText, payload: first[:5]}, {fin: true, rsv: 4, opcode: opCont, payload: first[5:]}}, want: fail(cProtocol)},
		{name: "D.1.2 RSV1 on a continuation of an uncompressed message fails 1002", comp: def,
			frames: []frame{dataFrame(opText, false, []byte("Hel")), {fin: true, rsv: 4, opcode: opCont, payload: []byte("lo")}}, want: fail(cProtocol)},
		{name: "D.1.3 RSV1 on a ping fails 1002", comp: def, frames: []frame{{fin: true, rsv: 4, opcode: opPing, payload: []byte("Hello")}}, want: fail(cProtocol)},
		{name: "D.1.4 RSV1 on a pong fails 1002", comp: tk, frames: []frame{{fin: true, rsv: 4, opcode: opPong, payload: []byte("Hello")}}, want: fail(cProtocol)},
		{name: "D.1.5 RSV1 on a close fails 1002", comp: def, frames: []frame{{fin: true, rsv: 4, opcode: opClose, payload: closePayload(cNormal, "")}}, want: fail(cProtocol)},
		{name: "D.1.6 RSV1 on a ping between compressed fragments fails 1002", comp: tk,
			frames: []frame{{rsv: 4, opcode: opText, payload: first[:5]}, {fin: true, rsv: 4, opcode: opPing}, dataFrame(opCont, true, first[5:])}, want: fail(cProtocol)},
		{name: "D.1.7 RSV2 on a compressed text fails 1002", comp: def, frames: []frame{{fin: true, rsv: 6, opcode: opText, payload: first}}, want: fail(cProtocol)},
		{name: "D.1.8 compressed fragments then a valid message", comp: def,
			frames: []frame{{rsv: 4, opcode: opText, payload: first[:5]}, dataFrame(opCont, true, first[5:]), textF("plain")},
			want:   []event{textEv("Hello, compressed world"), textEv("plain")}},
		// RFC 7692 §6.2 / RFC 6455 §7.4.1: data that does not inflate is
		// invalid payload data.
		{name: "D.2.1 corrupt deflate data (reserved block type) fails 1007", comp: def, frames: []frame{{fin: true, rsv: 4, opcode: opText, payload: []byte{0xff, 0xff, 0xff, 0xff}}}, want: fail(cInvalid)},
		{name: "D.2.2 stored block with LEN != ^NLEN fails 1007", comp: def, frames: []frame{{fin: true, rsv: 4, opcode: opBinary, payload: []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'}}}, want: fail(cInvalid)},
		{name: "D.2.3 corrupt deflate data after a valid message fails 1007", comp: tk,
			frames: []frame{{fin: true, rsv: 4, opcode: opText, payload: first}, {fin: true, rsv: 4, opcode: opBinary, payload: []byte{0xff, 0xfe, 0xfd}}},
			want:   append(hello, closeEv(cInvalid))},
		{name: "D.2.4 back-reference beyond the start without takeover fails 1007", comp: def,
			// Fixed-Huffman block: a length-3 match at distance 1 with no
			// output before it (RFC 1951 §3.2.6).
			frames: []frame{{fin: true, rsv: 4, opcode: opBinary, payload: []byte{0x02, 0x02, 0x00}}}, want: fail(cInvalid)},
		{name: "D.2.5 truncated compressed message fails 1007", comp: def,
			frames: []frame{{fin: true, rsv: 4, opcode: opText, payload: deflateFresh(zText(3000, 7))[:40]}}, want: fail(cInvalid)},
		// RFC 6455 §8.1: the inflated text must be UTF-8.
		{name: "D.3.1 invalid UTF-8 in compressed text fails 1007", comp: def, frames: []frame{{fin: true, rsv: 4, opcode: opText, payload: invalid}}, want: fail(cInvalid)},
		{name: "D.3.2 invalid UTF-8 in compressed text after a valid one fails 1007", comp: tk,
			frames: []frame{{fin: true, rsv: 4, opcode: opText, payload: first}, {fin: true, rsv: 4, opcode: opText, payload: invalid}}, want: append(hello, closeEv(cInvalid))},
		{name: "D.3.3 invalid UTF-8 in compressed fragments fails 1007", comp: def,
			frames: []frame{{rsv: 4, opcode: opText, payload: split[:len(split)/2]}, dataFrame(opCont, true, split[len(split)/2:])}, want: fail(cInvalid)},
		{name: "D.3.4 fail-fast: compressed invalid first fragment, never completed", comp: def,
			frames: []frame{{rsv: 4, opcode: opText, payload: append(bytes.Clone(invalid), 0, 0, 0xff, 0xff)}}, want: fail(cInvalid), timeout: 2 * time.Second},
		{name: "D.3.5 fail-fast: invalid sequence split across compressed fragments", comp: def,
			frames: []frame{{rsv: 4, opcode: opText, payload: part1}, dataFrame(opCont, false, append(bytes.Clone(part2), 0, 0, 0xff, 0xff))}, want: fail(cInvalid), timeout: 2 * time.Second},
		{name: "D.3.6 fail-fast: compressed invalid fragment byte by byte", comp: tk, chop: 1,
			frames: []frame{{rsv: 4, opcode: opText, payload: append(bytes.Clone(invalid), 0, 0, 0xff, 0xff)}}, want: fail(cInvalid), timeout: 2 * time.Second},
		// The read limit applies to inflated bytes, checked as they come
		// out: a bomb ends promptly, without inflating it all.
		{name: "D.4.1 SetReadLimit 1000, 1000 bytes inflated echo", comp: def, readLimit: 1000,
			frames: []frame{{fin: true, opcode: opText, payload: zText(1000, 4), deflate: true}}, want: []event{{kind: "msg", op: opText, data: zText(1000, 4), z: zAuto}}},
		{name: "D.4.2 SetReadLimit 1000, 1001 bytes inflated fail 1009", comp: def, readLimit: 1000,
			frames: []frame{{fin: true, opcode: opText, payload: zText(1001, 4), deflate: true}}, want: fail(cTooBig), wantLimitErr: true},
		{name: "D.4.3 SetReadLimit 1 MiB, 64 MiB bomb fails 1009", comp: def, readLimit: 1 << 20,
			frames: []frame{{fin: true, rsv: 4, opcode: opBinary, payload: bomb}}, want: fail(cTooBig), wantLimitErr: true, timeout: 2 * time.Second},
		{name: "D.4.4 SetReadLimit 1 MiB, 64 MiB bomb in fragments fails 1009", comp: tk, readLimit: 1 << 20,
			frames: bombFrags, want: fail(cTooBig), wantLimitErr: true, timeout: 2 * time.Second},
		{name: "D.4.5 DefaultReadLimit, 1 GiB bomb fails 1009 promptly", comp: def,
			frames: []frame{{fin: true, rsv: 4, opcode: opText, payload: deflateBomb(1 << 10)}}, want: fail(cTooBig), wantLimitErr: true, timeout: 2 * time.Second},
	}
	return cs
}

// TestCompressionClientRejects: responses the Dialer must refuse (RFC 7692
// §5, §7.1): Dial fails and the client closes TCP itself.
func TestCompressionClientRejects(t *testing.T) {
	for _, c := range []struct {
		takeover bool
		resp     string
		bits     int // CompressionMaxWindowBits
	}{
		{false, "permessage-deflate; server_no_context_takeover; client_max_window_bits=10", 0}, // §7.1.2.2: not offered
		{true, "permessage-deflate; client_max_window_bits", 0},
		{false, "permessage-deflate; server_no_context_takeover; x-unknown", 0},
		{false, "permessage-deflate; server_no_context_takeover, permessage-deflate; server_no_context_takeover", 0},
		{true, "permessage-deflate, permessage-deflate", 0},
		{true, "x-webkit-deflate-frame", 0},
		{true, "permessage-deflate, x-webkit-deflate-frame", 0},
		{false, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0},
		{true, "permessage-deflate; server_max_window_bits=7", 0},
		{true, "permessage-deflate; server_max_window_bits=16", 0},
		{true, "permessage-deflate; server_max_window_bits", 0},
		{true, "permessage-deflate; server_no_context_takeover=yes", 0},
		// §7.1.1.1: Latch offered server_no_context_takeover; a response
		// without it does not answer that offer.
		{false, "permessage-deflate", 0},
		// §7.1.2: window parameters against what Latch offered.
		{true, "permessage-deflate; client_max_window_bits", 15},                             // a response needs a value
		{true, "permessage-deflate; client_max_window_bits=8; client_max_window_bits=8", 15}, // duplicate
		{true, "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10", 9}, // more than offered
		{true, "permessage-deflate; server_max_window_bits=10", 9},                           // more than offered
		{true, "permessage-deflate; client_max_window_bits=9", 9},                            // server_max_window_bits missing
		{true, "permessage-deflate; server_max_window_bits=9; client_max_window_bits=16", 9}, // out of range
		{true, "permessage-deflate; server_max_window_bits=9; client_max_window_bits=08", 9},
		{false, "permessage-deflate; server_no_context_takeover; client_max_window_bits=7", 15},
	} {
		t.Run(fmt.Sprintf("takeover=%v bits=%d %s", c.takeover, c.bits, c.resp), func(t *testing.T) {
			t.Parallel()
			expectDialRejects(t, &zconf{takeover: c.takeover, maxWindowBits: c.bits}, c.resp)
		})
	}
}

func expectDialRejects(t *testing.T, z *zconf, resp string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialErr := make(chan error, 1)
	go func() {
		c, err := dial("ws://"+ln.Addr().String()+"/echo", z)
		if c != nil {
			c.Close()
		}
		dialErr <- err
	}()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(3 * time.Second))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatalf("%s client did not connect: %v", implName, err)
	}
	defer conn.Close()
	p, offer, err := rawServerHandshakeExt(conn, resp)
	if err != nil {
		t.Fatalf("opening handshake with %s client: %v", implName, err)
	}
	if offer != z.latchOffer() {
		t.Errorf("%s client offered %q, want %q", implName, offer, z.latchOffer())
	}
	select {
	case err := <-dialErr:
		if err == nil {
			t.Fatalf("%s client accepted the response %q", implName, resp)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("%s Dial still running 3s after the response %q", implName, resp)
	}
	if err := p.expectTCPClosed(time.Second); err != nil {
		t.Errorf("%s client after refusing %q: %v", implName, resp, err)
	}
}
