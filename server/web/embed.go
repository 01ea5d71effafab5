// Package web holds the embedded demo page served by the latch server at "/".
package web

import "embed"

// FS holds the demo page: index.html, app.js and style.css, all local (no CDN).
//
//go:embed index.html app.js style.css
var FS embed.FS
