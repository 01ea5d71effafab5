package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// poller reads every subscriber connection from one epoll loop. A reading
// goroutine per connection costs two read(2)s per message on this kind of
// machine (the data, then EAGAIN before it parks), and syscalls are what
// the client spends its time on: level-triggered epoll makes it one read
// per wake-up, for many connections per epoll_wait, so the client stays
// well below its CPU while the servers are saturated.
type poller struct {
	epfd int
	mu   sync.Mutex          // guards subs
	subs map[int]*subscriber // by file descriptor
	done chan struct{}
}

func newPoller() (*poller, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	return &poller{epfd: fd, subs: map[int]*subscriber{}, done: make(chan struct{})}, nil
}

// add hands s's socket to the poller, with whatever its handshake reader
// had already buffered.
func (p *poller) add(s *subscriber) error {
	if n := s.c.br.Buffered(); n > 0 {
		b, _ := s.c.br.Peek(n)
		s.rbuf = append(s.rbuf, b...)
	}
	rc, err := s.c.nc.(*net.TCPConn).SyscallConn()
	if err != nil {
		return err
	}
	var fd int
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return err
	}
	s.fd = fd
	p.mu.Lock()
	p.subs[fd] = s
	p.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	return syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
}

// run reads until stop is set (checked every 50 ms) or deadline passes.
func (p *poller) run(base time.Time, h *hist, stop *atomic.Bool, deadline time.Time) {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 256)
	for !stop.Load() && time.Now().Before(deadline) {
		n, err := syscall.EpollWait(p.epfd, events, 50)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			fmt.Fprintln(stderr, "epoll_wait:", err)
			return
		}
		for _, ev := range events[:n] {
			p.mu.Lock()
			s := p.subs[int(ev.Fd)]
			p.mu.Unlock()
			if s == nil || s.err != nil {
				continue
			}
			if err := s.readOnce(base, h); err != nil {
				if !stop.Load() {
					s.err = err
				}
				// Stop watching it; the descriptor stays open until the
				// cell closes every connection.
				_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, s.fd, nil)
				close(s.done)
			}
		}
	}
}

// close stops the loop (run has returned) and the epoll descriptor.
func (p *poller) close() { syscall.Close(p.epfd) }

// readOnce does one read(2) into s's buffer and handles the whole frames
// it completes.
func (s *subscriber) readOnce(base time.Time, h *hist) error {
	if cap(s.rbuf)-len(s.rbuf) < 2048 {
		nb := make([]byte, len(s.rbuf), max(2*cap(s.rbuf), 8192))
		copy(nb, s.rbuf)
		s.rbuf = nb
	}
	n, err := syscall.Read(s.fd, s.rbuf[len(s.rbuf):cap(s.rbuf)])
	if err != nil {
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			return nil
		}
		return err
	}
	if n == 0 {
		return io.EOF
	}
	s.rbuf = s.rbuf[:len(s.rbuf)+n]
	now := int64(time.Since(base))
	b := s.rbuf
	for {
		payload, op, fin, size, err := nextFrame(b)
		if err != nil {
			return err
		}
		if size == 0 {
			break // incomplete
		}
		b = b[size:]
		switch {
		case op == 0x8:
			code := 1005
			if len(payload) >= 2 {
				code = int(binary.BigEndian.Uint16(payload))
			}
			return errClosed{code}
		case op == 0x9:
			if err := s.c.writeFrame(0xA, payload); err != nil {
				return err
			}
		case op == 0xA:
		case op == 0x0 || op == 0x1 || op == 0x2:
			s.msg = append(s.msg, payload...)
			if fin {
				err := s.handle(s.msg, now, h)
				s.msg = s.msg[:0]
				if err != nil {
					return err
				}
			}
		}
	}
	s.rbuf = s.rbuf[:copy(s.rbuf, b)]
	return nil
}

// nextFrame parses the server frame at the start of b: size 0 means b
// does not hold a whole frame yet.
func nextFrame(b []byte) (payload []byte, op byte, fin bool, size int, err error) {
	if len(b) < 2 {
		return nil, 0, false, 0, nil
	}
	if b[1]&0x80 != 0 {
		return nil, 0, false, 0, errors.New("server frame is masked") // RFC 6455 §5.1
	}
	hl, n := 2, uint64(b[1]&0x7f)
	switch n {
	case 126:
		if len(b) < 4 {
			return nil, 0, false, 0, nil
		}
		hl, n = 4, uint64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		if len(b) < 10 {
			return nil, 0, false, 0, nil
		}
		hl, n = 10, binary.BigEndian.Uint64(b[2:])
	}
	if n > 16<<20 {
		return nil, 0, false, 0, errors.New("frame too large")
	}
	if uint64(len(b)-hl) < n {
		return nil, 0, false, 0, nil
	}
	end := hl + int(n)
	return b[hl:end], b[0] & 0x0f, b[0]&0x80 != 0, end, nil
}
