package websocket_test

// Compile-time proof that this package is a drop-in replacement for
// github.com/gorilla/websocket v1.5.3: every exported member of gorilla's API
// is assigned to a variable of the exact type gorilla gives it, so if this
// file compiles, a gorilla program compiles after changing its import path.
// The types are written out by hand from gorilla's source; gorilla itself is
// deliberately not imported, so this test does not depend on it.
//
// Fields are checked through pointers (&v.Field assigned to *T): pointer types
// are only assignable when the field's type is identical to T, which is
// stricter than plain assignability (a named func type would slip through).

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/latchws/latch/websocket"
)

// ---- client.go ----

var (
	_ *error = &websocket.ErrBadHandshake

	_ func(netConn net.Conn, u *url.URL, requestHeader http.Header, readBufSize, writeBufSize int) (*websocket.Conn, *http.Response, error) = websocket.NewClient

	_ **websocket.Dialer = &websocket.DefaultDialer

	_ func(*websocket.Dialer, string, http.Header) (*websocket.Conn, *http.Response, error)                  = (*websocket.Dialer).Dial
	_ func(*websocket.Dialer, context.Context, string, http.Header) (*websocket.Conn, *http.Response, error) = (*websocket.Dialer).DialContext

	// Method values, the way gorilla programs call them.
	_ func(string, http.Header) (*websocket.Conn, *http.Response, error)                  = websocket.DefaultDialer.Dial
	_ func(context.Context, string, http.Header) (*websocket.Conn, *http.Response, error) = (&websocket.Dialer{}).DialContext
)

// Every gorilla Dialer field, each set to a value of its exact type.
var (
	compatNetDial           func(network, addr string) (net.Conn, error)
	compatNetDialContext    func(ctx context.Context, network, addr string) (net.Conn, error)
	compatNetDialTLSContext func(ctx context.Context, network, addr string) (net.Conn, error)
	compatProxy             func(*http.Request) (*url.URL, error)
	compatTLSConfig         *tls.Config
	compatTimeout           time.Duration
	compatBufSize           int
	compatBufferPool        websocket.BufferPool
	compatSubprotocols      []string
	compatBool              bool
	compatJar               http.CookieJar

	compatDialer = websocket.Dialer{
		NetDial:           compatNetDial,
		NetDialContext:    compatNetDialContext,
		NetDialTLSContext: compatNetDialTLSContext,
		Proxy:             compatProxy,
		TLSClientConfig:   compatTLSConfig,
		HandshakeTimeout:  compatTimeout,
		ReadBufferSize:    compatBufSize,
		WriteBufferSize:   compatBufSize,
		WriteBufferPool:   compatBufferPool,
		Subprotocols:      compatSubprotocols,
		EnableCompression: compatBool,
		Jar:               compatJar,
	}

	_ *func(network, addr string) (net.Conn, error)                      = &compatDialer.NetDial
	_ *func(ctx context.Context, network, addr string) (net.Conn, error) = &compatDialer.NetDialContext
	_ *func(ctx context.Context, network, addr string) (net.Conn, error) = &compatDialer.NetDialTLSContext
	_ *func(*http.Request) (*url.URL, error)                             = &compatDialer.Proxy
	_ **tls.Config                                                       = &compatDialer.TLSClientConfig
	_ *time.Duration                                                     = &compatDialer.HandshakeTimeout
	_ *int                                                               = &compatDialer.ReadBufferSize
	_ *int                                                               = &compatDialer.WriteBufferSize
	_ *websocket.BufferPool                                              = &compatDialer.WriteBufferPool
	_ *[]string                                                          = &compatDialer.Subprotocols
	_ *bool                                                              = &compatDialer.EnableCompression
	_ *http.CookieJar                                                    = &compatDialer.Jar
)

// ---- conn.go ----

