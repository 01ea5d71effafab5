// Package windowcheck is a test helper: a plain inflater of permessage-deflate messages (RFC 1951,
// RFC 7692 §7.2.2) that reports how far back each message's back-references reach, so tests can check that
// a sender honours the window it agreed to (RFC 7692 §7.1.2). It shares no code with the flate libraries
// it checks; it is written for clarity, not speed, and only tests import it.
package windowcheck

import (
	"errors"
	"fmt"
)

// MaxOutput bounds the inflated size of one message (a test input is never larger).
const MaxOutput = 64 << 20

// historySize is deflate's largest window (RFC 1951 §2).
const historySize = 1 << 15

// Inflater inflates the messages of one direction of a connection in order.
type Inflater struct {
	// Takeover: a message may refer to the previous messages' output (RFC 7692 §7.2.3.2). Without it
	// every message starts with no history, so a reference before its start is an error.
	Takeover bool

	hist []byte // last 32 KiB of output, with Takeover
}

// ErrCorrupt reports data that is not a valid deflate stream, or a reference before all history.
var ErrCorrupt = errors.New("windowcheck: invalid deflate data")

// Inflate inflates one message's payload (as sent: the final 00 00 ff ff removed) and returns its
// output and the farthest distance of any of its back-references (0 when it has none).
func (f *Inflater) Inflate(payload []byte) (out []byte, maxDistance int, err error) {
	in := make([]byte, 0, len(payload)+4)
	in = append(append(in, payload...), 0x00, 0x00, 0xff, 0xff)
	s := &state{in: in, buf: append([]byte(nil), f.hist...)}
	s.start = len(s.buf)
	if err := s.run(); err != nil {
		return nil, 0, err
	}
	out = s.buf[s.start:]
	if f.Takeover {
		h := s.buf
		if len(h) > historySize {
			h = h[len(h)-historySize:]
		}
		f.hist = append(f.hist[:0], h...)
	}
	return out, s.maxDist, nil
}

type state struct {
	in      []byte
	pos     int  // next byte of in
	bitBuf  uint // bits not yet used, LSB first
	bitCnt  uint
	buf     []byte // history, then this message's output
	start   int    // where this message's output starts in buf
	maxDist int
}

func (s *state) bits(n uint) (uint, error) {
	for s.bitCnt < n {
		if s.pos == len(s.in) {
			return 0, fmt.Errorf("%w: truncated", ErrCorrupt)
		}
		s.bitBuf |= uint(s.in[s.pos]) << s.bitCnt
		s.pos++
		s.bitCnt += 8
	}
	v := s.bitBuf & (1<<n - 1)
	s.bitBuf >>= n
	s.bitCnt -= n
	return v, nil
}

// run decodes blocks until the input ends on a block boundary or a final block ends.
func (s *state) run() error {
	for {
		final, err := s.bits(1)
		if err != nil {
			return err
		}
		typ, err := s.bits(2)
		if err != nil {
			return err
		}
		switch typ {
		case 0:
			err = s.stored()
		case 1:
			err = s.codes(&fixedLit, &fixedDist)
		case 2:
			var lit, dist huffman
			if err = s.dynamic(&lit, &dist); err == nil {
				err = s.codes(&lit, &dist)
			}
		default:
			return fmt.Errorf("%w: reserved block type", ErrCorrupt)
		}
		if err != nil {
			return err
		}
		if final == 1 || (s.pos == len(s.in) && s.bitCnt < 8) {
			return nil
		}
	}
}

// stored copies a stored block (RFC 1951 §3.2.4).
func (s *state) stored() error {
	s.bitBuf, s.bitCnt = 0, 0 // to the byte boundary (fewer than 8 bits are left over)
	if len(s.in)-s.pos < 4 {
		return fmt.Errorf("%w: truncated stored block", ErrCorrupt)
	}
	n := int(s.in[s.pos]) | int(s.in[s.pos+1])<<8
	nn := int(s.in[s.pos+2]) | int(s.in[s.pos+3])<<8
	s.pos += 4
	if n != ^nn&0xffff {
		return fmt.Errorf("%w: stored block LEN != ^NLEN", ErrCorrupt)
	}
	if len(s.in)-s.pos < n {
		return fmt.Errorf("%w: truncated stored block", ErrCorrupt)
	}
	if err := s.grow(n); err != nil {
		return err
	}
	s.buf = append(s.buf, s.in[s.pos:s.pos+n]...)
	s.pos += n
	return nil
}

func (s *state) grow(n int) error {
	if len(s.buf)-s.start+n > MaxOutput {
		return fmt.Errorf("windowcheck: a message inflates to more than %d bytes", MaxOutput)
	}
	return nil
}

// huffman is a canonical Huffman code (RFC 1951 §3.2.2): how many codes have each length, and the
// symbols ordered by code.
type huffman struct {
	count  [16]int
	symbol []int
}

