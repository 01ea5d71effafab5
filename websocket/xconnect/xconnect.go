// Package xconnect turns on HTTP/2 extended CONNECT (RFC 8441) in Go's
// net/http for the program that imports it:
//
//	import _ "github.com/latchws/latch/websocket/xconnect"
//
// Go 1.26 implements extended CONNECT, the way browsers open a WebSocket
// over HTTP/2, behind GODEBUG=http2xconnect=1. net/http reads that setting
// with os.Getenv in its own init function, so neither os.Setenv in main nor
// a //go:debug directive reaches it. This package sets it from its init
// function, which runs before net/http's: it imports only os and strings,
// and Go initialises, among the packages whose imports are ready, the one
// whose import path sorts first ("github.com/..." before "net/http"; Go spec,
// "Package initialization").
//
// Importing the package is the same as starting the program with
// GODEBUG=http2xconnect=1. It changes every http.Server and http.Transport
// of the process: servers advertise SETTINGS_ENABLE_CONNECT_PROTOCOL, and a
// browser then opens its WebSockets to them as HTTP/2 streams. Every handler
// that upgrades WebSockets must then accept them (websocket.Upgrader does)
// and must not return before the connection is closed (see the websocket
// package's "HTTP/2" section). GODEBUG=http2xconnect=0 in the environment
// turns it back off.
package xconnect

import (
	"os"
	"strings"
)

const setting = "http2xconnect"

func init() {
	env := os.Getenv("GODEBUG")
	if strings.Contains(env, setting+"=") {
		return // the environment decides
	}
	if env != "" {
		env += ","
	}
	os.Setenv("GODEBUG", env+setting+"=1")
}

// Enabled reports whether net/http saw extended CONNECT turned on, by the
// test it makes itself (on when the GODEBUG variable holds
// "http2xconnect=1").
func Enabled() bool { return strings.Contains(os.Getenv("GODEBUG"), setting+"=1") }