// Constants are untyped in gorilla: each must be usable both as an int and
// as a narrower integer type, which only an untyped constant allows.
var (
	_ int    = websocket.CloseNormalClosure
	_ uint16 = websocket.CloseNormalClosure
	_ int    = websocket.CloseGoingAway
	_ uint16 = websocket.CloseGoingAway
	_ int    = websocket.CloseProtocolError
	_ uint16 = websocket.CloseProtocolError
	_ int    = websocket.CloseUnsupportedData
	_ uint16 = websocket.CloseUnsupportedData
	_ int    = websocket.CloseNoStatusReceived
	_ uint16 = websocket.CloseNoStatusReceived
	_ int    = websocket.CloseAbnormalClosure
	_ uint16 = websocket.CloseAbnormalClosure
	_ int    = websocket.CloseInvalidFramePayloadData
	_ uint16 = websocket.CloseInvalidFramePayloadData
	_ int    = websocket.ClosePolicyViolation
	_ uint16 = websocket.ClosePolicyViolation
	_ int    = websocket.CloseMessageTooBig
	_ uint16 = websocket.CloseMessageTooBig
	_ int    = websocket.CloseMandatoryExtension
	_ uint16 = websocket.CloseMandatoryExtension
	_ int    = websocket.CloseInternalServerErr
	_ uint16 = websocket.CloseInternalServerErr
	_ int    = websocket.CloseServiceRestart
	_ uint16 = websocket.CloseServiceRestart
	_ int    = websocket.CloseTryAgainLater
	_ uint16 = websocket.CloseTryAgainLater
	_ int    = websocket.CloseTLSHandshake
	_ uint16 = websocket.CloseTLSHandshake

	_ int  = websocket.TextMessage
	_ byte = websocket.TextMessage
	_ int  = websocket.BinaryMessage
	_ byte = websocket.BinaryMessage
	_ int  = websocket.CloseMessage
	_ byte = websocket.CloseMessage
	_ int  = websocket.PingMessage
	_ byte = websocket.PingMessage
	_ int  = websocket.PongMessage
	_ byte = websocket.PongMessage
)

var (
	_ *error = &websocket.ErrCloseSent
	_ *error = &websocket.ErrReadLimit

	compatCloseError = websocket.CloseError{Code: compatBufSize, Text: compatString}
	compatString     string

	_ *int                                  = &compatCloseError.Code
	_ *string                               = &compatCloseError.Text
	_ func(*websocket.CloseError) string    = (*websocket.CloseError).Error
	_ error                                 = &websocket.CloseError{}
	_ func(err error, codes ...int) bool    = websocket.IsCloseError
	_ func(err error, expected ...int) bool = websocket.IsUnexpectedCloseError

	// BufferPool has exactly gorilla's method set: assignable both ways.
	_ websocket.BufferPool = (interface {
		Get() interface{}
		Put(interface{})
	})(nil)
	_ interface {
		Get() interface{}
		Put(interface{})
	} = websocket.BufferPool(nil)
	_ websocket.BufferPool                    = &sync.Pool{}
	_ func(websocket.BufferPool) interface{}  = websocket.BufferPool.Get
	_ func(websocket.BufferPool, interface{}) = websocket.BufferPool.Put

	_ *websocket.Conn = nil

	_ func(*websocket.Conn) string                             = (*websocket.Conn).Subprotocol
	_ func(*websocket.Conn) error                              = (*websocket.Conn).Close
	_ func(*websocket.Conn) net.Addr                           = (*websocket.Conn).LocalAddr
	_ func(*websocket.Conn) net.Addr                           = (*websocket.Conn).RemoteAddr
	_ func(*websocket.Conn, int, []byte, time.Time) error      = (*websocket.Conn).WriteControl
	_ func(*websocket.Conn, int) (io.WriteCloser, error)       = (*websocket.Conn).NextWriter
	_ func(*websocket.Conn, *websocket.PreparedMessage) error  = (*websocket.Conn).WritePreparedMessage
	_ func(*websocket.Conn, int, []byte) error                 = (*websocket.Conn).WriteMessage
	_ func(*websocket.Conn, time.Time) error                   = (*websocket.Conn).SetWriteDeadline
	_ func(*websocket.Conn) (int, io.Reader, error)            = (*websocket.Conn).NextReader
	_ func(*websocket.Conn) (int, []byte, error)               = (*websocket.Conn).ReadMessage
	_ func(*websocket.Conn, time.Time) error                   = (*websocket.Conn).SetReadDeadline
	_ func(*websocket.Conn, int64)                             = (*websocket.Conn).SetReadLimit
	_ func(*websocket.Conn) func(code int, text string) error  = (*websocket.Conn).CloseHandler
	_ func(*websocket.Conn, func(code int, text string) error) = (*websocket.Conn).SetCloseHandler
	_ func(*websocket.Conn) func(appData string) error         = (*websocket.Conn).PingHandler
	_ func(*websocket.Conn, func(appData string) error)        = (*websocket.Conn).SetPingHandler
	_ func(*websocket.Conn) func(appData string) error         = (*websocket.Conn).PongHandler
	_ func(*websocket.Conn, func(appData string) error)        = (*websocket.Conn).SetPongHandler
	_ func(*websocket.Conn) net.Conn                           = (*websocket.Conn).NetConn
	_ func(*websocket.Conn) net.Conn                           = (*websocket.Conn).UnderlyingConn
	_ func(*websocket.Conn, bool)                              = (*websocket.Conn).EnableWriteCompression
	_ func(*websocket.Conn, int) error                         = (*websocket.Conn).SetCompressionLevel
	_ func(closeCode int, text string) []byte                  = websocket.FormatCloseMessage
)

