package conformance

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// RFC 6455 §1.3: the GUID hashed with the key into Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// maxEventBytes bounds what the raw peer buffers per message (largest case
// is 16 MiB + 1 echoed by an implementation without a read limit).
const maxEventBytes = 32 << 20

// peer is the raw side of a connection. isClient says which role the raw
// peer plays, i.e. the implementation under test plays the other one.
type peer struct {
	conn     net.Conn
	br       *bufio.Reader
	isClient bool
	lastKey  *[4]byte
	keys     map[[4]byte]int // client SUT only: how often each key was used

	z   *pmd    // permessage-deflate, when negotiated
	got []event // every event read, for a case's check
	// sutCompressed receives the implementation's Conn.Compressed().
	sutCompressed chan bool
}

// rawClientHandshake opens a WebSocket as a client, by hand (RFC 6455 §4.1),
// offering no extension.
func rawClientHandshake(addr string) (*peer, error) {
	p, ext, err := rawClientHandshakeExt(addr, nil)
	if err == nil && ext != "" {
		p.conn.Close()
		return nil, fmt.Errorf("handshake: server accepted extensions %q that were not offered", ext)
	}
	return p, err
}

// rawClientHandshakeExt sends each of offers as a Sec-WebSocket-Extensions
// line and returns the response's extensions (all lines joined by ", ").
func rawClientHandshakeExt(addr string, offers []string) (*peer, string, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, "", err
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	var nonce [16]byte
	rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := "GET /echo HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n"
	for _, o := range offers {
		req += "Sec-WebSocket-Extensions: " + o + "\r\n"
	}
	if _, err := c.Write([]byte(req + "\r\n")); err != nil {
		c.Close()
		return nil, "", err
	}
	br := bufio.NewReaderSize(c, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		return nil, "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, "", fmt.Errorf("handshake: status %s", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != acceptKey(key) {
		c.Close()
		return nil, "", fmt.Errorf("handshake: Sec-WebSocket-Accept %q, want %q", got, acceptKey(key))
	}
	c.SetDeadline(time.Time{})
	ext := strings.Join(resp.Header.Values("Sec-WebSocket-Extensions"), ", ")
	return &peer{conn: c, br: br, isClient: true}, ext, nil
}

// rawServerHandshakeExt answers with Sec-WebSocket-Extensions: ext (none
// when empty) and returns the client's offer (all lines joined by ", ").
func rawServerHandshakeExt(c net.Conn, ext string) (*peer, string, error) {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReaderSize(c, 64<<10)
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, "", err
	}
	req.Body.Close()
	if req.Method != http.MethodGet ||
		!strings.EqualFold(req.Header.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(req.Header.Get("Connection")), "upgrade") ||
		req.Header.Get("Sec-WebSocket-Version") != "13" {
		return nil, "", fmt.Errorf("bad opening handshake from client: %s %v", req.Method, req.Header)
	}
	key := req.Header.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		return nil, "", fmt.Errorf("bad Sec-WebSocket-Key %q", key)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\n"
	if ext != "" {
		resp += "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	if _, err := c.Write([]byte(resp + "\r\n")); err != nil {
		return nil, "", err
	}
	c.SetDeadline(time.Time{})
	offer := strings.Join(req.Header.Values("Sec-WebSocket-Extensions"), ", ")
	return &peer{conn: c, br: br, isClient: false, keys: map[[4]byte]int{}}, offer, nil
}

// encodeAll encodes frames with the masking the role requires unless a
// frame overrides it.
func (p *peer) encodeAll(frames []frame) []byte {
	var out []byte
	for _, f := range frames {
		masked := p.isClient
		switch f.mask {
		case maskForce:
			masked = true
		case maskNone:
			masked = false
		}
		if f.deflate {
			out = append(out, p.encodeDeflated(f, masked)...)
			continue
		}
		out = append(out, f.encode(masked)...)
	}
	return out
}

// encodeDeflated compresses a message with the peer's context and splits
// the result into f.zfrags frames, RSV1 on the first only (RFC 7692 §6.1).
func (p *peer) encodeDeflated(f frame, masked bool) []byte {
	if p.z == nil {
		panic("case sends a compressed message without permessage-deflate")
	}
	data := p.z.compress(f.payload)
	n := max(f.zfrags, 1)
	size := max((len(data)+n-1)/n, 1)
	var out []byte
	for i, fr := range fragments(f.opcode, data, size) {
		if i == 0 {
			fr.rsv |= 4
		}
		out = append(out, fr.encode(masked)...)
	}
	return out
}

