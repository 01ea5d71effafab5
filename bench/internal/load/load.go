// Package load is the one load client of the bench: raw RFC 6455 frames over
// TCP, so every server is driven by exactly the same bytes and only the
// server differs. Each connection runs a closed loop with a fixed number of
// messages in flight; every echo is checked byte for byte.
package load

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one workload.
type Config struct {
	Addr     string // 127.0.0.1:PORT
	Conns    int
	InFlight int // messages in flight per connection
	Size     int // payload bytes
	Compress bool
	// Warmup is run but not counted; Duration is the measured window.
	Warmup, Duration time.Duration
	// MaxMsgs bounds the messages of the whole run (warm-up included).
	MaxMsgs int64
	// MaxSamples bounds the latency samples kept (reservoir per connection).
	MaxSamples int
	// Path is the request path; "" means "/".
	Path string
	// PubSub speaks latch serve's /ws protocol: the welcome is read after
	// the handshake, and the message echoed is a ping answered by a pong.
	PubSub bool
}

// The pub/sub protocol's ping and its answer (docs/protocol.md).
var (
	pubSubPing = []byte(`{"op":"ping"}`)
	pubSubPong = []byte(`{"type":"pong"}`)
)

// Result is what the client saw in the measured window.
type Result struct {
	Msgs     int64
	Elapsed  time.Duration
	P50, P99 time.Duration
}

// Conn is one client connection.
type Conn struct {
	nc       net.Conn
	br       *bufio.Reader
	deflate  bool   // permessage-deflate negotiated
	text     bool   // the server answers in text messages (PubSub)
	frame    []byte // one masked data frame, ready to write
	batch    []byte // InFlight frames back to back
	want     []byte // the payload the echo must equal
	msg      []byte // receive buffer
	inflater io.ReadCloser
	zsrc     bytes.Reader
	zbuf     bytes.Buffer
}

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" // RFC 6455 §1.3

// Payload returns n bytes of word-like text: compressible, but not trivially.
func Payload(n int) []byte {
	words := []string{"latch", "frame", "socket", "echo", "mask", "close", "ping", "delta", "window", "bench", "go", "rfc"}
	var b []byte
	x := uint32(2463534242)
	for len(b) < n {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b = append(b, words[x%uint32(len(words))]...)
		b = append(b, ' ')
	}
	return b[:n]
}

// Dial opens cfg.Conns connections, at most 64 handshakes at a time, each
// bounded by timeout.
func Dial(cfg Config, timeout time.Duration) ([]*Conn, error) {
	payload := Payload(cfg.Size)
	var compressed []byte
	if cfg.Compress {
		compressed = deflateMessage(payload)
	}
	conns := make([]*Conn, cfg.Conns)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for i := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialOne(cfg, payload, compressed, timeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("conn %d: %w", i, err)
				}
				return
			}
			conns[i] = c
		}()
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
	}
	wg.Wait()
	if firstErr != nil {
		CloseAll(conns)
		return nil, firstErr
	}
	return conns, nil
}

// Handshake dials addr and performs an RFC 6455 §4.1 client handshake
// for path, with extra header lines (each ending in \r\n), within timeout.
// It returns the connection, a reader over it (which may hold the first
// frames already) and the response; the connection has no deadline then.
func Handshake(addr, path, extra string, timeout time.Duration) (net.Conn, *bufio.Reader, *http.Response, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, nil, nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	var k [16]byte
	_, _ = rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n" + extra + "\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	resp.Body.Close()
	sum := sha1.Sum([]byte(key + wsGUID))
	if resp.StatusCode != http.StatusSwitchingProtocols ||
		resp.Header.Get("Sec-WebSocket-Accept") != base64.StdEncoding.EncodeToString(sum[:]) {
		nc.Close()
		return nil, nil, nil, fmt.Errorf("handshake: status %d", resp.StatusCode)
	}
	_ = nc.SetDeadline(time.Time{})
	return nc, br, resp, nil
}