// ---- join.go ----

var _ func(c *websocket.Conn, term string) io.Reader = websocket.JoinMessages

// ---- json.go ----

var (
	_ func(c *websocket.Conn, v interface{}) error = websocket.WriteJSON
	_ func(*websocket.Conn, interface{}) error     = (*websocket.Conn).WriteJSON
	_ func(c *websocket.Conn, v interface{}) error = websocket.ReadJSON
	_ func(*websocket.Conn, interface{}) error     = (*websocket.Conn).ReadJSON
)

// ---- prepared.go ----

var (
	_ *websocket.PreparedMessage                                             = &websocket.PreparedMessage{}
	_ func(messageType int, data []byte) (*websocket.PreparedMessage, error) = websocket.NewPreparedMessage
)

// ---- server.go ----

var (
	// Value receiver, as in gorilla: err.(websocket.HandshakeError) works.
	_ error                                 = websocket.HandshakeError{}
	_ error                                 = &websocket.HandshakeError{}
	_ func(websocket.HandshakeError) string = websocket.HandshakeError.Error

	compatUpgradeError func(w http.ResponseWriter, r *http.Request, status int, reason error)
	compatCheckOrigin  func(r *http.Request) bool

	// Every gorilla Upgrader field, each set to a value of its exact type.
	compatUpgrader = websocket.Upgrader{
		HandshakeTimeout:  compatTimeout,
		ReadBufferSize:    compatBufSize,
		WriteBufferSize:   compatBufSize,
		WriteBufferPool:   compatBufferPool,
		Subprotocols:      compatSubprotocols,
		Error:             compatUpgradeError,
		CheckOrigin:       compatCheckOrigin,
		EnableCompression: compatBool,
	}

	_ *time.Duration                                                          = &compatUpgrader.HandshakeTimeout
	_ *int                                                                    = &compatUpgrader.ReadBufferSize
	_ *int                                                                    = &compatUpgrader.WriteBufferSize
	_ *websocket.BufferPool                                                   = &compatUpgrader.WriteBufferPool
	_ *[]string                                                               = &compatUpgrader.Subprotocols
	_ *func(w http.ResponseWriter, r *http.Request, status int, reason error) = &compatUpgrader.Error
	_ *func(r *http.Request) bool                                             = &compatUpgrader.CheckOrigin
	_ *bool                                                                   = &compatUpgrader.EnableCompression

	_ func(*websocket.Upgrader, http.ResponseWriter, *http.Request, http.Header) (*websocket.Conn, error) = (*websocket.Upgrader).Upgrade
	_ func(http.ResponseWriter, *http.Request, http.Header) (*websocket.Conn, error)                      = (&websocket.Upgrader{}).Upgrade

	_ func(w http.ResponseWriter, r *http.Request, responseHeader http.Header, readBufSize, writeBufSize int) (*websocket.Conn, error) = websocket.Upgrade
	_ func(r *http.Request) []string                                                                                                   = websocket.Subprotocols
	_ func(r *http.Request) bool                                                                                                       = websocket.IsWebSocketUpgrade
)

