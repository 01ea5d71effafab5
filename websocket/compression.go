package websocket

import (
	"errors"
	"github.com/klauspost/compress/flate"
	"io"
	"sync"

	"github.com/latchws/latch/internal/deflate"
	"github.com/latchws/latch/internal/frame"
)

const (
	minCompressionLevel     = -2 // flate.HuffmanOnly
	maxCompressionLevel     = 9  // flate.BestCompression
	defaultCompressionLevel = 1  // flate.BestSpeed

	// DefaultCompressionThreshold is the size below which messages are sent
	// uncompressed: deflate cannot shrink tiny messages enough to pay for
	// the work (RFC 7692 leaves the choice to the sender).
	DefaultCompressionThreshold = 128

	// windowSize is deflate's window: 2^15 bytes (RFC 7692 §7.1.2).
	windowSize = 1 << 15

	// Window bits of permessage-deflate (RFC 7692 §7.1.2): 8..15.
	minWindowBits = 8
	maxWindowBits = 15
)

// compressionConfig is what a handshake agreed, plus local settings.
type compressionConfig struct {
	params    deflate.Params
	level     int
	threshold int
}

// deflateState is a connection's permessage-deflate state (RFC 7692).
type deflateState struct {
	readTakeover  bool // immutable: the peer compresses with context takeover
	writeTakeover bool // immutable: we compress with context takeover
	threshold     int  // immutable
	// writeBits is immutable: no back-reference we send reaches further
	// than 2^writeBits bytes (the peer's max_window_bits for our side,
	// RFC 7692 §7.1.2). The peer's window needs no setting: a 32 KiB
	// inflater reads any smaller window.
	writeBits int

	// Read side, owned by the readMu holder.
	inflater io.ReadCloser // pooled; set while a compressed message is read
	src      inflateSource
	dict     []byte // last 32 KiB of inflated output, with readTakeover
	inflated int64  // inflated bytes of the current message
	// readFailed is the inflater's error, held back while the bytes it
	// decoded before it are read.
	readFailed error

	// Write side, guarded by msgMu.
	deflater     *flate.Writer // kept between messages with writeTakeover
	deflaterKind int           // of deflater, see deflaterKind
	deflaterOut  switchWriter  // where deflater writes this message
	// pooledKind is the kind of the pooled writer in use: it goes back to
	// that pool even if SetCompressionLevel ran meanwhile, so that no pool
	// ever hands out a writer with a wider window than its kind.
	pooledKind int
}

// switchWriter lets a long-lived flate writer write to a new destination
// for each message without losing its context.
type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

func newDeflateState(c *Conn, cfg *compressionConfig) *deflateState {
	d := &deflateState{threshold: cfg.threshold}
	if d.threshold == 0 {
		d.threshold = DefaultCompressionThreshold
	}
	if c.isServer {
		d.readTakeover = !cfg.params.ClientNoContextTakeover
		d.writeTakeover = !cfg.params.ServerNoContextTakeover
		d.writeBits = cfg.params.ServerMaxWindowBits
	} else {
		d.readTakeover = !cfg.params.ServerNoContextTakeover
		d.writeTakeover = !cfg.params.ClientNoContextTakeover
		d.writeBits = cfg.params.ClientMaxWindowBits
	}
	if d.writeBits < minWindowBits || d.writeBits > maxWindowBits {
		d.writeBits = maxWindowBits // not limited
	}
	d.src.c = c
	return d
}

// EnableWriteCompression enables and disables write compression of
// subsequent text and binary messages. This function is a noop if
// compression was not negotiated with the peer.
func (c *Conn) EnableWriteCompression(enable bool) {
	c.compressWrite.Store(enable)
}

// SetCompressionLevel sets the flate compression level for subsequent text
// and binary messages. This function is a noop if compression was not
// negotiated with the peer. See the compress/flate package for a
// description of compression levels. When the peer limited this side's
// window below 32 KiB (RFC 7692 §7.1.2), the levels that refer back (-1
// and 1..9) all use one windowed encoder, about level 5.
func (c *Conn) SetCompressionLevel(level int) error {
	if level < minCompressionLevel || level > maxCompressionLevel {
		return errors.New("websocket: invalid compression level")
	}
	c.compressLevel.Store(int32(level))
	return nil
}

// Compressed reports whether permessage-deflate was negotiated.
func (c *Conn) Compressed() bool { return c.deflate != nil }

