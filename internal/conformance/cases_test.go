package conformance

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// Close codes the cases expect (RFC 6455 §7.4.1).
const (
	cNormal   = 1000
	cProtocol = 1002
	cInvalid  = 1007 // invalid frame payload data (bad UTF-8)
	cTooBig   = 1009
)

func allCases() []tcase {
	var all []tcase
	for _, f := range []func() []tcase{
		framingCases, pingCases, rsvCases, opcodeCases, fragmentCases,
		utf8Cases, closeCases, sizeCases, autoFragCases, limitCases, maskCases,
	} {
		all = append(all, f()...)
	}
	return all
}

func fail(code int) []event { return []event{closeEv(code)} }

func cat(groups ...[]frame) []frame { return slices.Concat(groups...) }

func binPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 0xFE)
	}
	return b
}

// Section 1: framing of text and binary payloads at the length boundaries
// of RFC 6455 §5.2 (7-bit, 16-bit and 64-bit lengths).
func framingCases() []tcase {
	sizes := []int{0, 125, 126, 127, 128, 65535, 65536}
	var cs []tcase
	for i, n := range sizes {
		s := strings.Repeat("*", n)
		b := binPayload(n)
		cs = append(cs,
			tcase{name: fmt.Sprintf("1.1.%d text %d bytes", i+1, n), frames: []frame{textF(s)}, want: []event{textEv(s)}},
			tcase{name: fmt.Sprintf("1.2.%d binary %d bytes", i+1, n), frames: []frame{binF(b)}, want: []event{binEv(b)}},
		)
		chop := 1 // byte by byte
		if n > 1000 {
			chop = 997
		}
		cs = append(cs,
			tcase{name: fmt.Sprintf("1.3.%d text %d bytes chopped in %d-byte writes", i+1, n, chop), frames: []frame{textF(s)}, chop: chop, want: []event{textEv(s)}},
			tcase{name: fmt.Sprintf("1.4.%d binary %d bytes chopped in %d-byte writes", i+1, n, chop), frames: []frame{binF(b)}, chop: chop, want: []event{binEv(b)}},
		)
	}
	return cs
}

// Section 2: ping/pong, RFC 6455 §5.5.2-3.
func pingCases() []tcase {
	hello := []byte("Hello, world!")
	bin := []byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff}
	p125 := bytes.Repeat([]byte{0xfe}, 125)
	var tenPings []frame
	var tenPongs []event
	for i := range 10 {
		p := []byte(fmt.Sprintf("payload-%d", i))
		tenPings = append(tenPings, pingF(p))
		tenPongs = append(tenPongs, pongEv(p))
	}
	return []tcase{
		{name: "2.1 ping without payload", frames: []frame{pingF(nil)}, want: []event{pongEv(nil)}},
		{name: "2.2 ping with text payload echoed in pong", frames: []frame{pingF(hello)}, want: []event{pongEv(hello)}},
		{name: "2.3 ping with binary payload echoed in pong", frames: []frame{pingF(bin)}, want: []event{pongEv(bin)}},
		{name: "2.4 ping with 125-byte payload", frames: []frame{pingF(p125)}, want: []event{pongEv(p125)}},
		{name: "2.5 ping with 126-byte payload fails 1002", frames: []frame{pingF(bytes.Repeat([]byte{0xfe}, 126))}, want: fail(cProtocol)},
		{name: "2.6 ping with 125-byte payload byte by byte", frames: []frame{pingF(p125)}, chop: 1, want: []event{pongEv(p125)}},
		{name: "2.7 unsolicited pong without payload ignored", frames: []frame{pongF(nil), textF("after pong")}, want: []event{textEv("after pong")}},
		{name: "2.8 unsolicited pong with payload ignored", frames: []frame{pongF([]byte("unsolicited pong payload")), textF("after pong")}, want: []event{textEv("after pong")}},
		{name: "2.9 unsolicited pong then ping", frames: []frame{pongF([]byte("unsolicited")), pingF([]byte("ping payload"))}, want: []event{pongEv([]byte("ping payload"))}},
		{name: "2.10 ten pings in a row", frames: tenPings, want: tenPongs},
		{name: "2.11 ten pings in a row byte by byte", frames: tenPings, chop: 1, want: tenPongs},
	}
}

