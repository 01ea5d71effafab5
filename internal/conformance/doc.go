// Package conformance holds an Autobahn-style conformance suite for the
// websocket package. All of it lives in _test.go files: a raw TCP peer that
// crafts frames byte by byte drives Latch's server and client through
// table-driven cases (see README.md). Nothing here is imported by anything.
package conformance