// compressing reports whether a message of size bytes goes out compressed;
// size < 0 means not known yet (NextWriter).
func (c *Conn) compressing(size int) bool {
	d := c.deflate
	if d == nil || !c.compressWrite.Load() {
		return false
	}
	return size < 0 || d.threshold < 0 || size >= d.threshold
}

// Inflating ----------------------------------------------------------------

// inflateTail ends a message's compressed data: the 4 bytes the sender
// removed (RFC 7692 §7.2.2), then an empty final block so that the reader
// reports io.EOF.
var inflateTail = [...]byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// inflateSource feeds a compressed message's payload, then the tail, to the
// flate reader. It is an io.ByteReader so flate reads it without a bufio
// wrapper (which would allocate at every Reset).
type inflateSource struct {
	c    *Conn
	tail int     // tail bytes served; -1 while frames remain
	one  [1]byte // ReadByte's buffer: a local would escape to the heap
}

func (s *inflateSource) Read(p []byte) (int, error) {
	if s.tail < 0 {
		n, err := s.c.readFrames(p)
		if err == io.EOF {
			s.tail = 0
			err = nil
		}
		if n > 0 || err != nil {
			return n, err
		}
	}
	if s.tail == len(inflateTail) {
		return 0, io.EOF
	}
	n := copy(p, inflateTail[s.tail:])
	s.tail += n
	return n, nil
}