// Section 3: reserved bits without a negotiated extension, RFC 6455 §5.2.
func rsvCases() []tcase {
	with := func(f frame, rsv byte) frame { f.rsv = rsv; return f }
	echo := []event{textEv("Hello"), closeEv(cProtocol)}
	return []tcase{
		{name: "3.1 text with RSV=1", frames: []frame{with(textF("Hello"), 1)}, want: fail(cProtocol)},
		{name: "3.2 text with RSV=2 after a valid text", frames: []frame{textF("Hello"), with(textF("Hello"), 2), pingF(nil)}, want: echo},
		{name: "3.3 text with RSV=3 after a valid text byte by byte", frames: []frame{textF("Hello"), with(textF("Hello"), 3), pingF(nil)}, chop: 1, want: echo},
		{name: "3.4 text with RSV=4 (RSV1, no permessage-deflate)", frames: []frame{textF("Hello"), with(textF("Hello"), 4), pingF(nil)}, want: echo},
		{name: "3.5 binary with RSV=5", frames: []frame{with(binF(binPayload(8)), 5)}, want: fail(cProtocol)},
		{name: "3.6 ping with RSV=6", frames: []frame{with(pingF([]byte("Hello")), 6)}, want: fail(cProtocol)},
		{name: "3.7 close with RSV=7", frames: []frame{with(closeF(cNormal, ""), 7)}, want: fail(cProtocol)},
		{name: "3.8 continuation with RSV1 set", frames: []frame{dataFrame(opText, false, []byte("Hel")), with(dataFrame(opCont, true, []byte("lo")), 4)}, want: fail(cProtocol)},
	}
}

// Section 4: reserved opcodes, RFC 6455 §5.2.
func opcodeCases() []tcase {
	var cs []tcase
	for i, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		sub := 1
		if op > 7 {
			sub = 2
		}
		k := i%5*2 + 1
		f := frame{fin: true, opcode: op}
		fp := frame{fin: true, opcode: op, payload: []byte("reserved opcode payload")}
		cs = append(cs,
			tcase{name: fmt.Sprintf("4.%d.%d reserved opcode %#x", sub, k, op), frames: []frame{f}, want: fail(cProtocol)},
			tcase{name: fmt.Sprintf("4.%d.%d reserved opcode %#x with payload after a valid message", sub, k+1, op),
				frames: []frame{textF("Hello"), fp, pingF(nil)}, want: []event{textEv("Hello"), closeEv(cProtocol)}},
		)
	}
	return cs
}

