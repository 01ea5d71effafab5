package websocket

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Close codes defined in RFC 6455, section 11.7.
const (
	CloseNormalClosure           = 1000
	CloseGoingAway               = 1001
	CloseProtocolError           = 1002
	CloseUnsupportedData         = 1003
	CloseNoStatusReceived        = 1005
	CloseAbnormalClosure         = 1006
	CloseInvalidFramePayloadData = 1007
	ClosePolicyViolation         = 1008
	CloseMessageTooBig           = 1009
	CloseMandatoryExtension      = 1010
	CloseInternalServerErr       = 1011
	CloseServiceRestart          = 1012
	CloseTryAgainLater           = 1013
	CloseTLSHandshake            = 1015
)

// The message types are defined in RFC 6455, section 11.8.
const (
	// TextMessage denotes a text data message. The text message payload is
	// interpreted as UTF-8 encoded text data and is validated as such.
	TextMessage = 1

	// BinaryMessage denotes a binary data message.
	BinaryMessage = 2

	// CloseMessage denotes a close control message. The optional message
	// payload contains a numeric code and text. Use [FormatCloseMessage] to
	// build it.
	CloseMessage = 8

	// PingMessage denotes a ping control message. The optional message payload
	// is UTF-8 encoded text.
	PingMessage = 9

	// PongMessage denotes a pong control message. The optional message payload
	// is UTF-8 encoded text.
	PongMessage = 10
)

var (
	// ErrBadHandshake is returned by the dialer when the server's response to
	// the opening handshake is not valid. A non-nil *http.Response is returned
	// with it when the server answered with HTTP.
	ErrBadHandshake = errors.New("websocket: bad handshake")

	// ErrCloseSent is returned when the application writes a data message
	// after a close message was sent.
	ErrCloseSent = errors.New("websocket: close sent")

	// ErrReadLimit is returned when reading a message larger than the read
	// limit set for the connection. The peer is sent close 1009.
	ErrReadLimit = errors.New("websocket: read limit exceeded")

	// ErrHeartbeatTimeout is returned by reads when the peer stopped answering
	// the connection's heartbeat pings while a read was waiting for it.
	ErrHeartbeatTimeout = errors.New("websocket: peer did not answer heartbeat")

	// ErrConcurrentRead is returned when a second goroutine reads while a read
	// is in progress: a connection supports one reader at a time.
	ErrConcurrentRead = errors.New("websocket: concurrent read")

	// errInvalidUTF8Write is returned when the application sends a text
	// message that is not valid UTF-8 (RFC 6455 §5.6).
	errInvalidUTF8Write = errors.New("websocket: text message is not valid UTF-8")

	errBadMessageType  = errors.New("websocket: bad message type")
	errControlTooLarge = errors.New("websocket: control frame payload larger than 125 bytes")
	errWriterClosed    = errors.New("websocket: write to closed writer")
	errWriteTimeout    = &netTimeoutError{}
)

// CloseError is returned by reads when the peer sent a close message. Code
// is the status code from the close frame, or [CloseNoStatusReceived] when
// the frame carried none. It is also used to report [CloseAbnormalClosure]
// when the connection ended without a close frame.
type CloseError struct {
	// Code is defined in RFC 6455, section 11.7.
	Code int

	// Text is the optional text payload.
	Text string
}

func (e *CloseError) Error() string {
	s := []byte("websocket: close ")
	s = strconv.AppendInt(s, int64(e.Code), 10)
	switch e.Code {
	case CloseNormalClosure:
		s = append(s, " (normal)"...)
	case CloseGoingAway:
		s = append(s, " (going away)"...)
	case CloseProtocolError:
		s = append(s, " (protocol error)"...)
	case CloseUnsupportedData:
		s = append(s, " (unsupported data)"...)
	case CloseNoStatusReceived:
		s = append(s, " (no status)"...)
	case CloseAbnormalClosure:
		s = append(s, " (abnormal closure)"...)
	case CloseInvalidFramePayloadData:
		s = append(s, " (invalid payload data)"...)
	case ClosePolicyViolation:
		s = append(s, " (policy violation)"...)
	case CloseMessageTooBig:
		s = append(s, " (message too big)"...)
	case CloseMandatoryExtension:
		s = append(s, " (mandatory extension missing)"...)
	case CloseInternalServerErr:
		s = append(s, " (internal server error)"...)
	case CloseTLSHandshake:
		s = append(s, " (TLS handshake error)"...)
	}
	if e.Text != "" {
		s = append(s, ": "...)
		s = append(s, e.Text...)
	}
	return string(s)
}

// IsCloseError reports whether err, or an error it wraps, is a *CloseError
// with one of the given codes.
func IsCloseError(err error, codes ...int) bool {
	var ce *CloseError
	if !errors.As(err, &ce) {
		return false
	}
	for _, code := range codes {
		if ce.Code == code {
			return true
		}
	}
	return false
}

// IsUnexpectedCloseError reports whether err, or an error it wraps, is a
// *CloseError with a code not in the list of expected codes.
func IsUnexpectedCloseError(err error, expectedCodes ...int) bool {
	var ce *CloseError
	if !errors.As(err, &ce) {
		return false
	}
	for _, code := range expectedCodes {
		if ce.Code == code {
			return false
		}
	}
	return true
}

// CloseStatus returns the code of the *CloseError in err's chain, or -1 when
// there is none (the connection did not end with a received close frame).
func CloseStatus(err error) int {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// HandshakeError describes an error with the handshake from the peer.
type HandshakeError struct {
	message string
}

func (e HandshakeError) Error() string { return e.message }

// protocolError is a violation by the peer: the connection is failed with
// code (RFC 6455 §7.1.7) and reads return this error.
type protocolError struct {
	code   int
	reason string
}

func (e *protocolError) Error() string {
	return fmt.Sprintf("websocket: protocol error (close %d): %s", e.code, e.reason)
}

// writeFailedError is the cause of a connection closed because a write
// failed: reads that fail on the closed connection report it.
type writeFailedError struct{ err error }

func (e *writeFailedError) Error() string {
	return "websocket: connection closed after a failed write: " + e.err.Error()
}
func (e *writeFailedError) Unwrap() error { return e.err }

// netTimeoutError reports that a lock or a wait for the peer timed out. It
// matches os.ErrDeadlineExceeded through Is, like the net package's timeouts.
type netTimeoutError struct{}

func (*netTimeoutError) Error() string   { return "websocket: i/o timeout" }
func (*netTimeoutError) Timeout() bool   { return true }
func (*netTimeoutError) Temporary() bool { return true }
func (*netTimeoutError) Is(target error) bool {
	return target == os.ErrDeadlineExceeded
}
