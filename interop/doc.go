// Package interop tests Latch's websocket package against real peers in both
// directions: Node.js ws, headless Chromium, Python websockets,
// gorilla/websocket and coder/websocket, without and with permessage-deflate
// (RFC 7692). Everything lives in the test files;
// see README.md for the matrix and scripts/install-peers.sh for the setup.
package interop