// write sends b whole, or in chunks of chop bytes (Autobahn's "chopped"
// writes); short runs of chunks get a tiny pause so that they really arrive
// as separate segments.
func (p *peer) write(b []byte, chop int) error {
	if chop <= 0 {
		_, err := p.conn.Write(b)
		return err
	}
	pause := len(b)/chop <= 300
	for len(b) > 0 {
		n := min(chop, len(b))
		if _, err := p.conn.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		if pause {
			time.Sleep(100 * time.Microsecond)
		}
	}
	return nil
}

// readFrame reads one frame and checks that the implementation itself
// follows RFC 6455 §5: masking by role, RSV clear, known opcodes, control
// frames short and unfragmented, and a fresh masking key for each frame.
func (p *peer) readFrame() (rframe, error) {
	f, err := readRawFrame(p.br, maxEventBytes)
	if err != nil {
		return f, err
	}
	switch {
	case p.isClient && f.masked:
		return f, errors.New("server under test sent a masked frame (RFC 6455 §5.1)")
	case !p.isClient && !f.masked:
		return f, errors.New("client under test sent an unmasked frame (RFC 6455 §5.1)")
	case f.rsv != 0 && (p.z == nil || f.rsv != 4):
		return f, fmt.Errorf("implementation sent RSV bits %03b (permessage-deflate: %v)", f.rsv, p.z != nil)
	case f.rsv != 0 && (isControl(f.opcode) || f.opcode == opCont):
		// RFC 7692 §6.1: RSV1 only on the first frame of a data message.
		return f, fmt.Errorf("implementation sent RSV1 on a frame with opcode %#x", f.opcode)
	case f.opcode > opBinary && !isControl(f.opcode), f.opcode > opPong:
		return f, fmt.Errorf("implementation sent reserved opcode %#x", f.opcode)
	case isControl(f.opcode) && (!f.fin || len(f.payload) > 125):
		return f, fmt.Errorf("implementation sent a bad control frame (fin=%v, %d bytes)", f.fin, len(f.payload))
	}
	if f.masked {
		// RFC 6455 §5.3: a new, unpredictable key per frame. Random keys
		// repeat back-to-back with probability 2^-32.
		if p.lastKey != nil && *p.lastKey == f.key {
			return f, fmt.Errorf("client under test reused masking key %x on consecutive frames", f.key)
		}
		k := f.key
		p.lastKey = &k
		p.keys[k]++
	}
	return f, nil
}

// readEvent returns the next whole message or control frame.
func (p *peer) readEvent(deadline time.Time) (event, error) {
	p.conn.SetReadDeadline(deadline)
	var msg *event
	for {
		f, err := p.readFrame()
		if err != nil {
			return event{}, err
		}
		switch {
		case f.opcode == opClose:
			ev, err := parseClose(f.payload)
			if err == nil && msg != nil {
				ev.frames = -1 // close arrived in the middle of a message
			}
			return ev, err
		case f.opcode == opPing:
			return event{kind: "ping", data: f.payload}, nil
		case f.opcode == opPong:
			return event{kind: "pong", data: f.payload}, nil
		case f.opcode == opCont && msg == nil:
			return event{}, errors.New("implementation sent a continuation frame with no message started")
		case f.opcode != opCont && msg != nil:
			return event{}, errors.New("implementation started a message inside another one")
		}
		if msg == nil {
			msg = &event{kind: "msg", op: f.opcode, data: []byte{}, comp: f.rsv == 4}
		}
		msg.wire += len(f.payload)
		if len(msg.data)+len(f.payload) > maxEventBytes {
			return event{}, errors.New("implementation sent a message over the test bound")
		}
		msg.data = append(msg.data, f.payload...)
		msg.frames++
		if f.fin {
			if msg.comp {
				out, err := p.z.inflate(msg.data, maxEventBytes)
				if err != nil {
					return event{}, err
				}
				msg.data = out
			}
			return *msg, nil
		}
	}
}

// expectTCPClosed waits for the implementation to close TCP: EOF or a reset
// within the deadline; any further bytes are a failure.
func (p *peer) expectTCPClosed(d time.Duration) error {
	p.conn.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	n, err := p.br.Read(b[:])
	switch {
	case n > 0:
		return fmt.Errorf("implementation sent byte %#x after its close frame", b[0])
	case err == nil:
		return errors.New("read returned nothing and no error")
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF):
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("implementation did not close TCP within %v", d)
	}
	return fmt.Errorf("waiting for TCP close: %w", err)
}
