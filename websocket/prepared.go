package websocket

import (
	"errors"
	"sync"

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
	compressed map[int][]byte // by deflater kind (level, window): deflated payload, without context takeover
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

// deflated returns the message compressed by a deflater of kind (see
// deflaterKind), without context takeover, encoded once per kind for every
// connection: a connection with a smaller window gets its own encoding.
func (pm *PreparedMessage) deflated(kind int) []byte {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	if b, ok := pm.compressed[kind]; ok {
		return b
	}
	if pm.compressed == nil {
		pm.compressed = make(map[int][]byte, 1)
	}
	b := deflateBytes(kind, pm.data)
	pm.compressed[kind] = b
	return b
}

// WritePreparedMessage writes prepared message into connection. A server
// writes the same encoded frame to every connection; a compressed message
// is deflated once per compression level.
func (c *Conn) WritePreparedMessage(pm *PreparedMessage) error {
	if pm == nil {
		return errors.New("websocket: nil PreparedMessage")
	}
	if isControl(pm.messageType) {
		return c.WriteMessage(pm.messageType, pm.data)
	}
	if c.compressing(len(pm.data)) {
		if c.deflate.writeTakeover {
			// The encoding depends on this connection's history.
			return c.WriteMessage(pm.messageType, pm.data)
		}
		payload := pm.deflated(c.writeKind())
		c.msgMu.Lock()
		defer c.msgMu.Unlock()
		return c.writeData(frame.Opcode(pm.messageType), true, payload)
	}
	if !c.isServer {
		c.msgMu.Lock()
		defer c.msgMu.Unlock()
		return c.writeData(frame.Opcode(pm.messageType), false, pm.data)
	}
	b := pm.frame()
	c.msgMu.Lock()
	defer c.msgMu.Unlock()
	c.lockFrame()
	defer c.unlockFrame()
	if err := c.writeState(); err != nil {
		return err
	}
	return c.writeRaw(b)
}