func (h *huffman) build(lengths []int) error {
	h.count = [16]int{}
	for _, l := range lengths {
		h.count[l]++
	}
	left := 1
	for l := 1; l < 16; l++ {
		left = left<<1 - h.count[l]
		if left < 0 {
			return fmt.Errorf("%w: over-subscribed Huffman code", ErrCorrupt)
		}
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	h.symbol = make([]int, len(lengths))
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = sym
			offs[l]++
		}
	}
	return nil
}

// decode reads one symbol, a bit at a time: codes are packed most significant bit first (§3.1.1).
func (s *state) decode(h *huffman) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l < 16; l++ {
		b, err := s.bits(1)
		if err != nil {
			return 0, err
		}
		code |= int(b)
		count := h.count[l]
		if code-count < first {
			return h.symbol[index+code-first], nil
		}
		index += count
		first = (first + count) << 1
		code <<= 1
	}
	return 0, fmt.Errorf("%w: no such Huffman code", ErrCorrupt)
}

var (
	lengthBase  = [...]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [...]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	distBase    = [...]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	distExtra   = [...]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	fixedLit, fixedDist huffman // RFC 1951 §3.2.6
)

func init() {
	var l [288]int
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	fixedLit.build(l[:])
	var d [30]int
	for i := range d {
		d[i] = 5
	}
	fixedDist.build(d[:])
}

// codes decodes a compressed block's literals and matches, recording match distances.
func (s *state) codes(lit, dist *huffman) error {
	for {
		sym, err := s.decode(lit)
		if err != nil {
			return err
		}
		switch {
		case sym < 256:
			if err := s.grow(1); err != nil {
				return err
			}
			s.buf = append(s.buf, byte(sym))
			continue
		case sym == 256:
			return nil
		case sym > 285:
			return fmt.Errorf("%w: invalid length symbol %d", ErrCorrupt, sym)
		}
		sym -= 257
		extra, err := s.bits(lengthExtra[sym])
		if err != nil {
			return err
		}
		length := lengthBase[sym] + int(extra)
		ds, err := s.decode(dist)
		if err != nil {
			return err
		}
		if ds > 29 {
			return fmt.Errorf("%w: invalid distance symbol %d", ErrCorrupt, ds)
		}
		extra, err = s.bits(distExtra[ds])
		if err != nil {
			return err
		}
		d := distBase[ds] + int(extra)
		if d > len(s.buf) {
			return fmt.Errorf("%w: distance %d reaches before all history (%d bytes)", ErrCorrupt, d, len(s.buf))
		}
		s.maxDist = max(s.maxDist, d)
		if err := s.grow(length); err != nil {
			return err
		}
		for range length { // byte by byte: a match may overlap its own output
			s.buf = append(s.buf, s.buf[len(s.buf)-d])
		}
	}
}

// clOrder is the order of the code length code lengths (RFC 1951 §3.2.7).
var clOrder = [...]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// dynamic reads a dynamic block's code definitions (RFC 1951 §3.2.7).
func (s *state) dynamic(lit, dist *huffman) error {
	hlit, err := s.bits(5)
	if err != nil {
		return err
	}
	hdist, err := s.bits(5)
	if err != nil {
		return err
	}
	hclen, err := s.bits(4)
	if err != nil {
		return err
	}
	nlen, ndist, ncode := int(hlit)+257, int(hdist)+1, int(hclen)+4
	if nlen > 286 || ndist > 30 {
		return fmt.Errorf("%w: too many codes", ErrCorrupt)
	}
	var cl [19]int
	for i := range ncode {
		v, err := s.bits(3)
		if err != nil {
			return err
		}
		cl[clOrder[i]] = int(v)
	}
	var clCode huffman
	if err := clCode.build(cl[:]); err != nil {
		return err
	}
	lengths := make([]int, 0, nlen+ndist)
	for len(lengths) < nlen+ndist {
		sym, err := s.decode(&clCode)
		if err != nil {
			return err
		}
		if sym < 16 {
			lengths = append(lengths, sym)
			continue
		}
		val, rep := 0, uint(0)
		switch sym {
		case 16:
			if len(lengths) == 0 {
				return fmt.Errorf("%w: repeat with no previous length", ErrCorrupt)
			}
			val = lengths[len(lengths)-1]
			v, err := s.bits(2)
			if err != nil {
				return err
			}
			rep = 3 + v
		case 17:
			v, err := s.bits(3)
			if err != nil {
				return err
			}
			rep = 3 + v
		default:
			v, err := s.bits(7)
			if err != nil {
				return err
			}
			rep = 11 + v
		}
		if len(lengths)+int(rep) > nlen+ndist {
			return fmt.Errorf("%w: code lengths overflow", ErrCorrupt)
		}
		for range rep {
			lengths = append(lengths, val)
		}
	}
	if lengths[256] == 0 {
		return fmt.Errorf("%w: no end-of-block code", ErrCorrupt)
	}
	if err := lit.build(lengths[:nlen]); err != nil {
		return err
	}
	return dist.build(lengths[nlen:])
}
