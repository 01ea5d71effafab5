package conformance

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/latchws/latch/internal/deflate/windowcheck"
)

// The raw peer's side of permessage-deflate (RFC 7692), written with the
// standard library's compress/flate so that it shares no code with Latch
// (which uses klauspost/compress). When the implementation agreed to a
// window under 2^15 bytes, its messages also go through windowcheck, a
// test-only inflater of its own that measures how far back each
// back-reference reaches (RFC 7692 §7.1.2).

// zconf is how the implementation under test is configured for a case that
// negotiates compression, and what the handshake must look like.
type zconf struct {
	takeover  bool // CompressionContextTakeover
	threshold int  // CompressionThreshold (0: Latch's default, 128)
	// Client target: Dialer.CompressionMaxWindowBits (0: not set), which
	// adds window parameters to the offer.
	maxWindowBits int

	// Server targets: the raw client's Sec-WebSocket-Extensions header
	// lines, and the exact response wanted ("" means none, i.e. declined).
	offers   []string
	wantResp string

	// Client target: the response the raw server sends ("" none).
	resp string
}

// latchOffer is the offer the Dialer must make (see deflate.Offer): with no
// context takeover it asks for none either way (RFC 7692 §7.1.1).
func (z *zconf) latchOffer() string {
	o := "permessage-deflate"
	if !z.takeover {
		o += "; client_no_context_takeover; server_no_context_takeover"
	}
	switch n := z.maxWindowBits; {
	case n >= 8 && n <= 14:
		o += fmt.Sprintf("; server_max_window_bits=%d; client_max_window_bits=%d", n, n)
	case n == 15:
		o += "; client_max_window_bits"
	}
	return o
}

func (z *zconf) thresholdOrDefault() int {
	if z.threshold == 0 {
		return 128
	}
	return z.threshold
}

// extParams parses a Sec-WebSocket-Extensions value that must hold exactly
// one permessage-deflate element (RFC 7692 §5) into its parameters; names
// are lower-cased, a parameter without a value maps to "".
func extParams(h string) (map[string]string, error) {
	if strings.Contains(h, ",") {
		return nil, fmt.Errorf("more than one extension element in %q", h)
	}
	parts := strings.Split(h, ";")
	if strings.TrimSpace(strings.ToLower(parts[0])) != "permessage-deflate" {
		return nil, fmt.Errorf("not permessage-deflate: %q", h)
	}
	ps := map[string]string{}
	for _, p := range parts[1:] {
		name, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		ps[strings.ToLower(strings.TrimSpace(name))] = strings.Trim(strings.TrimSpace(val), `"`)
	}
	return ps, nil
}

// pmd is a negotiated permessage-deflate context on the raw peer.
type pmd struct {
	writeTakeover bool // the raw peer keeps its LZ77 window across messages
	readTakeover  bool // the implementation may refer to earlier messages
	huffman       bool // the raw peer was granted a window < 2^15: no back-references at all
	// sutBits is the window the implementation agreed to (RFC 7692
	// §7.1.2): 8..14, window checks its messages; 0 or 15, not limited.
	sutBits int
	window  windowcheck.Inflater
	maxDist int // farthest back-reference seen, with sutBits < 15

	fw   *flate.Writer
	out  bytes.Buffer
	dict []byte // last 32 KiB of inflated messages, with readTakeover
}

