package frame

// Error is a protocol violation and the close code to fail the connection with (RFC 6455 §7.4.1).
type Error struct {
	Code   uint16
	Reason string
}

func (e *Error) Error() string { return "websocket: protocol error: " + e.Reason }

// The violations this package detects. They are shared values: callers compare codes, not pointers.
var (
	errReservedOpcode    = &Error{CloseProtocolError, "reserved opcode"}                      // RFC 6455 §5.2
	errFragmentedControl = &Error{CloseProtocolError, "fragmented control frame"}             // §5.5
	errControlTooLong    = &Error{CloseProtocolError, "control frame payload over 125 bytes"} // §5.5
	errLengthOverflow    = &Error{CloseProtocolError, "payload length has the high bit set"}  // §5.2
	errCloseOneByte      = &Error{CloseProtocolError, "close payload of 1 byte"}              // §5.5.1
	errCloseCode         = &Error{CloseProtocolError, "invalid close code"}                   // §7.4
	errCloseReason       = &Error{CloseInvalidPayload, "close reason is not valid UTF-8"}     // §8.1
)
