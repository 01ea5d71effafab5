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

// WritePreparedMessage writes prepared message into connection.
func (c *Conn) WritePreparedMessage(pm *PreparedMessage) error {
	if pm == nil {
		return errors.New("websocket: nil PreparedMessage")
	}
	if isControl(pm.messageType) || !c.isServer {
		return c.WriteMessage(pm.messageType, pm.data)
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