// Section 5: fragmentation, RFC 6455 §5.4.
func fragmentCases() []tcase {
	frag := func(op byte, parts ...string) []frame {
		var fs []frame
		for i, p := range parts {
			o := opCont
			if i == 0 {
				o = op
			}
			fs = append(fs, dataFrame(o, i == len(parts)-1, []byte(p)))
		}
		return fs
	}
	oneByte := fragments(opText, []byte("fragmented"), 1)
	var withPings []frame
	var pongs []event
	for i, f := range oneByte {
		withPings = append(withPings, f)
		if i < len(oneByte)-1 {
			p := []byte(fmt.Sprintf("ping %d", i))
			withPings = append(withPings, pingF(p))
			pongs = append(pongs, pongEv(p))
		}
	}
	pingMid := cat([]frame{dataFrame(opText, false, []byte("fragment1"))}, []frame{pingF([]byte("pongme!"))}, []frame{dataFrame(opCont, true, []byte("fragment2"))})
	return []tcase{
		{name: "5.1 fragmented ping fails 1002", frames: []frame{{opcode: opPing, payload: []byte("frag1")}, dataFrame(opCont, true, []byte("frag2"))}, want: fail(cProtocol)},
		{name: "5.2 fragmented pong fails 1002", frames: []frame{{opcode: opPong, payload: []byte("frag1")}, dataFrame(opCont, true, []byte("frag2"))}, want: fail(cProtocol)},
		{name: "5.3 text in two fragments", frames: frag(opText, "fragment1", "fragment2"), want: []event{textEv("fragment1fragment2")}},
		{name: "5.4 text in two fragments byte by byte", frames: frag(opText, "fragment1", "fragment2"), chop: 1, want: []event{textEv("fragment1fragment2")}},
		{name: "5.5 text in 1-byte fragments", frames: oneByte, want: []event{textEv("fragmented")}},
		{name: "5.6 text in two fragments with a ping between", frames: pingMid, want: []event{pongEv([]byte("pongme!")), textEv("fragment1fragment2")}},
		{name: "5.7 text with a ping between fragments byte by byte", frames: pingMid, chop: 1, want: []event{pongEv([]byte("pongme!")), textEv("fragment1fragment2")}},
		{name: "5.8 binary in two fragments", frames: frag(opBinary, "\x00\x01\xff", "\xfe\x80"), want: []event{binEv([]byte("\x00\x01\xff\xfe\x80"))}},
		{name: "5.9 continuation with no message started fails 1002", frames: []frame{dataFrame(opCont, true, []byte("non-continuation payload")), textF("Hello")}, want: fail(cProtocol)},
		{name: "5.10 continuation with no message started byte by byte", frames: []frame{dataFrame(opCont, true, []byte("non-continuation payload")), textF("Hello")}, chop: 1, want: fail(cProtocol)},
		{name: "5.11 non-final continuation with no message started fails 1002", frames: frag(opCont, "fragment1", "fragment2"), want: fail(cProtocol)},
		{name: "5.12 new text frame in mid-message fails 1002", frames: []frame{dataFrame(opText, false, []byte("fragment1")), textF("fragment2")}, want: fail(cProtocol)},
		{name: "5.13 new binary frame in mid-text-message fails 1002", frames: []frame{dataFrame(opText, false, []byte("fragment1")), binF([]byte("fragment2"))}, want: fail(cProtocol)},
		{name: "5.14 fragmented close fails 1002", frames: []frame{{opcode: opClose, payload: closePayload(cNormal, "")}, dataFrame(opCont, true, nil)}, want: fail(cProtocol)},
		{name: "5.15 continuation after a complete message fails 1002", frames: cat(frag(opText, "fragment1", "fragment2"), []frame{dataFrame(opCont, false, []byte("fragment3")), dataFrame(opCont, true, []byte("fragment4"))}),
			want: []event{textEv("fragment1fragment2"), closeEv(cProtocol)}},
		{name: "5.16 1-byte fragments with a ping after each", frames: withPings, want: append(slices.Clone(pongs), textEv("fragmented"))},
		{name: "5.17 unsolicited pong between fragments ignored", frames: cat([]frame{dataFrame(opText, false, []byte("fragment1"))}, []frame{pongF([]byte("unsolicited"))}, []frame{dataFrame(opCont, true, []byte("fragment2"))}), want: []event{textEv("fragment1fragment2")}},
		{name: "5.18 text of empty fragments", frames: frag(opText, "", "", ""), want: []event{textEv("")}},
		{name: "5.19 binary in 1-byte fragments", frames: fragments(opBinary, binPayload(17), 1), want: []event{binEv(binPayload(17))}},
		{name: "5.20 data frame after a fragmented message completes", frames: cat(frag(opText, "frag", "ment"), []frame{binF([]byte{1, 2, 3})}), want: []event{textEv("fragment"), binEv([]byte{1, 2, 3})}},
	}
}

