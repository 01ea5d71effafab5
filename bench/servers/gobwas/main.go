// Command gobwas is the gobwas/ws echo server of the bench, written with the
// low-level API as gobwas's README recommends for speed: zero-copy upgrade on
// a raw net.Conn, ws.ReadHeader, ws.Cipher, ws.WriteHeader, and a buffer
// reused across messages.
package main

import (
	"bytes"
	"io"
	"net"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/latchws/latch/bench/internal/srvutil"
)

func main() {
	f := srvutil.Parse()
	ln := srvutil.Listen(f.Addr)
	go srvutil.Ready(f.Addr)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serve(c, f.Compress)
	}
}

func serve(c net.Conn, compress bool) {
	defer c.Close()
	var ext wsflate.Extension
	up := ws.Upgrader{}
	if compress {
		ext = wsflate.Extension{Parameters: wsflate.DefaultParameters}
		up.Negotiate = ext.Negotiate
	}
	if _, err := up.Upgrade(c); err != nil {
		return
	}
	if _, ok := ext.Accepted(); compress && ok {
		serveFlate(c)
		return
	}
	var payload []byte
	var hdr bytes.Buffer
	for {
		h, err := ws.ReadHeader(c)
		if err != nil {
			return
		}
		if h.Length > srvutil.ReadLimit {
			return
		}
		if int64(cap(payload)) < h.Length {
			payload = make([]byte, h.Length)
		}
		p := payload[:h.Length]
		if _, err := io.ReadFull(c, p); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		// Echo frame by frame: a fragmented message comes back fragmented the
		// same way, which RFC 6455 §5.4 allows.
		out := ws.Header{Fin: h.Fin, Rsv: h.Rsv, OpCode: h.OpCode, Length: h.Length}
		switch h.OpCode {
		case ws.OpPing:
			out.OpCode = ws.OpPong
		case ws.OpPong:
			continue
		}
		hdr.Reset()
		_ = ws.WriteHeader(&hdr, out)
		bufs := net.Buffers{hdr.Bytes(), p}
		if _, err := bufs.WriteTo(c); err != nil {
			return
		}
		if h.OpCode == ws.OpClose {
			return
		}
	}
}

// serveFlate echoes with permessage-deflate using gobwas's frame helpers.
// Only unfragmented messages are compressed (the load client never
// fragments).
func serveFlate(c net.Conn) {
	for {
		fr, err := ws.ReadFrame(c)
		if err != nil {
			return
		}
		if fr.Header.Length > srvutil.ReadLimit {
			return
		}
		if fr.Header.Masked {
			ws.Cipher(fr.Payload, fr.Header.Mask, 0)
			fr.Header.Masked = false
		}
		switch fr.Header.OpCode {
		case ws.OpClose:
			_ = ws.WriteFrame(c, fr)
			return
		case ws.OpPing:
			fr.Header.OpCode = ws.OpPong
			_ = ws.WriteFrame(c, fr)
			continue
		case ws.OpPong:
			continue
		}
		if ok, _ := wsflate.IsCompressed(fr.Header); ok {
			if fr, err = wsflate.DecompressFrame(fr); err != nil {
				return
			}
		}
		if fr.Header.Fin && fr.Header.OpCode != ws.OpContinuation {
			if fr, err = wsflate.CompressFrame(fr); err != nil {
				return
			}
		}
		if err := ws.WriteFrame(c, fr); err != nil {
			return
		}
	}
}
