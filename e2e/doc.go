// Package e2e holds end-to-end tests of the latch binary: they build
// cmd/latch, run it as a subprocess on 127.0.0.1 and drive it with Go and
// Node.js ws clients over the pub/sub protocol of docs/protocol.md, with
// `latch connect` as a scripted client, and with the demo page in two
// headless Chromium tabs through a restart on the same port.
//
// Node.js with the ws module (interop/node) and Chromium (/usr/bin/chromium)
// are required when CI=true; elsewhere the tests that need them are skipped
// with a message when missing.
package e2e