func dialOne(cfg Config, payload, compressed []byte, timeout time.Duration) (*Conn, error) {
	path := cfg.Path
	if path == "" {
		path = "/"
	}
	extra := ""
	if cfg.Compress {
		// No context takeover (RFC 7692 §7.1.1): every message compresses
		// alone, so one pre-compressed frame serves the whole run.
		extra = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\n"
	}
	nc, br, resp, err := Handshake(cfg.Addr, path, extra, timeout)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(timeout)) // the welcome, below
	ext := resp.Header.Get("Sec-WebSocket-Extensions")
	c := &Conn{nc: nc, br: br, want: payload, deflate: strings.Contains(ext, "permessage-deflate")}
	if cfg.Compress && !c.deflate {
		nc.Close()
		return nil, errors.New("server did not accept permessage-deflate")
	}
	body, rsv1 := payload, false
	if c.deflate {
		body, rsv1 = compressed, true
	}
	c.frame = maskedFrame(body, rsv1)
	if cfg.PubSub {
		c.text = true
		c.want = nil // any welcome
		if err := c.readMessage(); err != nil {
			nc.Close()
			return nil, fmt.Errorf("welcome: %w", err)
		}
		c.want = pubSubPong
		c.frame = maskedFrame(pubSubPing, false)
		c.frame[0] = 0x80 | 0x1 // FIN, text: the protocol is JSON text
	}
	c.batch = bytes.Repeat(c.frame, max(cfg.InFlight, 1))
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// maskedFrame builds one binary client frame; clients must mask (RFC 6455 §5.3).
func maskedFrame(p []byte, rsv1 bool) []byte {
	b0 := byte(0x80 | 0x2) // FIN, binary
	if rsv1 {
		b0 |= 0x40 // RFC 7692 §6: RSV1 marks a compressed message
	}
	f := []byte{b0}
	switch n := len(p); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	var m [4]byte
	_, _ = rand.Read(m[:])
	f = append(f, m[:]...)
	for i, c := range p {
		f = append(f, c^m[i&3])
	}
	return f
}

// deflateMessage compresses p as one message: RFC 7692 §7.2.1 drops the
// trailing empty stored block's 00 00 ff ff.
func deflateMessage(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// readMessage reads one whole data message (answering pings) and checks it
// equals the payload sent.
func (c *Conn) readMessage() error {
	c.msg = c.msg[:0]
	compressed := false
	first := true
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return err
		}
		fin, op := h[0]&0x80 != 0, h[0]&0x0f
		if h[1]&0x80 != 0 {
			return errors.New("server frame is masked") // RFC 6455 §5.1
		}
		n := uint64(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return err
			}
			n = uint64(binary.BigEndian.Uint16(e[:]))
		case 127:
			var e [8]byte
			if _, err := io.ReadFull(c.br, e[:]); err != nil {
				return err
			}
			n = binary.BigEndian.Uint64(e[:])
		}
		if n > 1<<24 {
			return errors.New("frame too large")
		}
		if op >= 0x8 { // control frame, RFC 6455 §5.5
			var p [125]byte
			if n > 125 {
				return errors.New("control frame too long")
			}
			if _, err := io.ReadFull(c.br, p[:n]); err != nil {
				return err
			}
			switch op {
			case 0x8:
				return fmt.Errorf("server closed: %x", p[:n])
			case 0x9:
				if _, err := c.nc.Write(maskedControl(0xA, p[:n])); err != nil {
					return err
				}
			}
			continue
		}
		if first {
			if op != 0x2 && !(c.text && op == 0x1) {
				return fmt.Errorf("unexpected opcode %d", op)
			}
			compressed = h[0]&0x40 != 0
			first = false
		} else if op != 0x0 {
			return fmt.Errorf("expected continuation, got opcode %d", op)
		}
		start := len(c.msg)
		c.msg = slices.Grow(c.msg, int(n))[:start+int(n)]
		if _, err := io.ReadFull(c.br, c.msg[start:]); err != nil {
			return err
		}
		if fin {
			break
		}
	}
	got := c.msg
	if compressed {
		if !c.deflate {
			return errors.New("RSV1 set without permessage-deflate")
		}
		var err error
		if got, err = c.inflate(got); err != nil {
			return err
		}
	}
	if c.want != nil && !bytes.Equal(got, c.want) {
		return fmt.Errorf("echo differs: got %d bytes, want %d", len(got), len(c.want))
	}
	return nil
}

func (c *Conn) inflate(p []byte) ([]byte, error) {
	// RFC 7692 §7.2.2: append 00 00 ff ff before inflating.
	c.zsrc.Reset(append(p, 0, 0, 0xff, 0xff))
	if c.inflater == nil {
		c.inflater = flate.NewReader(&c.zsrc)
	} else if err := c.inflater.(flate.Resetter).Reset(&c.zsrc, nil); err != nil {
		return nil, err
	}
	c.zbuf.Reset()
	_, err := io.Copy(&c.zbuf, c.inflater)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return c.zbuf.Bytes(), nil
}

func maskedControl(op byte, p []byte) []byte {
	f := []byte{0x80 | op, 0x80 | byte(len(p)), 0, 0, 0, 0}
	_, _ = rand.Read(f[2:6])
	for i, b := range p {
		f = append(f, b^f[2+i&3])
	}
	return f
}

// EchoOnce sends one message on every connection and waits for its echo.
func EchoOnce(conns []*Conn, timeout time.Duration) error {
	return onEach(conns, timeout, func(c *Conn) error {
		if _, err := c.nc.Write(c.frame); err != nil {
			return err
		}
		return c.readMessage()
	})
}