func (s *inflateSource) ReadByte() (byte, error) {
	c := s.c
	if s.tail < 0 && c.frameLeft > 0 {
		if b := c.rd.buffered(); len(b) > 0 {
			v := b[0]
			c.rd.consume(1)
			if c.frameMasked {
				v ^= c.frameKey[c.maskPos]
				c.maskPos = (c.maskPos + 1) & 3
			}
			c.frameLeft--
			if c.frameLeft == 0 && c.frameFin {
				s.tail = 0
			}
			return v, nil
		}
	}
	for {
		n, err := s.Read(s.one[:])
		if n == 1 {
			return s.one[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}

var inflaters sync.Pool // of io.ReadCloser implementing flate.Resetter

// inflate reads inflated payload of the current compressed message. The
// read limit applies to the inflated size and is checked as bytes come
// out, so a compression bomb stops at the limit (RFC 7692 §8.1 leaves
// limits to the implementation).
func (c *Conn) inflate(p []byte) (int, error) {
	d := c.deflate
	if d.inflater == nil {
		d.src.tail = -1
		d.inflated = 0
		if fr, ok := inflaters.Get().(io.ReadCloser); ok {
			fr.(flate.Resetter).Reset(&d.src, d.dict)
			d.inflater = fr
		} else {
			d.inflater = flate.NewReaderDict(&d.src, d.dict)
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	if d.readFailed != nil {
		err, d.readFailed = d.readFailed, nil
	}
	for n == 0 && err == nil {
		n, err = d.inflater.Read(p)
	}
	if n > 0 && err != nil && err != io.EOF {
		// The bytes decoded before the failure go first, so that invalid
		// text in them is found (1007) however the reads were sized; the
		// error comes with the next read.
		d.readFailed, err = err, nil
	}
	d.inflated += int64(n)
	if limit := c.readLimit.Load(); limit > 0 && d.inflated > limit {
		d.releaseInflater()
		c.failWith(ErrReadLimit, frame.CloseTooBig, "message too big")
		return 0, ErrReadLimit
	}
	if d.readTakeover && n > 0 {
		d.keep(p[:n])
	}
	switch {
	case err == io.EOF:
		d.releaseInflater()
		return n, io.EOF
	case err != nil:
		d.releaseInflater()
		if c.readErr != nil {
			// The network or the framing failed under the inflater.
			return 0, c.readErr
		}
		return 0, c.failProtocol(frame.CloseInvalidPayload, "invalid compressed data: "+err.Error())
	}
	return n, nil
}

func (d *deflateState) releaseInflater() {
	if d.inflater != nil {
		inflaters.Put(d.inflater)
		d.inflater = nil
	}
}

// keep appends inflated output to the window used as the next message's
// dictionary (context takeover, RFC 7692 §7.2.3.2).
func (d *deflateState) keep(out []byte) {
	if len(out) >= windowSize {
		if d.dict == nil {
			d.dict = make([]byte, 0, windowSize)
		}
		d.dict = append(d.dict[:0], out[len(out)-windowSize:]...)
		return
	}
	if d.dict == nil {
		d.dict = make([]byte, 0, windowSize)
	}
	if over := len(d.dict) + len(out) - windowSize; over > 0 {
		d.dict = d.dict[:copy(d.dict, d.dict[over:])]
	}
	d.dict = append(d.dict, out...)
}

// Deflating ----------------------------------------------------------------

// A deflater kind is a flate level at the full window, or a window of
// 2^8..2^14 bytes (RFC 7692 §7.1.2.1). klauspost's NewWriterWindow keeps
// every match distance below the window it is given; it has one speed
// (about level 5), so below 15 bits the level only picks between it and
// the levels that never refer back (HuffmanOnly, NoCompression).
const (
	levelKinds  = maxCompressionLevel - minCompressionLevel + 1
	windowKinds = maxWindowBits - minWindowBits
)

// deflaterKind is the kind for level with a window of 2^bits bytes: an
// index into deflaters, and the key of PreparedMessage's cache.
func deflaterKind(level, bits int) int {
	if bits >= maxWindowBits || level == flate.HuffmanOnly || level == flate.NoCompression {
		return level - minCompressionLevel
	}
	return levelKinds + bits - minWindowBits
}

func newDeflater(w io.Writer, kind int) *flate.Writer {
	var fw *flate.Writer
	if kind < levelKinds {
		fw, _ = flate.NewWriter(w, kind+minCompressionLevel) // the level is valid
	} else {
		fw, _ = flate.NewWriterWindow(w, 1<<(kind-levelKinds+minWindowBits)) // 256..16384: valid
	}
	return fw
}

// writeKind is the deflater kind of this connection's next message.
func (c *Conn) writeKind() int {
	return deflaterKind(int(c.compressLevel.Load()), c.deflate.writeBits)
}

var deflaters [levelKinds + windowKinds]sync.Pool

// getDeflater returns a flate writer writing to w: the connection's own
// with context takeover, else one from a pool.
func (c *Conn) getDeflater(w io.Writer) *flate.Writer {
	d := c.deflate
	kind := c.writeKind()
	if d.writeTakeover {
		d.deflaterOut.w = w
		if d.deflater == nil || d.deflaterKind != kind {
			// A level change starts a new context: referring to less of
			// the history than the peer keeps is allowed.
			d.deflater = newDeflater(&d.deflaterOut, kind)
			d.deflaterKind = kind
		}
		return d.deflater
	}
	d.pooledKind = kind
	if fw, ok := deflaters[kind].Get().(*flate.Writer); ok {
		fw.Reset(w)
		return fw
	}
	return newDeflater(w, kind)
}

func (c *Conn) putDeflater(fw *flate.Writer) {
	if d := c.deflate; !d.writeTakeover {
		deflaters[d.pooledKind].Put(fw)
	}
}

// compressedBuf collects one message's compressed bytes.
type compressedBuf struct{ b []byte }

func (cb *compressedBuf) Write(p []byte) (int, error) {
	cb.b = append(cb.b, p...)
	return len(p), nil
}

var compressedBufs = sync.Pool{New: func() any { return new(compressedBuf) }}

// deflateBytes compresses data as one message without context takeover,
// with a deflater of the given kind.
func deflateBytes(kind int, data []byte) []byte {
	var cb compressedBuf
	pool := &deflaters[kind]
	fw, ok := pool.Get().(*flate.Writer)
	if ok {
		fw.Reset(&cb)
	} else {
		fw = newDeflater(&cb, kind)
	}
	fw.Write(data) // writing to memory cannot fail
	fw.Flush()
	pool.Put(fw)
	return trimFlushTail(cb.b)
}

// deflateMessage compresses data as one message: deflate, sync flush, and
// the flush's 00 00 ff ff removed (RFC 7692 §7.2.1).
func (c *Conn) deflateMessage(data []byte) (*compressedBuf, error) {
	cb := compressedBufs.Get().(*compressedBuf)
	cb.b = cb.b[:0]
	fw := c.getDeflater(cb)
	_, err := fw.Write(data)
	if err == nil {
		err = fw.Flush()
	}
	c.putDeflater(fw)
	if err != nil {
		compressedBufs.Put(cb)
		return nil, err
	}
	cb.b = trimFlushTail(cb.b)
	return cb, nil
}

func trimFlushTail(b []byte) []byte {
	if n := len(b); n >= 4 && b[n-4] == 0 && b[n-3] == 0 && b[n-2] == 0xff && b[n-1] == 0xff {
		return b[:n-4]
	}
	return b
}

func putCompressedBuf(cb *compressedBuf) {
	if cap(cb.b) > 1<<20 {
		return // do not keep a huge buffer alive for small messages
	}
	compressedBufs.Put(cb)
}
