// Command floor-goroutines is the bench's floor on goroutines: one per
// connection, one read and (at most) one write per batch of frames, no
// validation. It shows what a goroutine-per-connection server costs in the
// kernel and the runtime before any library work.
package main

import (
	"net"
	"sync"

	"github.com/latchws/latch/bench/internal/floor"
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
		go serve(c)
	}
}

var bigBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

func serve(c net.Conn) {
	defer c.Close()
	small := make([]byte, 4096) // what an idle connection holds
	var head []byte             // the request head while it arrives
	upgraded := false
	var e floor.Echoer
	var o floor.Out
	for {
		// A large payload on its way is read in large pieces.
		buf := small
		var big *[]byte
		if e.Left() > uint64(len(small)) {
			big = bigBufs.Get().(*[]byte)
			buf = *big
		}
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		in := buf[:n]
		if !upgraded {
			head = append(head, in...)
			end := floor.HeadEnd(head)
			if end < 0 {
				if len(head) > 16<<10 {
					return
				}
				continue
			}
			resp := floor.Handshake(head[:end])
			if resp == nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
			in, head, upgraded = head[end:], nil, true
		}
		e.Echo(&o, in)
		o.Close()
		if len(o.Bufs) > 0 {
			bufs := net.Buffers(o.Bufs)
			if _, err := bufs.WriteTo(c); err != nil { // one writev
				return
			}
		}
		o.Reset()
		if big != nil {
			bigBufs.Put(big)
		}
		if e.Closed {
			return
		}
	}
}