// PingOnce pings every connection and waits for each pong (RFC 6455
// §5.5.2): the server answers from its read path, which is where a
// careless library grows an idle goroutine's stack for good.
func PingOnce(conns []*Conn, timeout time.Duration) error {
	ping := []byte("idle?")
	return onEach(conns, timeout, func(c *Conn) error {
		if _, err := c.nc.Write(maskedControl(0x9, ping)); err != nil {
			return err
		}
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return err
		}
		p := make([]byte, h[1]&0x7f)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return err
		}
		if h[0] != 0x8A || string(p) != string(ping) {
			return fmt.Errorf("got frame %x %q, want the pong", h, p)
		}
		return nil
	})
}

// onEach runs f on every connection, 256 at a time, within timeout.
func onEach(conns []*Conn, timeout time.Duration, f func(*Conn) error) error {
	deadline := time.Now().Add(timeout)
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	sem := make(chan struct{}, 256)
	for i, c := range conns {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = c.nc.SetDeadline(deadline)
			if err := f(c); err != nil {
				errs[i] = fmt.Errorf("conn %d: %w", i, err)
				return
			}
			_ = c.nc.SetDeadline(time.Time{})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// CloseAll closes the TCP connections without a closing handshake: the
// runner stops the server first, so there is nobody to answer one.
func CloseAll(conns []*Conn) {
	for _, c := range conns {
		if c != nil {
			c.nc.Close()
		}
	}
}

const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseStop
)

// Run drives the closed loop on conns. measureStart and measureEnd run on the
// controlling goroutine right at the edges of the measured window (the runner
// samples the server's CPU there).
func Run(conns []*Conn, cfg Config, measureStart, measureEnd func()) (Result, error) {
	var phase atomic.Int32
	base := time.Now()
	hardDeadline := base.Add(cfg.Warmup + cfg.Duration + 10*time.Second)
	perConnMax := max(cfg.MaxMsgs/int64(len(conns)), 1)
	perConnSamples := max(cfg.MaxSamples/len(conns), 16)
	counts := make([]int64, len(conns))
	samples := make([][]int64, len(conns))
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.loop(cfg.InFlight, perConnMax, perConnSamples, &phase, base, hardDeadline, &counts[i], &samples[i])
		}()
	}
	time.Sleep(cfg.Warmup)
	measureStart()
	start := time.Now()
	phase.Store(phaseMeasure)
	time.Sleep(cfg.Duration)
	phase.Store(phaseStop)
	elapsed := time.Since(start)
	measureEnd()
	wg.Wait()

	var res Result
	res.Elapsed = elapsed
	var all []int64
	for i := range conns {
		res.Msgs += counts[i]
		all = append(all, samples[i]...)
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	if len(all) == 0 {
		return res, errors.New("no message completed in the measured window")
	}
	slices.Sort(all)
	res.P50 = time.Duration(all[len(all)/2])
	res.P99 = time.Duration(all[min(len(all)*99/100, len(all)-1)])
	return res, nil
}

func (c *Conn) loop(inFlight int, maxMsgs int64, maxSamples int, phase *atomic.Int32, base time.Time,
	deadline time.Time, count *int64, samples *[]int64) error {
	_ = c.nc.SetDeadline(deadline)
	defer c.nc.SetDeadline(time.Time{})
	ring := make([]int64, inFlight) // send times, FIFO: echoes come back in order
	head, outstanding := 0, 0
	var sent int64
	rng := uint64(time.Now().UnixNano()) | 1
	seen := 0
	for outstanding < inFlight && sent < maxMsgs {
		ring[(head+outstanding)%inFlight] = int64(time.Since(base))
		outstanding++
		sent++
	}
	if _, err := c.nc.Write(c.batch[:outstanding*len(c.frame)]); err != nil {
		return err
	}
	for outstanding > 0 {
		if err := c.readMessage(); err != nil {
			return err
		}
		now := int64(time.Since(base))
		rtt := now - ring[head]
		head = (head + 1) % inFlight
		outstanding--
		p := phase.Load()
		if p == phaseMeasure {
			*count++
			// Reservoir sampling keeps a uniform sample of the window.
			seen++
			if len(*samples) < maxSamples {
				*samples = append(*samples, rtt)
			} else {
				rng ^= rng << 13
				rng ^= rng >> 7
				rng ^= rng << 17
				if j, _ := bits.Mul64(rng, uint64(seen)); j < uint64(maxSamples) {
					(*samples)[j] = rtt
				}
			}
		}
		if p == phaseStop || sent >= maxMsgs {
			continue // drain what is in flight
		}
		ring[(head+outstanding)%inFlight] = int64(time.Since(base))
		outstanding++
		sent++
		if _, err := c.nc.Write(c.frame); err != nil {
			return err
		}
	}
	return nil
}