// newPMD sets up the raw peer from the agreed response and the offer it
// answers. isClient is the raw peer's role.
func newPMD(resp, offer string, isClient bool) (*pmd, error) {
	ps, err := extParams(resp)
	if err != nil {
		return nil, err
	}
	_, snct := ps["server_no_context_takeover"]
	_, cnct := ps["client_no_context_takeover"]
	// RFC 7692 §7.1.1.2: a client offering client_no_context_takeover
	// will not use context takeover, even if the response omits it.
	if strings.Contains(strings.ToLower(offer), "client_no_context_takeover") {
		cnct = true
	}
	// The peer's window limit is the one it must obey; it inflates any.
	z := &pmd{sutBits: 15}
	ourBits, sutBits := "server_max_window_bits", "client_max_window_bits"
	if isClient {
		z.writeTakeover, z.readTakeover = !cnct, !snct
		ourBits, sutBits = sutBits, ourBits
	} else {
		z.writeTakeover, z.readTakeover = !snct, !cnct
	}
	if v, ok := ps[ourBits]; ok && v != "" {
		bits, err := strconv.Atoi(v)
		if err != nil || bits < 8 || bits > 15 {
			return nil, fmt.Errorf("bad %s=%q", ourBits, v)
		}
		// RFC 7692 §7.1.2: compress/flate always uses a 32 KiB window, so
		// with a smaller one the raw peer sends literals only.
		z.huffman = bits < 15
	}
	v, ok := ps[sutBits]
	if !ok && !isClient {
		// Latch's client keeps to the window it offered even when the
		// response leaves client_max_window_bits out (the offer is only a
		// hint, RFC 7692 §7.1.2.2; this holds Latch to its word).
		if ops, err := extParams(offer); err == nil {
			v = ops[sutBits]
		}
	}
	if v != "" {
		bits, err := strconv.Atoi(v)
		if err != nil || bits < 8 || bits > 15 {
			return nil, fmt.Errorf("bad %s=%q", sutBits, v)
		}
		z.sutBits = bits
	}
	z.window.Takeover = z.readTakeover
	return z, nil
}

// deflateFresh compresses p as one message with a fresh context: sync
// flush, trailing 00 00 ff ff removed (RFC 7692 §7.2.1).
func deflateFresh(p []byte) []byte {
	var z pmd
	return z.compress(p)
}

// compress deflates one message with the negotiated context.
func (z *pmd) compress(p []byte) []byte {
	z.out.Reset()
	if z.fw == nil || !z.writeTakeover {
		level := flate.BestSpeed
		if z.huffman {
			level = flate.HuffmanOnly
		}
		z.fw, _ = flate.NewWriter(&z.out, level) // the level is valid
	}
	z.fw.Write(p) // writes to memory cannot fail
	z.fw.Flush()
	b := bytes.Clone(z.out.Bytes())
	if !bytes.HasSuffix(b, []byte{0, 0, 0xff, 0xff}) {
		panic("compress/flate: sync flush without 00 00 ff ff")
	}
	return b[:len(b)-4]
}

// zTail is appended to a compressed message before inflating it: the 4
// bytes the sender removed (RFC 7692 §7.2.2) and an empty final stored
// block, so that a well-formed message ends in io.EOF and anything else is
// an error.
var zTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// inflate decompresses one message from the implementation, at most limit
// bytes of output.
func (z *pmd) inflate(data []byte, limit int) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(data), bytes.NewReader(zTail))
	var r io.ReadCloser
	if z.readTakeover {
		r = flate.NewReaderDict(src, z.dict)
	} else {
		r = flate.NewReader(src)
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("implementation sent invalid deflate data: %w", err)
	}
	if len(out) > limit {
		return nil, errors.New("implementation sent a compressed message over the test bound")
	}
	if z.sutBits >= 8 && z.sutBits < 15 {
		// RFC 7692 §7.1.2.1/§7.1.2.2: no back-reference beyond the
		// agreed window, inside the message or into the previous ones.
		again, dist, err := z.window.Inflate(data)
		switch {
		case err != nil:
			return nil, fmt.Errorf("implementation sent deflate data windowcheck rejects: %w", err)
		case !bytes.Equal(again, out):
			return nil, errors.New("windowcheck and compress/flate inflate the message differently")
		case dist > 1<<z.sutBits:
			return nil, fmt.Errorf("implementation refers %d bytes back with a window of %d (%d bits)", dist, 1<<z.sutBits, z.sutBits)
		}
		z.maxDist = max(z.maxDist, dist)
	}
	if z.readTakeover {
		// RFC 7692 §7.2.3.2: the next message may refer to the last
		// 32 KiB of uncompressed data.
		z.dict = append(z.dict, out...)
		if n := len(z.dict) - 1<<15; n > 0 {
			z.dict = append(z.dict[:0:0], z.dict[n:]...)
		}
	}
	return out, nil
}

// deflateBomb is a compressed message inflating to n MiB of zeros, built
// from one flushed MiB repeated: after the first copy every copy refers
// only to zeros already in the window, so the stream stays valid.
func deflateBomb(mib int) []byte {
	chunk := deflateFresh(make([]byte, 1<<20))
	// Re-add the sync flush each copy ends with, except the last.
	flushed := append(bytes.Clone(chunk), 0, 0, 0xff, 0xff)
	return append(bytes.Repeat(flushed, mib-1), chunk...)
}
