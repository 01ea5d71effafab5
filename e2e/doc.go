// Package e2e holds end-to-end tests of the latch binary: they build
// cmd/latch, run it as a subprocess on 127.0.0.1 and drive it with Go and
// Node.js ws clients over the pub/sub protocol of docs/protocol.md.
//
// Node.js and the ws module (interop/node) are required when CI=true;
// elsewhere the Node.js clients are skipped with a message when missing.
package e2e
