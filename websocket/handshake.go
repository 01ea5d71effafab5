package websocket

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"strings"
)

// acceptKey computes Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2).
func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// validKey reports whether a Sec-WebSocket-Key is 16 bytes in base64
// (RFC 6455 §4.1, item 7).
func validKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}

// headerHasToken reports whether a comma-separated header contains token,
// compared case-insensitively (RFC 9110 §5.6.1, RFC 6455 §4.1).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[http.CanonicalHeaderKey(name)] {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// headerTokens splits a comma-separated header into trimmed, non-empty tokens.
func headerTokens(h http.Header, name string) []string {
	var out []string
	for _, v := range h[http.CanonicalHeaderKey(name)] {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// isToken reports whether s is an RFC 9110 token (what a subprotocol is).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// IsWebSocketUpgrade reports whether the client requested an upgrade to the
// WebSocket protocol.
func IsWebSocketUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

// Subprotocols returns the subprotocols requested by the client in the
// Sec-WebSocket-Protocol header.
func Subprotocols(r *http.Request) []string {
	return headerTokens(r.Header, "Sec-WebSocket-Protocol")
}
