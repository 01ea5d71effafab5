//go:build linux

// Command floor-epoll is the bench's floor on one epoll thread: no
// goroutine per connection, one shared read buffer, one read and (at most)
// one write per batch of frames, no validation. A connection holds memory
// only for a frame that arrived in part or output the socket did not take.
// It shows what an event-loop server costs in the kernel before any
// library work.
package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"github.com/latchws/latch/bench/internal/floor"
	"github.com/latchws/latch/bench/internal/srvutil"
)

// conn is one connection's state; nil slices while idle.
type conn struct {
	upgraded bool
	head     []byte // the request head while it arrives
	echo     floor.Echoer
	out      []byte // output the socket did not take yet
}

func main() {
	f := srvutil.Parse()
	lfd, err := listen(f.Addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor-epoll:", err)
		os.Exit(1)
	}
	go srvutil.Ready(f.Addr)
	runtime.LockOSThread()
	if err := loop(lfd); err != nil {
		fmt.Fprintln(os.Stderr, "floor-epoll:", err)
		os.Exit(1)
	}
}

func listen(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return -1, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return -1, err
	}
	ip := net.ParseIP(host).To4()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	sa := &syscall.SockaddrInet4{Port: p}
	copy(sa.Addr[:], ip)
	if err := syscall.Bind(fd, sa); err != nil {
		return -1, err
	}
	return fd, syscall.Listen(fd, 4096)
}

func loop(lfd int) error {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, lfd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(lfd)}); err != nil {
		return err
	}
	conns := map[int]*conn{}
	buf := make([]byte, 256<<10) // the one read buffer: a 64 KiB message and its header in one read
	var o floor.Out              // the echo of one read
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(ep, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == lfd {
				accept(ep, lfd, conns)
				continue
			}
			c := conns[fd]
			if c == nil {
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 && !flush(ep, fd, c) {
				drop(fd, conns)
				continue
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				o.Reset()
				if !readable(ep, fd, c, buf, &o) {
					drop(fd, conns)
				}
			}
		}
	}
}

func accept(ep, lfd int, conns map[int]*conn) {
	for {
		fd, _, err := syscall.Accept4(lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN: all taken; anything else: try at the next event
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}); err != nil {
			syscall.Close(fd)
			continue
		}
		conns[fd] = &conn{}
	}
}

// readable reads once into the shared buffer and answers what came; it
// reports false when the connection is done.
func readable(ep, fd int, c *conn, buf []byte, o *floor.Out) bool {
	n, err := syscall.Read(fd, buf)
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return true
	}
	if n <= 0 {
		return false
	}
	in := buf[:n]
	if !c.upgraded {
		c.head = append(c.head, in...)
		end := floor.HeadEnd(c.head)
		if end < 0 {
			return len(c.head) <= 16<<10
		}
		resp := floor.Handshake(c.head[:end])
		if resp == nil {
			return false
		}
		o.Bufs = append(o.Bufs, resp)
		in, c.head, c.upgraded = c.head[end:], nil, true
	}
	c.echo.Echo(o, in)
	o.Close()
	if len(o.Bufs) > 0 {
		if len(c.out) > 0 {
			for _, b := range o.Bufs {
				c.out = append(c.out, b...) // behind what is still pending
			}
		} else if !writeOut(ep, fd, c, o.Bufs) {
			return false
		}
	}
	return !c.echo.Closed
}

var iov []syscall.Iovec // writeOut's vector; one loop thread

// writeOut writes the pieces with writev, keeping what the socket does not
// take (it refers to the shared read buffer) and asking for EPOLLOUT; it
// reports false on an error.
func writeOut(ep, fd int, c *conn, pieces [][]byte) bool {
	for len(pieces) > 0 {
		iov = iov[:0]
		for _, b := range pieces[:min(len(pieces), 1024)] { // IOV_MAX
			if len(b) > 0 {
				v := syscall.Iovec{Base: &b[0]}
				v.SetLen(len(b))
				iov = append(iov, v)
			}
		}
		if len(iov) == 0 {
			return true
		}
		r, _, errno := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch errno {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			r = 0
		default:
			return false
		}
		for k := int(r); k > 0; { // drop what went out
			if k < len(pieces[0]) {
				pieces[0] = pieces[0][k:]
				break
			}
			k -= len(pieces[0])
			pieces = pieces[1:]
		}
		if errno == syscall.EAGAIN {
			for _, b := range pieces {
				c.out = append(c.out, b...)
			}
			return syscall.EpollCtl(ep, syscall.EPOLL_CTL_MOD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT, Fd: int32(fd)}) == nil
		}
		// A short write or more than IOV_MAX pieces: go on with the rest.
	}
	return true
}

// flush writes pending output once the socket is writable again.
func flush(ep, fd int, c *conn) bool {
	pending := c.out
	c.out = nil
	if !writeOut(ep, fd, c, [][]byte{pending}) {
		return false
	}
	if len(c.out) == 0 {
		return syscall.EpollCtl(ep, syscall.EPOLL_CTL_MOD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}) == nil
	}
	return true
}

func drop(fd int, conns map[int]*conn) {
	delete(conns, fd)
	syscall.Close(fd) // closing removes it from the epoll set
}
