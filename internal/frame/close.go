package frame

import (
	"encoding/binary"

	"github.com/latchws/latch/internal/utf8stream"
)

// Close codes and payloads, RFC 6455 §5.5.1, §7.4.
const (
	CloseNormal             = 1000
	CloseGoingAway          = 1001
	CloseProtocolError      = 1002
	CloseUnsupportedData    = 1003
	CloseNoStatus           = 1005 // never sent: stands for "the close frame had no code"
	CloseAbnormal           = 1006 // never sent: the connection dropped without a close frame
	CloseInvalidPayload     = 1007
	ClosePolicyViolation    = 1008
	CloseTooBig             = 1009
	CloseMandatoryExtension = 1010
	CloseInternalError      = 1011
	CloseTLSHandshake       = 1015 // never sent
)

// ValidReceivedCode reports whether code may appear in a received close frame: 1000-1003, 1007-1014,
// 3000-4999 (1004, 1005, 1006, 1015 and everything else are invalid on the wire).
func ValidReceivedCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003:
		return true
	case code >= 1007 && code <= 1014: // 1012-1014 are registered with IANA (RFC 6455 §11.7)
		return true
	case code >= 3000 && code <= 4999: // libraries/frameworks and private use, RFC 6455 §7.4.2
		return true
	}
	return false
}

// ParseClose parses a close frame payload: empty → (CloseNoStatus, "", nil); 1 byte → *Error 1002; invalid
// code → *Error 1002; reason not UTF-8 → *Error 1007 (use utf8stream.Valid).
func ParseClose(p []byte) (code uint16, reason string, err error) {
	switch len(p) {
	case 0:
		return CloseNoStatus, "", nil
	case 1:
		return 0, "", errCloseOneByte
	}
	code = binary.BigEndian.Uint16(p)
	if !ValidReceivedCode(code) {
		return 0, "", errCloseCode
	}
	// RFC 6455 §5.5.1: the reason is UTF-8; §8.1: invalid text fails the connection with 1007.
	if !utf8stream.Valid(p[2:]) {
		return 0, "", errCloseReason
	}
	return code, string(p[2:]), nil
}

// AppendClose appends a close payload (code big-endian + reason); CloseNoStatus → appends nothing.
// The caller keeps the reason short enough for the 125-byte control payload limit (RFC 6455 §5.5).
func AppendClose(dst []byte, code uint16, reason string) []byte {
	if code == CloseNoStatus {
		return dst
	}
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}
