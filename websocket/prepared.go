package websocket

import (
	"errors"
	"sync"
	"time"

	"github.com/latchws/latch/internal/frame"
	"github.com/latchws/latch/internal/utf8stream"
)

// PreparedMessage caches the encoding of a message for sending it to many
// connections: a server writes the same frame bytes to every connection,
// encoded once. Clients mask each frame with a fresh key, so for them it
// is encoded per write.
type PreparedMessage struct {
	messageType int
	data        []byte

	once        sync.Once
	serverFrame []byte // header + payload, unmasked

	mu         sync.Mutex
	compressed map[int][]byte // by deflater kind (level, window): header + deflated payload, without context takeover
}

// NewPreparedMessage returns an initialized PreparedMessage. You can then
// send it to connection using WritePreparedMessage method. Valid wire
// representation will be calculated lazily only once for a set of current
// connection options.
func NewPreparedMessage(messageType int, data []byte) (*PreparedMessage, error) {
	switch messageType {
	case TextMessage:
		if !utf8stream.Valid(data) {
			return nil, errInvalidUTF8Write
		}
	case BinaryMessage:
	case CloseMessage, PingMessage, PongMessage:
		if len(data) > frame.MaxControlPayload {
			return nil, errControlTooLarge
		}
		if messageType == CloseMessage {
			if err := checkClosePayload(data); err != nil {
				return nil, err
			}
		}
	default:
		return nil, errBadMessageType
	}
	return &PreparedMessage{messageType: messageType, data: data}, nil
}

func (pm *PreparedMessage) frame() []byte {
	pm.once.Do(func() {
		h := frame.Header{Fin: true, Opcode: frame.Opcode(pm.messageType), Length: int64(len(pm.data))}
		b := make([]byte, h.Size()+len(pm.data))
		n := frame.Put(b, &h)
		copy(b[n:], pm.data)
		pm.serverFrame = b
	})
	return pm.serverFrame
}

// deflatedFrame returns the server frame of the message compressed by a
// deflater of kind (see deflaterKind), without context takeover (RSV1 set,
// RFC 7692 §6), encoded once per kind for every connection (a connection
// with a smaller window gets its own encoding); the payload starts at the
// returned offset.
func (pm *PreparedMessage) deflatedFrame(kind int) ([]byte, int) {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if b, ok := pm.compressed[kind]; ok {
		return b, frameHeaderSize(b)
	}
	if pm.compressed == nil {
		pm.compressed = make(map[int][]byte, 1)
	}
	payload := deflateBytes(kind, pm.data)
	h := frame.Header{Fin: true, Rsv1: true, Opcode: frame.Opcode(pm.messageType), Length: int64(len(payload))}
	b := make([]byte, h.Size()+len(payload))
	n := frame.Put(b, &h)
	copy(b[n:], payload)
	pm.compressed[kind] = b
	return b, n
}

// sharedFrame returns the bytes that send pm on c when they are the same
// for every connection like c (a server's, compressed without context
// takeover or not compressed), or nil when c must encode pm itself.
func (c *Conn) sharedFrame(pm *PreparedMessage) []byte {
	switch {
	case !c.isServer || isControl(pm.messageType):
		return nil
	case !c.compressing(len(pm.data)):
		return pm.frame()
	case c.deflate.writeTakeover:
		return nil // the encoding depends on this connection's history
	}
	b, _ := pm.deflatedFrame(c.writeKind())
	return b
}

// WritePreparedMessage writes prepared message into connection. A server
// writes the same encoded frame to every connection; a compressed message
// is deflated once per compression level and window.
func (c *Conn) WritePreparedMessage(pm *PreparedMessage) error {
	if pm == nil {
		return errNilPrepared
	}
	if isControl(pm.messageType) {
		return c.writeControl(pm.messageType, pm.data, time.Time{})
	}
	if c.rd.mem {
		if err := c.engineRoom(); err != nil {
			return err
		}
	}
	c.msgMu.Lock()
	defer c.msgMu.Unlock()
	if b := c.sharedFrame(pm); b != nil {
		return c.writeShared(b)
	}
	return c.writePreparedLocked(pm)
}

// WritePreparedMessages writes the messages in order, as that many calls
// of [Conn.WritePreparedMessage] would, in as few system calls as it can:
// the frames a server encodes once for every connection go out side by
// side, in one writev (on a connection without a descriptor, such as TLS,
// joined into few writes). A frame this connection must encode itself (a
// client masks each frame; compression with context takeover depends on
// the connection's history) is written on its own, in its place. No other
// message comes between them. On an error, the messages before the one
// that failed may have been sent.
func (c *Conn) WritePreparedMessages(pms []*PreparedMessage) error {
	for _, pm := range pms {
		if pm == nil {
			return errNilPrepared
		}
	}
	if c.rd.mem {
		if err := c.engineRoom(); err != nil {
			return err
		}
	}
	c.msgMu.Lock()
	defer c.msgMu.Unlock()
	v := writeVectors.Get().(*writeVector)
	defer func() {
		clear(v.batch) // keep no message memory in the pool
		writeVectors.Put(v)
	}()
	for len(pms) > 0 {
		v.batch = append(v.batch[:0], nil) // room for held frames
		n := 0
		for ; n < len(pms); n++ {
			b := c.sharedFrame(pms[n])
			if b == nil {
				break
			}
			v.batch = append(v.batch, b)
		}
		if n > 0 {
			c.lockFrame()
			err := c.writeState()
			if err == nil {
				v.bufs = v.batch
				err = c.writeBuffers(v)
			}
			c.unlockFrame()
			if err != nil {
				return err
			}
			pms = pms[n:]
			continue
		}
		var err error
		if isControl(pms[0].messageType) {
			err = c.writeControl(pms[0].messageType, pms[0].data, time.Time{})
		} else {
			err = c.writePreparedLocked(pms[0])
		}
		if err != nil {
			return err
		}
		pms = pms[1:]
	}
	return nil
}

var errNilPrepared = errors.New("websocket: nil PreparedMessage")

// writeShared writes a frame encoded for every connection. The caller
// holds msgMu.
func (c *Conn) writeShared(b []byte) error {
	c.lockFrame()
	defer c.unlockFrame()
	if err := c.writeState(); err != nil {
		return err
	}
	return c.writeRaw(b)
}

// writePreparedLocked writes a data message this connection encodes
// itself. The caller holds msgMu.
func (c *Conn) writePreparedLocked(pm *PreparedMessage) error {
	op := frame.Opcode(pm.messageType)
	if c.compressing(len(pm.data)) {
		if c.deflate.writeTakeover {
			return c.writeCompressed(op, pm.data)
		}
		b, n := pm.deflatedFrame(c.writeKind())
		return c.writeData(op, true, b[n:])
	}
	return c.writeData(op, false, pm.data)
}
