// Package web holds the embedded demo page served by the latch server at "/",
// and latch.js, the JavaScript client it is built on (also served at /latch.js).
package web

import "embed"

// FS holds the demo page: index.html, app.js, style.css and latch.js, all
// local (no CDN).
//
//go:embed index.html app.js style.css latch.js
var FS embed.FS