// TestConstantsMatchGorilla checks every exported constant against its value
// in gorilla v1.5.3 (close codes: RFC 6455 §7.4.1; opcodes: RFC 6455 §5.2).
func TestConstantsMatchGorilla(t *testing.T) {
	tests := []struct {
		name      string
		got, want int
	}{
		{"CloseNormalClosure", websocket.CloseNormalClosure, 1000},
		{"CloseGoingAway", websocket.CloseGoingAway, 1001},
		{"CloseProtocolError", websocket.CloseProtocolError, 1002},
		{"CloseUnsupportedData", websocket.CloseUnsupportedData, 1003},
		{"CloseNoStatusReceived", websocket.CloseNoStatusReceived, 1005},
		{"CloseAbnormalClosure", websocket.CloseAbnormalClosure, 1006},
		{"CloseInvalidFramePayloadData", websocket.CloseInvalidFramePayloadData, 1007},
		{"ClosePolicyViolation", websocket.ClosePolicyViolation, 1008},
		{"CloseMessageTooBig", websocket.CloseMessageTooBig, 1009},
		{"CloseMandatoryExtension", websocket.CloseMandatoryExtension, 1010},
		{"CloseInternalServerErr", websocket.CloseInternalServerErr, 1011},
		{"CloseServiceRestart", websocket.CloseServiceRestart, 1012},
		{"CloseTryAgainLater", websocket.CloseTryAgainLater, 1013},
		{"CloseTLSHandshake", websocket.CloseTLSHandshake, 1015},
		{"TextMessage", websocket.TextMessage, 1},
		{"BinaryMessage", websocket.BinaryMessage, 2},
		{"CloseMessage", websocket.CloseMessage, 8},
		{"PingMessage", websocket.PingMessage, 9},
		{"PongMessage", websocket.PongMessage, 10},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, gorilla has %d", tt.name, tt.got, tt.want)
		}
	}
}

// TestCompatGorillaErrorText checks the error strings gorilla programs are
// known to compare or log.
func TestCompatGorillaErrorText(t *testing.T) {
	sentinels := []struct {
		name string
		err  error
		want string
	}{
		{"ErrBadHandshake", websocket.ErrBadHandshake, "websocket: bad handshake"},
		{"ErrCloseSent", websocket.ErrCloseSent, "websocket: close sent"},
		{"ErrReadLimit", websocket.ErrReadLimit, "websocket: read limit exceeded"},
	}
	for _, s := range sentinels {
		if s.err == nil {
			t.Errorf("%s is nil", s.name)
			continue
		}
		if got := s.err.Error(); got != s.want {
			t.Errorf("%s.Error() = %q, gorilla has %q", s.name, got, s.want)
		}
	}

	closeErrs := []struct {
		err  *websocket.CloseError
		want string
	}{
		{&websocket.CloseError{Code: 1000}, "websocket: close 1000 (normal)"},
		{&websocket.CloseError{Code: 1001, Text: "bye"}, "websocket: close 1001 (going away): bye"},
		{&websocket.CloseError{Code: 1006, Text: "unexpected EOF"}, "websocket: close 1006 (abnormal closure): unexpected EOF"},
		{&websocket.CloseError{Code: 1015}, "websocket: close 1015 (TLS handshake error)"},
		{&websocket.CloseError{Code: 4000, Text: "app"}, "websocket: close 4000: app"},
	}
	for _, c := range closeErrs {
		if got := c.err.Error(); got != c.want {
			t.Errorf("CloseError{%d, %q}.Error() = %q, gorilla has %q", c.err.Code, c.err.Text, got, c.want)
		}
	}
}