// validUTF8 are texts every endpoint must accept (RFC 3629 boundaries).
var validUTF8 = []struct{ name, s string }{
	{"Hello-µ@ßöäüàá-UTF-8!!", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"},
	{"kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"},
	{"U+0000", "\x00"},
	{"U+007F", "\x7f"},
	{"U+0080", "\xc2\x80"},
	{"U+07FF", "\xdf\xbf"},
	{"U+0800", "\xe0\xa0\x80"},
	{"U+D7FF", "\xed\x9f\xbf"},
	{"U+E000", "\xee\x80\x80"},
	{"U+FFFD", "\xef\xbf\xbd"},
	{"U+FFFE noncharacter", "\xef\xbf\xbe"},
	{"U+FFFF noncharacter", "\xef\xbf\xbf"},
	{"U+10000", "\xf0\x90\x80\x80"},
	{"U+1F600 emoji", "\xf0\x9f\x98\x80"},
	{"U+10FFFF", "\xf4\x8f\xbf\xbf"},
	{"mixed 1-4 byte", "a\xc2\xa2\xe2\x82\xac\xf0\x90\x8d\x88z"},
}

// invalidUTF8 are byte sequences that are never UTF-8 (RFC 3629 §3-4).
var invalidUTF8 = []struct{ name, s string }{
	{"lone continuation 0x80", "\x80"},
	{"lone continuation 0xbf", "\xbf"},
	{"continuation run", "\x80\xbf\x80\xbf"},
	{"all 64 continuation bytes", func() string {
		var b []byte
		for c := 0x80; c <= 0xbf; c++ {
			b = append(b, byte(c))
		}
		return string(b)
	}()},
	{"2-byte lead then space", "\xc2 "},
	{"3-byte lead then space", "\xe1 "},
	{"4-byte lead then space", "\xf1 "},
	{"truncated 2-byte at end", "\xc2"},
	{"truncated 3-byte at end", "\xe1\x80"},
	{"truncated 4-byte at end", "\xf1\x80\x80"},
	{"kosme then truncated 3-byte", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xe1\x80"},
	{"impossible byte 0xfe", "\xfe"},
	{"impossible byte 0xff", "\xff"},
	{"impossible bytes fe fe ff ff", "\xfe\xfe\xff\xff"},
	{"overlong slash 2-byte", "\xc0\xaf"},
	{"overlong slash 3-byte", "\xe0\x80\xaf"},
	{"overlong slash 4-byte", "\xf0\x80\x80\xaf"},
	{"overlong slash 5-byte", "\xf8\x80\x80\x80\xaf"},
	{"overlong slash 6-byte", "\xfc\x80\x80\x80\x80\xaf"},
	{"max overlong 2-byte U+007F", "\xc1\xbf"},
	{"max overlong 3-byte U+07FF", "\xe0\x9f\xbf"},
	{"max overlong 4-byte U+FFFF", "\xf0\x8f\xbf\xbf"},
	{"overlong NUL 2-byte", "\xc0\x80"},
	{"overlong NUL 3-byte", "\xe0\x80\x80"},
	{"surrogate U+D800", "\xed\xa0\x80"},
	{"surrogate U+DB7F", "\xed\xad\xbf"},
	{"surrogate U+DB80", "\xed\xae\x80"},
	{"surrogate U+DBFF", "\xed\xaf\xbf"},
	{"surrogate U+DC00", "\xed\xb0\x80"},
	{"surrogate U+DF80", "\xed\xbe\x80"},
	{"surrogate U+DFFF", "\xed\xbf\xbf"},
	{"surrogate pair D800 DC00", "\xed\xa0\x80\xed\xb0\x80"},
	{"surrogate pair DBFF DFFF", "\xed\xaf\xbf\xed\xbf\xbf"},
	{"above U+10FFFF U+110000", "\xf4\x90\x80\x80"},
	{"lead 0xf5", "\xf5\x80\x80\x80"},
	{"lead 0xf7 U+1FFFFF", "\xf7\xbf\xbf\xbf"},
	{"5-byte sequence", "\xf8\x88\x80\x80\x80"},
	{"6-byte sequence", "\xfc\x84\x80\x80\x80\x80"},
	{"kosme surrogate edited", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"},
}

// Section 6: UTF-8 in text messages, RFC 6455 §8.1 and §5.6. Invalid text
// fails the connection with 1007; Latch checks fail-fast, so a message is
// rejected as soon as a fragment can no longer be valid.
func utf8Cases() []tcase {
	const kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	long := validUTF8[0].s + "\xf0\x9d\x90\x80\xf0\x9f\x98\x80"
	cs := []tcase{
		{name: "6.1.1 empty text", frames: []frame{textF("")}, want: []event{textEv("")}},
		{name: "6.1.2 empty text in three empty fragments", frames: []frame{dataFrame(opText, false, nil), dataFrame(opCont, false, nil), dataFrame(opCont, true, nil)}, want: []event{textEv("")}},
		{name: "6.1.3 empty, non-empty, empty fragments", frames: []frame{dataFrame(opText, false, nil), dataFrame(opCont, false, []byte("middle")), dataFrame(opCont, true, nil)}, want: []event{textEv("middle")}},
		{name: "6.2.1 valid text split at code points", frames: []frame{dataFrame(opText, false, []byte(kosme[:5])), dataFrame(opCont, true, []byte(kosme[5:]))}, want: []event{textEv(kosme)}},
		{name: "6.2.2 valid text split inside code points", frames: []frame{dataFrame(opText, false, []byte(kosme[:4])), dataFrame(opCont, true, []byte(kosme[4:]))}, want: []event{textEv(kosme)}},
		{name: "6.2.3 valid text with 4-byte chars in 1-byte fragments", frames: fragments(opText, []byte(long), 1), want: []event{textEv(long)}},
		{name: "6.2.4 valid text with 4-byte chars byte by byte", frames: []frame{textF(long)}, chop: 1, want: []event{textEv(long)}},
		// Fail-fast: the frame that would complete the message is never sent.
		{name: "6.4.1 fail-fast invalid in first fragment", frames: []frame{dataFrame(opText, false, []byte(kosme+"\xed\xa0\x80edited"))}, want: fail(cInvalid), timeout: 2 * time.Second},
		{name: "6.4.2 fail-fast invalid in second fragment", frames: []frame{dataFrame(opText, false, []byte(kosme)), dataFrame(opCont, false, []byte("\xf4\x90\x80\x80"))}, want: fail(cInvalid), timeout: 2 * time.Second},
		{name: "6.4.3 fail-fast invalid sequence split across fragments", frames: []frame{dataFrame(opText, false, []byte(kosme+"\xf4")), dataFrame(opCont, false, []byte("\x90\x80\x80"))}, want: fail(cInvalid), timeout: 2 * time.Second},
		{name: "6.4.4 fail-fast invalid fragment byte by byte", frames: []frame{dataFrame(opText, false, []byte(kosme)), dataFrame(opCont, false, []byte("\xf4\x90\x80\x80edited"))}, chop: 1, want: fail(cInvalid), timeout: 2 * time.Second},
		{name: "6.4.5 fail-fast in a large first fragment", frames: []frame{dataFrame(opText, false, []byte(strings.Repeat("*", 70000)+"\xc0\xaf"+strings.Repeat("*", 70000)))}, want: fail(cInvalid), timeout: 2 * time.Second},
		{name: "6.4.6 invalid text after a valid message", frames: []frame{textF(kosme), textF("\xed\xa0\x80")}, want: []event{textEv(kosme), closeEv(cInvalid)}},
		{name: "6.4.7 invalid text in final fragment", frames: []frame{dataFrame(opText, false, []byte(kosme)), dataFrame(opCont, true, []byte("\xed\xa0\x80"))}, want: fail(cInvalid)},
	}
	for i, v := range validUTF8 {
		cs = append(cs,
			tcase{name: fmt.Sprintf("6.3.%d valid %s", i+1, v.name), frames: []frame{textF(v.s)}, want: []event{textEv(v.s)}},
			tcase{name: fmt.Sprintf("6.6.%d valid %s in 1-byte fragments", i+1, v.name), frames: fragments(opText, []byte(v.s), 1), want: []event{textEv(v.s)}},
		)
	}
	for i, v := range invalidUTF8 {
		cs = append(cs,
			tcase{name: fmt.Sprintf("6.5.%d invalid %s", i+1, v.name), frames: []frame{textF(v.s)}, want: fail(cInvalid)},
			// Followed by "x", every entry is detectably invalid before the
			// message ends.
			tcase{name: fmt.Sprintf("6.7.%d fail-fast invalid %s", i+1, v.name),
				frames: []frame{dataFrame(opText, false, []byte("ok "+v.s+"x"))}, want: fail(cInvalid), timeout: 2 * time.Second},
		)
	}
	return cs
}

// Section 7: the closing handshake, RFC 6455 §5.5.1, §7.
func closeCases() []tcase {
	reason123 := strings.Repeat("*", 123)
	cs := []tcase{
		{name: "7.1.1 text then clean close", frames: []frame{textF("Hello World!"), closeF(cNormal, "")}, want: []event{textEv("Hello World!"), closeEv(cNormal)}},
		{name: "7.1.2 second close ignored", frames: []frame{closeF(cNormal, ""), closeF(cNormal, "")}, want: []event{closeEv(cNormal)}},
		{name: "7.1.3 ping after close ignored", frames: []frame{closeF(cNormal, ""), pingF([]byte("Hello World!"))}, want: []event{closeEv(cNormal)}},
		{name: "7.1.4 text after close ignored", frames: []frame{closeF(cNormal, ""), textF("Hello World!")}, want: []event{closeEv(cNormal)}},
		{name: "7.1.5 close between fragments", frames: []frame{dataFrame(opText, false, []byte("fragment1")), closeF(cNormal, ""), dataFrame(opCont, true, []byte("fragment2"))}, want: []event{closeEv(cNormal)}},
		{name: "7.1.6 large message then close", frames: []frame{textF(strings.Repeat("BAsd7&jh23", 26214)), closeF(cNormal, "")}, want: []event{textEv(strings.Repeat("BAsd7&jh23", 26214)), closeEv(cNormal)}},
		{name: "7.3.1 empty close answered with empty close", frames: []frame{closeRaw(nil)}, want: []event{closeEv(1005)}},
		{name: "7.3.2 1-byte close payload fails 1002", frames: []frame{closeRaw([]byte{0x03})}, want: fail(cProtocol)},
		{name: "7.3.3 close 1000 without reason", frames: []frame{closeF(cNormal, "")}, want: []event{closeEv(cNormal)}},
		{name: "7.3.4 close 1000 with reason", frames: []frame{closeF(cNormal, "Hello World!")}, want: []event{closeEv(cNormal)}},
		{name: "7.3.5 close with 125-byte payload", frames: []frame{closeF(cNormal, reason123)}, want: []event{closeEv(cNormal)}},
		{name: "7.3.6 close with 126-byte payload fails 1002", frames: []frame{closeF(cNormal, reason123+"*")}, want: fail(cProtocol)},
		{name: "7.5.1 close reason with invalid UTF-8 fails 1007", frames: []frame{closeF(cNormal, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")}, want: fail(cInvalid)},
	}
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cs = append(cs, tcase{name: fmt.Sprintf("7.7.%d close %d answered with %d", i+1, code, code), frames: []frame{closeF(code, "")}, want: []event{closeEv(code)}})
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cs = append(cs, tcase{name: fmt.Sprintf("7.9.%d invalid close code %d fails 1002", i+1, code), frames: []frame{closeF(code, "")}, want: fail(cProtocol)})
	}
	return cs
}

// Section 9: moderate message sizes, whole and in fragments.
func sizeCases() []tcase {
	var cs []tcase
	for i, n := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		s := strings.Repeat("*", n)
		b := binPayload(n)
		cs = append(cs,
			tcase{name: fmt.Sprintf("9.1.%d text %d KiB in one frame", i+1, n>>10), frames: []frame{textF(s)}, want: []event{textEv(s)}, timeout: 5 * time.Second},
			tcase{name: fmt.Sprintf("9.2.%d binary %d KiB in one frame", i+1, n>>10), frames: []frame{binF(b)}, want: []event{binEv(b)}, timeout: 5 * time.Second},
		)
	}
	const n = 1 << 20
	s := []byte(strings.Repeat("*", n))
	b := binPayload(n)
	for i, size := range []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10} {
		cs = append(cs,
			tcase{name: fmt.Sprintf("9.3.%d text 1 MiB in %d-byte fragments", i+1, size), frames: fragments(opText, s, size), want: []event{msgEv(opText, s)}, timeout: 5 * time.Second},
			tcase{name: fmt.Sprintf("9.4.%d binary 1 MiB in %d-byte fragments", i+1, size), frames: fragments(opBinary, b, size), want: []event{binEv(b)}, timeout: 5 * time.Second},
		)
	}
	return cs
}

// Section 10: a message auto-fragmented by the sender.
func autoFragCases() []tcase {
	s := []byte(strings.Repeat("x", 65536))
	b := binPayload(65536)
	return []tcase{
		{name: "10.1.1 text 65536 bytes in 1300-byte frames", frames: fragments(opText, s, 1300), want: []event{msgEv(opText, s)}},
		{name: "10.1.2 binary 65536 bytes in 1300-byte frames", frames: fragments(opBinary, b, 1300), want: []event{binEv(b)}},
	}
}

// rawHeader builds a data frame header claiming n payload bytes (with no
// payload following), for lengths no sane test should allocate.
func rawHeader(op byte, n uint64) func(masked bool) []byte {
	return func(masked bool) []byte {
		b := []byte{0x80 | op, 127}
		if masked {
			b[1] |= 0x80
		}
		b = binary.BigEndian.AppendUint64(b, n)
		if masked {
			b = append(b, 0x12, 0x34, 0x56, 0x78)
		}
		return append(b, "some payload bytes"...)
	}
}

// Limits: read limits (1009, RFC 6455 §7.4.1) and impossible lengths.
func limitCases() []tcase {
	k := strings.Repeat("*", 1000)
	return []tcase{
		{name: "L.1 SetReadLimit 1000, 1000-byte text echoes", readLimit: 1000, frames: []frame{textF(k)}, want: []event{textEv(k)}},
		{name: "L.2 SetReadLimit 1000, 1001-byte text fails 1009", readLimit: 1000, frames: []frame{textF(k + "*")}, want: fail(cTooBig), wantLimitErr: true},
		{name: "L.3 SetReadLimit 1000, 1001-byte binary fails 1009", readLimit: 1000, frames: []frame{binF(binPayload(1001))}, want: fail(cTooBig), wantLimitErr: true},
		{name: "L.4 SetReadLimit 1000, fragments adding up to 1200 fail 1009", readLimit: 1000, frames: fragments(opText, []byte(k+strings.Repeat("*", 200)), 600), want: fail(cTooBig), wantLimitErr: true},
		{name: "L.5 SetReadLimit 1000, limit applies per message", readLimit: 1000, frames: []frame{textF(k), binF(binPayload(1000)), textF(k)}, want: []event{textEv(k), binEv(binPayload(1000)), textEv(k)}},
		// The one slow case: 16 MiB each way, which takes ~2-4 s under -race.
		{name: "L.6 DefaultReadLimit message echoes", frames: []frame{binF(binPayload(int(defaultReadLimit)))}, want: []event{binEv(binPayload(int(defaultReadLimit)))}, timeout: 10 * time.Second},
		{name: "L.7 DefaultReadLimit+1 fails 1009", frames: []frame{binF(binPayload(int(defaultReadLimit) + 1))}, want: fail(cTooBig), wantLimitErr: true, timeout: 5 * time.Second},
		{name: "L.8 frame claiming 2^62 bytes fails 1009", frames: []frame{{raw: rawHeader(opBinary, 1<<62)}}, want: fail(cTooBig), wantLimitErr: true},
		// RFC 6455 §5.2: the most significant bit of a 64-bit length MUST be 0.
		{name: "L.9 64-bit length with the top bit set fails 1002", frames: []frame{{raw: rawHeader(opBinary, 1<<63|5)}}, want: fail(cProtocol)},
	}
}

// Masking, RFC 6455 §5.1 and §5.3.
func maskCases() []tcase {
	unmasked := func(f frame) frame { f.mask = maskNone; return f }
	masked := func(f frame) frame { f.mask = maskForce; return f }
	var pings []frame
	var pongs []event
	for i := range 20 {
		p := []byte(fmt.Sprintf("key check %d", i))
		pings = append(pings, pingF(p), textF(string(p)))
		pongs = append(pongs, pongEv(p), textEv(string(p)))
	}
	return []tcase{
		{name: "M.1 server rejects an unmasked text frame with 1002", only: "server", frames: []frame{unmasked(textF("Hello"))}, want: fail(cProtocol)},
		{name: "M.2 server rejects an unmasked ping with 1002", only: "server", frames: []frame{unmasked(pingF([]byte("Hello")))}, want: fail(cProtocol)},
		{name: "M.3 server rejects an unmasked frame after a valid one", only: "server", frames: []frame{textF("Hello"), unmasked(textF("Hello"))}, want: []event{textEv("Hello"), closeEv(cProtocol)}},
		{name: "M.4 client rejects a masked text frame with 1002", only: "client", frames: []frame{masked(textF("Hello"))}, want: fail(cProtocol)},
		{name: "M.5 client rejects a masked ping with 1002", only: "client", frames: []frame{masked(pingF([]byte("Hello")))}, want: fail(cProtocol)},
		{name: "M.6 client masks every frame with a fresh key", only: "client", frames: pings, want: pongs,
			check: func(t *testing.T, p *peer) {
				// 20 pongs + 20 texts + the close: 41 frames, all masked
				// (readFrame enforces it), with 41 distinct keys.
				if len(p.keys) != 41 {
					t.Errorf("client used %d distinct masking keys for 41 frames: %v", len(p.keys), p.keys)
				}
			}},
	}
}