// TestCompatGorillaHelpers checks the behaviour of gorilla's exported helpers
// that a ported program relies on.
func TestCompatGorillaHelpers(t *testing.T) {
	// RFC 6455 §5.5.1: two-byte big-endian code, then the UTF-8 reason.
	if got, want := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "ok"), []byte{0x03, 0xe8, 'o', 'k'}; !bytes.Equal(got, want) {
		t.Errorf("FormatCloseMessage(1000, \"ok\") = %x, want %x", got, want)
	}
	// 1005 must never be sent (RFC 6455 §7.4.1): gorilla returns an empty, non-nil body.
	if got := websocket.FormatCloseMessage(websocket.CloseNoStatusReceived, ""); got == nil || len(got) != 0 {
		t.Errorf("FormatCloseMessage(1005, \"\") = %#v, want empty non-nil slice", got)
	}

	ce := &websocket.CloseError{Code: websocket.CloseGoingAway}
	if !websocket.IsCloseError(ce, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
		t.Error("IsCloseError(1001, 1000, 1001) = false, want true")
	}
	if websocket.IsCloseError(ce, websocket.CloseNormalClosure) {
		t.Error("IsCloseError(1001, 1000) = true, want false")
	}
	if websocket.IsCloseError(io.EOF, websocket.CloseNormalClosure) {
		t.Error("IsCloseError(io.EOF, 1000) = true, want false")
	}
	if websocket.IsUnexpectedCloseError(ce, websocket.CloseGoingAway) {
		t.Error("IsUnexpectedCloseError(1001, 1001) = true, want false")
	}
	if !websocket.IsUnexpectedCloseError(ce, websocket.CloseNormalClosure) {
		t.Error("IsUnexpectedCloseError(1001, 1000) = false, want true")
	}
	if websocket.IsUnexpectedCloseError(io.EOF) {
		t.Error("IsUnexpectedCloseError(io.EOF) = true, want false")
	}

	// Gorilla programs type-assert the concrete error types.
	var err error = &websocket.CloseError{Code: 1000}
	if _, ok := err.(*websocket.CloseError); !ok {
		t.Error("*CloseError does not survive a type assertion")
	}
	var hErr websocket.HandshakeError
	if !errors.As(fmt.Errorf("wrapped: %w", websocket.HandshakeError{}), &hErr) {
		t.Error("errors.As cannot find a wrapped HandshakeError value")
	}

	if websocket.DefaultDialer == nil {
		t.Fatal("DefaultDialer is nil")
	}
	if got := websocket.DefaultDialer.HandshakeTimeout; got != 45*time.Second {
		t.Errorf("DefaultDialer.HandshakeTimeout = %v, gorilla has 45s", got)
	}
	if websocket.DefaultDialer.Proxy == nil {
		t.Error("DefaultDialer.Proxy is nil, gorilla uses http.ProxyFromEnvironment")
	}

	r, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	if websocket.IsWebSocketUpgrade(r) {
		t.Error("IsWebSocketUpgrade(plain GET) = true, want false")
	}
	if got := websocket.Subprotocols(r); got != nil {
		t.Errorf("Subprotocols(no header) = %q, want nil", got)
	}
	r.Header.Set("Connection", "keep-alive, Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Protocol", " chat , superchat")
	if !websocket.IsWebSocketUpgrade(r) {
		t.Error("IsWebSocketUpgrade(Connection: keep-alive, Upgrade) = false, want true")
	}
	if got, want := fmt.Sprintf("%q", websocket.Subprotocols(r)), `["chat" "superchat"]`; got != want {
		t.Errorf("Subprotocols = %s, want %s", got, want)
	}
}
