//go:build linux

package websocket

import (
	"errors"
	"io"
	"iter"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const epollAvailable = true

const (
	// loopBufSize is an event loop's read buffer, shared by all of its
	// connections: one per loop, so it can be large. At 64 KiB a 64 KiB
	// message took two reads and two wake-ups, and the engine spent 1.18×
	// the epoll floor's CPU on it (docs/benchmarks.md).
	loopBufSize = 256 << 10

	// loopTick is how often a loop looks at its connections' clocks:
	// heartbeats, read deadlines and message bounds, write stalls, close
	// timeouts. One pass over a table per loop, no timer per connection.
	loopTick = 250 * time.Millisecond

	// wakeSlot marks the loop's wake-up pipe in epoll events.
	wakeSlot = -1
)

// eventLoop is one epoll instance and the goroutine that waits in it. It
// reads every connection it holds into one buffer and runs the
// connection's reader (the blocking Conn's, fed from that buffer) until it
// needs more input. Level-triggered: a connection is read once per wake-up,
// so one busy peer cannot starve the others.
type eventLoop struct {
	e            *Engine
	epfd         int
	wakeR, wakeW int
	woken        atomic.Bool // a byte is in the wake-up pipe
	buf          []byte
	goid         atomic.Uint64 // the loop's goroutine id, for onLoop

	mu       sync.Mutex // guards pending and stopping
	pending  []*loopConn
	stopping bool

	// Owned by the loop goroutine.
	slots []*loopConn
	free  []int32
	live  int
	done  chan struct{}
	spare []*loopConn // the deferred list it flushed last, for reuse
}

// loopConn is a connection on an event loop, and the net.Conn its Conn
// writes to: writes from other goroutines go to the socket at once when
// nothing waits in the queue and the loop is not reading this connection,
// else into the queue the loop flushes; writes made on a loop are queued
// until the end of its batch of events (writeParts). Kept small: every idle
// connection holds one.
type loopConn struct {
	c *Conn
	l *eventLoop
	h Callbacks
	// release is a SocketWrapper's: called once the socket is closed.
	release func()
	fd      int32
	slot    int32 // loop-owned; -1 until registered

	// The write side, guarded by mu. The loop takes it too, to flush.
	mu          sync.Mutex
	out         *[]byte // output the socket has not taken; nil when none
	werr        *error  // sticky write failure
	room        chan struct{}
	lastWrite   int64 // monoNow when the socket last took bytes, or the queue began
	dispatching bool  // the loop runs this connection's reader: writes queue
	outArmed    bool  // EPOLLOUT is on
	deferred    bool  // on the engine's deferred list: a loop flushes out before it waits
	closeReq    bool  // Close was called: flush, then close
	aborted     bool  // CloseNow: drop the queue
	fdClosed    bool
	requested   bool // on the loop's pending list; guarded by l.mu
	shutWrite   bool // CloseWrite: shut down writing once flushed
	unixSocket  bool // immutable

	// Owned by the loop goroutine.
	readDone  bool // OnClose has been called
	wrShut    bool
	paused    bool          // EPOLLIN is off (PauseReads); written under mu, which writers' armOut take
	held      bool          // a pause stopped the reader with input kept in part.in
	pauses    atomic.Uint32 // why reading is paused, a pauseApp|pausePool mask; any goroutine
	part      *partial
	lastInput int64

	readDeadline  atomic.Int64 // UnixNano; 0 = none
	writeDeadline atomic.Int64
	closeBy       atomic.Int64 // monoNow by which the socket is closed; 0 = none
	lingerBy      atomic.Int64 // monoNow: read and discard until EOF or then
	addrs         atomic.Pointer[connAddrs]
}

// partial is what a connection holds between reads only while a frame
// or a message is incomplete.
type partial struct {
	in        []byte     // bytes of an incomplete frame header or control frame
	msg       []byte     // the payload of an unfinished message so far
	inflating *inflation // a compressed message arriving
	discard   int        // bytes discarded while lingering
}

type connAddrs struct{ local, remote net.Addr }

func newEventLoop(e *Engine) (*eventLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("pipe2", err)
	}
	l := &eventLoop{e: e, epfd: epfd, wakeR: p[0], wakeW: p[1], buf: make([]byte, loopBufSize), done: make(chan struct{})}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeSlot}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, l.wakeR, &ev); err != nil {
		l.closeFds()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return l, nil
}

func (l *eventLoop) closeFds() {
	syscall.Close(l.epfd)
	syscall.Close(l.wakeR)
	syscall.Close(l.wakeW)
}

// adopt takes c over from its net.Conn: the descriptor is duplicated and
// the net.Conn closed, so that the runtime poller and net/http let go of
// the connection, and the Conn is switched to reading from the loop.
func (l *eventLoop) adopt(c *Conn, nc net.Conn, release func(), h Callbacks) error {
	raw, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return errNotLoopable
	}
	fd := -1
	var derr error
	if err := raw.Control(func(s uintptr) {
		fd, derr = dupCloexec(int(s))
	}); err != nil {
		return err
	}
	if derr != nil {
		return os.NewSyscallError("fcntl", derr)
	}
	if !c.appReading.CompareAndSwap(false, true) {
		syscall.Close(fd)
		return ErrConcurrentRead
	}
	_, isUnix := nc.(*net.UnixConn)
	lc := &loopConn{c: c, l: l, h: h, release: release, fd: int32(fd), slot: -1, unixSocket: isUnix}

	c.lockFrame()
	c.flushHeldLocked() // frames held for coalescing go out first, on nc
	if c.holdTimer != nil {
		c.holdTimer.Stop()
		c.holdTimer = nil
	}
	if b := c.rd.buffered(); len(b) > 0 {
		lc.partial().in = append(lc.part.in[:0], b...)
	}
	c.rd.drop()
	c.raw, c.rd.rawFn, c.rd.waitFn = nil, nil, nil
	c.rd.mem = true
	c.writeFn = nil
	c.hb.mu.Lock()
	if c.hb.timer != nil {
		c.hb.timer.Stop()
		c.hb.timer = nil
	}
	c.hb.mu.Unlock()
	if ns := c.readDeadline.Load(); ns != 0 {
		lc.readDeadline.Store(ns)
	}
	if ns := c.writeDeadline.Load(); ns != 0 {
		lc.writeDeadline.Store(ns)
	}
	c.conn = lc
	c.unlockFrame()
	nc.Close() // our duplicate keeps the socket open

	if !l.request(lc) {
		lc.abort()
		c.closeNetConn(errEngineClosed)
		syscall.Close(fd)
		if release != nil {
			release()
		}
		return errEngineClosed
	}
	return nil
}

func dupCloexec(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// request puts lc on the loop's list of connections to look at (a new
// connection, a close, output to arm) and wakes the loop. It reports false
// when the loop is stopping.
func (l *eventLoop) request(lc *loopConn) bool {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		return false
	}
	if !lc.requested {
		lc.requested = true
		l.pending = append(l.pending, lc)
	}
	l.mu.Unlock()
	l.wake()
	return true
}

func (l *eventLoop) wake() {
	if !l.woken.Swap(true) {
		b := [1]byte{1}
		syscall.Write(l.wakeW, b[:])
	}
}

func (l *eventLoop) shutdown() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.wake()
	<-l.done
}

// run is the loop. It waits in the runtime's poller, not in a blocking
// epoll_wait: an epoll descriptor is readable while it has events, so the
// loop's goroutine parks on it like any goroutine on a socket and holds no
// thread or P while it waits (a blocking system call would keep its P until
// the runtime's monitor takes it back, tens of microseconds later, which at
// GOMAXPROCS=1 stalls every other goroutine that long per wait). The
// epoll_wait that collects the events never blocks.
func (l *eventLoop) run() {
	defer close(l.done)
	l.goid.Store(goroutineID())
	debug.SetPanicOnFault(true) // the mark onAnyLoop reads
	events := make([]syscall.EpollEvent, 256)
	poller, err := l.pollable()
	if err != nil {
		panic("websocket: event loop: " + err.Error())
	}
	defer poller.Close()
	raw, err := poller.SyscallConn()
	if err != nil {
		panic("websocket: event loop: " + err.Error())
	}
	var n int
	collect := func(uintptr) bool {
		var err error
		for {
			n, err = syscall.EpollWait(l.epfd, events, 0)
			if err != syscall.EINTR {
				break
			}
		}
		return n > 0 || (err != nil && err != syscall.EAGAIN)
	}
	nextTick := monoNow() + int64(loopTick)
	poller.SetReadDeadline(time.Now().Add(loopTick))
	l.awake()
	for {
		l.flushDeferred() // before waiting: what this batch wrote goes out
		n = 0
		if err := raw.Read(collect); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			panic("websocket: event loop: " + err.Error())
		}
		l.awake()
		for i := range max(n, 0) {
			ev := &events[i]
			if ev.Fd == wakeSlot {
				continue // the pending list below is why
			}
			lc := l.slots[ev.Fd]
			if lc == nil {
				continue
			}
			if ev.Events&syscall.EPOLLOUT != 0 {
				l.writable(lc)
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR|syscall.EPOLLRDHUP) != 0 && !lc.isClosed() {
				if lc.paused {
					// Epoll reports a hang-up or an error even with EPOLLIN
					// off: the peer is gone, and what it sent cannot be
					// answered. An input event is from before the pause.
					if ev.Events&(syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
						l.readFailed(lc, &net.OpError{Op: "read", Net: lc.network(), Err: os.NewSyscallError("read", syscall.ECONNRESET)})
					}
					continue
				}
				l.readable(lc)
			}
		}
		if l.woken.Load() {
			var b [64]byte
			syscall.Read(l.wakeR, b[:])
			l.woken.Store(false)
		}
		if l.servePending() {
			l.closeAll()
			l.flushDeferred()
			l.closeFds()
			return
		}
		if now := monoNow(); now >= nextTick {
			l.tick(now)
			nextTick = now + int64(loopTick)
			poller.SetReadDeadline(time.Now().Add(loopTick))
		}
	}
}

// pollable returns a non-blocking duplicate of the epoll descriptor as an
// os.File, which the runtime's poller watches.
func (l *eventLoop) pollable() (*os.File, error) {
	fd, err := dupCloexec(l.epfd)
	if err != nil {
		return nil, os.NewSyscallError("fcntl", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(fd), "epoll"), nil
}

// servePending looks at the connections other goroutines asked about. It
// reports whether the loop is to stop.
func (l *eventLoop) servePending() bool {
	l.mu.Lock()
	pending := l.pending
	l.pending = nil
	stop := l.stopping
	for _, lc := range pending {
		lc.requested = false
	}
	l.mu.Unlock()
	for _, lc := range pending {
		if lc.slot < 0 {
			l.register(lc)
		}
		l.service(lc)
	}
	clear(pending)
	return stop
}

// register adds a new connection to the loop and reads what came with
// its handshake.
func (l *eventLoop) register(lc *loopConn) {
	var slot int32
	if n := len(l.free); n > 0 {
		slot = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		slot = int32(len(l.slots))
		l.slots = append(l.slots, nil)
	}
	l.slots[slot] = lc
	l.live++
	lc.lastInput = monoNow()
	// Writers on other goroutines read slot (armOut): it is set under mu.
	lc.mu.Lock()
	lc.slot = slot
	lc.paused = lc.pauses.Load() != 0
	var events uint32
	if !lc.paused {
		events = syscall.EPOLLIN | syscall.EPOLLRDHUP
	}
	if lc.out != nil {
		events |= syscall.EPOLLOUT
		lc.outArmed = true
	}
	ev := syscall.EpollEvent{Events: events, Fd: slot}
	err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, int(lc.fd), &ev)
	lc.mu.Unlock()
	if err != nil {
		lc.c.netReadError(os.NewSyscallError("epoll_ctl", err))
		l.endRead(lc)
		l.closeFd(lc)
		return
	}
	if lc.part != nil && len(lc.part.in) > 0 && !lc.paused {
		l.processKept(lc)
	}
}

// processKept runs the reader over the input a connection kept: what came
// with its handshake, or what was buffered when its reads were paused.
func (l *eventLoop) processKept(lc *loopConn) {
	if len(lc.part.in) > len(l.buf) {
		in := lc.part.in
		lc.part.in = nil
		l.process(lc, in, len(in))
		return
	}
	l.process(lc, l.buf, l.takeRest(lc))
}

func (lc *loopConn) isClosed() bool {
	lc.mu.Lock()
	closed := lc.fdClosed
	lc.mu.Unlock()
	return closed
}

// readable reads once from a connection and runs its reader.
func (l *eventLoop) readable(lc *loopConn) {
	p := lc.part
	if lc.readDone {
		l.discard(lc)
		return
	}
	start := l.takeRest(lc)
	n, err := readFD(int(lc.fd), l.buf[start:])
	if err == syscall.EAGAIN {
		if start > 0 {
			p.in = append(p.in, l.buf[:start]...) // put them back
		}
		return
	}
	if err != nil || n == 0 {
		if err == nil {
			err = io.EOF
		} else {
			err = &net.OpError{Op: "read", Net: lc.network(), Err: os.NewSyscallError("read", err)}
		}
		l.readFailed(lc, err)
		return
	}
	l.received(lc, start, n)
}

// takeRest puts what is left of an incomplete frame (a header, a control
// frame: at most 139 bytes) in front of the shared buffer and returns its
// length.
func (l *eventLoop) takeRest(lc *loopConn) int {
	p := lc.part
	if p == nil || len(p.in) == 0 {
		return 0
	}
	start := copy(l.buf, p.in)
	p.in = p.in[:0]
	return start
}

// received runs the reader over n new bytes in the shared buffer, behind
// start bytes kept from before.
func (l *eventLoop) received(lc *loopConn, start, n int) {
	lc.lastInput = monoNow()
	lc.c.creditProgress(n)
	l.process(lc, l.buf, start+n)
}

// readFailed ends reading on a failed read, the peer's FIN or a passed
// deadline. A compressed message being inflated gets the error where its
// read waits, as a blocking read would: the inflater then gives up what
// it decoded, and invalid text in it fails the connection with 1007
// rather than the network's error.
func (l *eventLoop) readFailed(lc *loopConn, err error) {
	if pt := lc.part; pt != nil && pt.inflating != nil && pt.inflating.yield != nil {
		in := pt.inflating
		in.failed = err
		in.step()
		pt.inflating = nil
		if cap(in.p) <= 1<<20 && in.buf != nil {
			*in.buf = in.p[:0]
			inflateBufs.Put(in.buf)
		}
	}
	if lc.c.readErr == nil {
		lc.c.netReadError(err)
	}
	l.afterRead(lc)
}

// process lends buf[:n] to the connection's reader, delivers the messages
// it completes, keeps what is left of an incomplete frame, and flushes the
// output the callbacks queued.
func (l *eventLoop) process(lc *loopConn, buf []byte, n int) {
	c := lc.c
	c.rd.buf, c.rd.r, c.rd.w = buf[:n], 0, n
	lc.mu.Lock()
	lc.dispatching = true
	lc.mu.Unlock()
	l.dispatch(lc)
	l.keepRest(lc)
	l.afterRead(lc)
}

// keepRest keeps the bytes the reader left in its buffer: the start of a
// frame. The shared buffer is free again afterwards.
func (l *eventLoop) keepRest(lc *loopConn) {
	c := lc.c
	var rest []byte
	if c.rd.buf != nil {
		rest = c.rd.buffered()
	}
	p := lc.part
	switch {
	case len(rest) == 0:
		if p != nil {
			p.in = p.in[:0]
		}
	default:
		p = lc.partial()
		if cap(p.in) < len(rest) {
			p.in = make([]byte, 0, max(len(rest), 256))
		}
		p.in = append(p.in[:0], rest...)
	}
	c.rd.buf, c.rd.r, c.rd.w = nil, 0, 0
	if p != nil && len(p.in) == 0 && p.msg == nil && p.inflating == nil && p.discard == 0 {
		lc.releasePart()
	}
}

// dispatch runs the reader over the buffered input until it needs more,
// delivering each message that completes. Everything the protocol says
// happens inside the Conn's own read path: frame rules, control frames,
// the closing handshake, UTF-8, limits, inflating.
func (l *eventLoop) dispatch(lc *loopConn) {
	c := lc.c
	for c.readErr == nil && !c.closed.Load() {
		if lc.pauses.Load() != 0 {
			lc.held = true // what is left is read when the pause ends
			return
		}
		if pt := lc.part; pt != nil && pt.inflating != nil {
			// A compressed message is being inflated as it arrives.
			if !pt.inflating.step() {
				return
			}
			in := pt.inflating
			pt.inflating = nil
			l.delivered(lc, in.mt, in.p, in.err, in.buf)
			continue
		}
		if c.msgType == 0 {
			if err := c.nextMessage(); err != nil {
				return // errNeedInput, or the failure is in readErr
			}
		}
		mt := c.msgType
		var p []byte
		var err error
		var inflated *[]byte
		switch {
		case c.msgCompressed && !c.messageBuffered():
			lc.partial().inflating = newInflation(c, mt)
			continue
		case c.msgCompressed:
			inflated = inflateBufs.Get().(*[]byte)
			p, err = c.readRest((*inflated)[:0])
		case (lc.part == nil || lc.part.msg == nil) && c.frameFin && int64(len(c.rd.buffered())) >= c.frameLeft:
			p, err = c.payloadInPlace()
		default:
			msg := lc.partial().msg
			if msg == nil {
				msg = classGet(int(min(max(512, c.frameLeft), readAllocFloor)))
			}
			msg, err = c.readRest(msg)
			if err == errNeedInput {
				lc.part.msg = msg
				return
			}
			lc.part.msg = nil
			l.delivered(lc, mt, msg, err, nil)
			classPut(msg)
			continue
		}
		l.delivered(lc, mt, p, err, inflated)
	}
}

// delivered hands a message the reader completed to OnMessage, unless
// the read failed; inflated is the pooled buffer p is in, if any.
func (l *eventLoop) delivered(lc *loopConn, mt int, p []byte, err error, inflated *[]byte) {
	if (err == nil || err == io.EOF) && !lc.c.closeStarted.Load() { // Close discards data while it waits
		l.deliver(lc, mt, p)
	}
	if inflated != nil && cap(p) <= 1<<20 {
		*inflated = p[:0]
		inflateBufs.Put(inflated)
	}
}

func (lc *loopConn) partial() *partial {
	if lc.part == nil {
		lc.part = partials.Get().(*partial)
	}
	return lc.part
}

// releasePart pools the connection's partial state, keeping the small
// buffer for incomplete frames with it. Loop-owned.
func (lc *loopConn) releasePart() {
	p := lc.part
	if p == nil {
		return
	}
	lc.part = nil
	if p.inflating != nil {
		p.inflating.stop()
	}
	if p.msg != nil {
		classPut(p.msg)
	}
	in := p.in[:0]
	if cap(in) > 4096 {
		in = nil
	}
	*p = partial{in: in}
	partials.Put(p)
}

var partials = sync.Pool{New: func() any { return new(partial) }}

// inflation inflates a compressed message that has not all arrived, in a
// coroutine (iter.Pull): the flate reader pulls its input and cannot stop
// and go on later, so it runs on a stack of its own, which hands control
// back to the loop whenever the buffered input runs out (needInput) and
// gets it back when more has arrived. Text is thus checked as it is
// inflated, and fails fast (RFC 6455 §8.1), as on a blocking Conn. The
// coroutine exists only while such a message is arriving.
type inflation struct {
	yield  func(struct{}) bool
	resume func() (struct{}, bool)
	stop   func()
	mt     int
	p      []byte
	err    error
	buf    *[]byte
	failed error // the read's error, given where it waits
}

func newInflation(c *Conn, mt int) *inflation {
	in := &inflation{mt: mt}
	in.resume, in.stop = iter.Pull(func(yield func(struct{}) bool) {
		in.yield = yield
		in.buf = inflateBufs.Get().(*[]byte)
		in.p, in.err = c.readRest((*in.buf)[:0])
		in.yield = nil
	})
	return in
}

// step runs the inflation on the input now buffered: true when the
// message is complete (or failed), false when it needs more.
func (in *inflation) step() bool {
	_, more := in.resume()
	return !more
}

// needInput is what a read from the loop's buffer does when the bytes run
// out: inside an inflation it waits for the loop to lend more; otherwise
// it reports errNeedInput and the loop calls the reader again later.
func (c *Conn) needInput() error {
	lc := c.conn.(*loopConn)
	if pt := lc.part; pt != nil && pt.inflating != nil && pt.inflating.yield != nil {
		in := pt.inflating
		if !in.yield(struct{}{}) {
			return errEngineStop
		}
		if in.failed != nil {
			return in.failed
		}
		return nil // the loop has lent the next bytes
	}
	return errNeedInput
}

func (l *eventLoop) deliver(lc *loopConn, mt int, p []byte) {
	if pool := l.e.pool; pool != nil {
		pool.run(lc.c, lc.h, mt, p)
		return
	}
	lc.h.OnMessage(lc.c, mt, p)
}

// afterRead flushes what the callbacks wrote and ends the connection if
// reading is over.
func (l *eventLoop) afterRead(lc *loopConn) {
	lc.mu.Lock()
	lc.dispatching = false
	werr := l.flushLocked(lc)
	lc.mu.Unlock()
	if werr != nil {
		l.writeFailed(lc, werr)
	}
	c := lc.c
	if c.readErr != nil && !lc.readDone {
		l.endRead(lc)
		if !c.closed.Load() {
			c.closeNetConn(nil) // the peer is gone, or the reader failed it and lingers
		}
	}
	l.service(lc)
}

// endRead calls OnClose, once.
func (l *eventLoop) endRead(lc *loopConn) {
	if lc.readDone {
		return
	}
	lc.readDone = true
	c := lc.c
	err := c.readErr
	if err == nil {
		if cause := c.closeCause.Load(); cause != nil {
			err = *cause
		} else {
			err = net.ErrClosed
		}
	}
	if pt := lc.part; pt != nil {
		pt.msg = nil
		if pt.inflating != nil {
			pt.inflating.stop() // its read returns readErr
			pt.inflating = nil
		}
	}
	if pool := l.e.pool; pool != nil {
		pool.closed(c, lc.h, err)
		return
	}
	lc.h.OnClose(c, err)
}

// discard reads and drops input once reading is over: the connection
// lingers for the peer's FIN (RFC 6455 §7.1.1, §7.1.7) or waits for its
// output to drain.
func (l *eventLoop) discard(lc *loopConn) {
	n, err := readFD(int(lc.fd), l.buf)
	if err == syscall.EAGAIN {
		return
	}
	lc.partial().discard += n
	if err != nil || n == 0 || lc.part.discard > maxLingerBytes {
		l.closeFd(lc)
	}
}

// service acts on a close that was asked for: once the output is flushed
// (or dropped), the socket is shut down for writing and, if the
// connection lingers, read until the peer's FIN; then closed.
func (l *eventLoop) service(lc *loopConn) {
	lc.mu.Lock()
	if lc.fdClosed {
		lc.mu.Unlock()
		return
	}
	if pause := lc.pauses.Load() != 0 && !lc.readDone; lc.slot >= 0 && (pause != lc.paused || !pause && lc.held) {
		// (A pause that ended before the loop applied it may still have
		// stopped the reader: held.)
		wasPaused := lc.paused
		if pause != lc.paused {
			lc.paused = pause
			l.modify(lc)
		}
		if !pause {
			lc.mu.Unlock()
			l.resumed(lc, wasPaused)
			return
		}
	}
	closing, aborted := lc.closeReq, lc.aborted
	flushed := lc.out == nil || aborted || lc.werr != nil
	shut := lc.shutWrite && flushed && !lc.wrShut
	if !flushed && !lc.outArmed && !lc.deferred {
		l.armOut(lc, true)
	}
	lc.mu.Unlock()
	if shut {
		lc.wrShut = true
		syscall.Shutdown(int(lc.fd), syscall.SHUT_WR)
	}
	if !closing {
		return
	}
	l.endRead(lc)
	if aborted || (flushed && lc.lingerBy.Load() == 0) {
		l.closeFd(lc)
		return
	}
	if flushed && !lc.wrShut {
		lc.wrShut = true
		syscall.Shutdown(int(lc.fd), syscall.SHUT_WR)
	}
	if lc.closeBy.Load() == 0 {
		lc.closeBy.Store(monoNow() + int64(lc.c.closeTimeoutDuration()))
	}
}

// resumed restarts reading a connection whose pause ended: the time it
// was paused counts neither as the peer's silence (heartbeat) nor against
// the message it was sending (progress bound), and the input kept when it
// paused is read first.
func (l *eventLoop) resumed(lc *loopConn, wasPaused bool) {
	c := lc.c
	if now := monoNow(); wasPaused {
		if c.progressDeadline != 0 {
			c.progressDeadline += now - lc.lastInput
			c.setProgressDeadline(now)
		}
		lc.lastInput = now
	}
	lc.held = false
	if lc.part != nil && len(lc.part.in) > 0 {
		l.processKept(lc)
		return
	}
	l.service(lc)
}

// setPause sets or clears one reason for not reading lc; the loop applies
// the change (service).
func (lc *loopConn) setPause(why uint32, on bool) {
	for {
		old := lc.pauses.Load()
		next := old &^ why
		if on {
			next = old | why
		}
		if next == old || lc.pauses.CompareAndSwap(old, next) {
			if (old == 0) != (next == 0) {
				lc.l.request(lc)
			}
			return
		}
	}
}

// writable flushes a connection's queue when the socket takes more.
func (l *eventLoop) writable(lc *loopConn) {
	lc.mu.Lock()
	werr := l.flushLocked(lc)
	lc.mu.Unlock()
	if werr != nil {
		l.writeFailed(lc, werr)
	}
	l.service(lc)
}

// flushLocked writes the queue; on EAGAIN it arms EPOLLOUT, when drained
// it disarms it and wakes writers waiting for room. It returns a write
// failure for the caller to act on without lc.mu. Caller holds lc.mu.
func (l *eventLoop) flushLocked(lc *loopConn) error {
	if lc.out == nil || lc.fdClosed {
		return nil
	}
	if lc.aborted || lc.werr != nil {
		lc.dropOut()
		return nil
	}
	out := *lc.out
	for len(out) > 0 {
		n, err := writeFD(int(lc.fd), out)
		if err == syscall.EAGAIN {
			break
		}
		if err != nil {
			werr := error(&net.OpError{Op: "write", Net: lc.network(), Err: os.NewSyscallError("write", err)})
			lc.werr = &werr
			lc.dropOut()
			return werr
		}
		out = out[n:]
		lc.lastWrite = monoNow()
	}
	if len(out) > 0 {
		*lc.out = (*lc.out)[:copy(*lc.out, out)]
		if !lc.outArmed {
			l.armOut(lc, true)
		}
		return nil
	}
	lc.dropOut()
	if lc.outArmed {
		l.armOut(lc, false)
	}
	return nil
}

// armOut turns EPOLLOUT on or off. From the loop only, or under lc.mu
// with lc registered.
func (l *eventLoop) armOut(lc *loopConn, on bool) {
	if lc.slot < 0 {
		return
	}
	lc.outArmed = on
	l.modify(lc)
}

// modify tells epoll what lc waits for: input unless paused, output while
// some is queued. Caller holds lc.mu, with lc registered.
func (l *eventLoop) modify(lc *loopConn) {
	var events uint32
	if !lc.paused {
		events = syscall.EPOLLIN | syscall.EPOLLRDHUP
	}
	if lc.outArmed {
		events |= syscall.EPOLLOUT
	}
	ev := syscall.EpollEvent{Events: events, Fd: lc.slot}
	syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_MOD, int(lc.fd), &ev)
}

// dropOut releases the queue and wakes writers waiting for room. Caller
// holds lc.mu.
func (lc *loopConn) dropOut() {
	if lc.out != nil {
		classPut(*lc.out)
		*lc.out = nil
		boxes.Put(lc.out)
		lc.out = nil
	}
	if lc.room != nil {
		close(lc.room)
		lc.room = nil
	}
}

// writeFailed closes a connection whose socket refused output.
func (l *eventLoop) writeFailed(lc *loopConn, err error) {
	lc.c.closeNetConn(&writeFailedError{err})
	l.service(lc)
}

// closeFd closes the socket; writers see net.ErrClosed from now on.
func (l *eventLoop) closeFd(lc *loopConn) {
	lc.mu.Lock()
	if lc.fdClosed {
		lc.mu.Unlock()
		return
	}
	lc.fdClosed = true
	lc.dropOut()
	// Closing removes the descriptor from epoll: no dup of it exists.
	syscall.Close(int(lc.fd))
	lc.mu.Unlock()
	if !lc.readDone {
		lc.c.closeNetConn(nil)
		l.endRead(lc)
	}
	lc.releasePart()
	if lc.release != nil {
		lc.release()
		lc.release = nil
	}
	if lc.slot >= 0 {
		l.slots[lc.slot] = nil
		l.free = append(l.free, lc.slot)
		l.live--
	}
	l.e.conns.Done()
}

// closeAll drops every connection when the engine stops.
func (l *eventLoop) closeAll() {
	for _, lc := range l.slots {
		if lc != nil {
			lc.abort()
			lc.c.closeNetConn(net.ErrClosed)
			l.closeFd(lc)
		}
	}
	l.mu.Lock()
	pending := l.pending
	l.pending = nil
	l.mu.Unlock()
	for _, lc := range pending {
		if lc.slot < 0 {
			lc.abort()
			lc.c.closeNetConn(net.ErrClosed)
			l.closeFd(lc)
		}
	}
}

// tick looks at every connection's clocks.
func (l *eventLoop) tick(now int64) {
	wall := time.Now().UnixNano()
	for _, lc := range l.slots {
		if lc == nil {
			continue
		}
		l.tickConn(lc, now, wall)
	}
}

func (l *eventLoop) tickConn(lc *loopConn, now, wall int64) {
	c := lc.c
	if by := lc.closeBy.Load(); by != 0 && now >= by {
		// Close's handshake, a flush or a linger ran out of time.
		lc.abort()
		c.closeNetConn(nil)
		l.closeFd(lc)
		return
	}
	if by := lc.lingerBy.Load(); by != 0 && now >= by {
		l.closeFd(lc)
		return
	}
	if !lc.readDone && c.readErr == nil && !lc.paused {
		if d := lc.readDeadline.Load(); d != 0 && wall >= d {
			// The application's read deadline, or the message bound.
			timeout := &net.OpError{Op: "read", Net: lc.network(), Err: os.ErrDeadlineExceeded}
			if retry, err := c.progressTimeout(timeout); !retry {
				l.readFailed(lc, err)
				return
			}
		}
		if l.heartbeat(lc, now) {
			return
		}
	}
	lc.mu.Lock()
	stalled := false
	if lc.out != nil && !lc.aborted && !lc.deferred { // deferred output goes out in this batch
		if stall := c.writeStall.Load(); stall > 0 && now-lc.lastWrite >= stall {
			stalled = true
		}
		if d := lc.writeDeadline.Load(); d != 0 && wall >= d {
			stalled = true
		}
	}
	lc.mu.Unlock()
	if stalled {
		lc.mu.Lock()
		werr := error(ErrWriteStalled)
		lc.werr = &werr
		lc.dropOut()
		lc.mu.Unlock()
		l.writeFailed(lc, ErrWriteStalled)
	}
}

// heartbeat is the loop's version of heartbeatTick: the engine is always
// waiting for input, so the time since the last byte decides. It reports
// whether the connection was dropped.
func (l *eventLoop) heartbeat(lc *loopConn, now int64) bool {
	c := lc.c
	hb := &c.hb
	hb.mu.Lock()
	interval, timeout := int64(hb.interval), int64(hb.timeout)
	if interval <= 0 {
		hb.mu.Unlock()
		return false
	}
	if hb.pingSentAt != 0 {
		if lc.lastInput <= hb.pingSentAt {
			hb.mu.Unlock()
			if now-hb.pingSentAt >= timeout {
				c.fail(ErrHeartbeatTimeout)
				l.closeFd(lc)
				return true
			}
			return false
		}
		hb.pingSentAt = 0
	}
	if now-lc.lastInput < interval {
		hb.mu.Unlock()
		return false
	}
	hb.pingSentAt = now
	hb.mu.Unlock()
	if err := c.WriteControl(PingMessage, nil, time.Time{}); err != nil && err != ErrCloseSent {
		c.fail(err)
		l.closeFd(lc)
		return true
	}
	return false
}

// The loop's system calls, retried on EINTR.
func readFD(fd int, p []byte) (int, error) {
	for {
		n, err := syscall.Read(fd, p)
		if err != syscall.EINTR {
			return n, err
		}
	}
}

func writeFD(fd int, p []byte) (int, error) {
	for {
		n, err := syscall.Write(fd, p)
		if err != syscall.EINTR {
			return max(n, 0), err
		}
	}
}

// queue appends p to the output queue. Caller holds lc.mu.
func (lc *loopConn) queue(p []byte) {
	if lc.out == nil {
		lc.out = boxes.Get().(*[]byte)
		*lc.out = classGet(len(p))
		lc.lastWrite = monoNow()
	}
	if len(*lc.out)+len(p) > cap(*lc.out) {
		*lc.out = classGrow(*lc.out, len(*lc.out)+len(p))
	}
	*lc.out = append(*lc.out, p...)
}

// Write is the Conn's output (see writeParts). It never waits; awaitRoom,
// before a message starts, is where a writer waits.
func (lc *loopConn) Write(p []byte) (int, error) {
	if err := lc.writeParts([][]byte{p}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// directWrite is the size from which a write made while the loop reads
// the connection goes out at once, in one writev with what is queued,
// instead of being copied into the queue: a large payload is sent from
// the caller's memory.
const directWrite = 16 << 10

// writeParts writes parts in order, as one vectored write when they go to
// the socket now. Queued output always goes first. Caller does not hold
// lc.mu.
//
// Output waits in the queue while the socket is full or the loop reads this
// connection (the loop flushes it). Otherwise a write made on an event loop
// is deferred: queued, and flushed before a loop waits again, with whatever
// else this batch of events writes to the connection (see deferredOutput).
// A write from any other goroutine goes out at once, after what is
// deferred, so that nothing overtakes it; so does one that would take the
// deferred bytes past deferLimit, or a large one (directWrite). All of it
// under lc.mu, frames whole under the Conn's frameMu: whoever flushes, the
// bytes leave in the order they were queued.
func (lc *loopConn) writeParts(parts [][]byte) error {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.werr != nil {
		return *lc.werr
	}
	if lc.fdClosed || lc.aborted {
		return net.ErrClosed
	}
	total := 0
	for _, p := range parts {
		total += len(p)
	}
	direct := !lc.dispatching && !lc.outArmed && (lc.out == nil || lc.deferred)
	if direct && total < directWrite && lc.deferWrite(total) {
		for _, p := range parts {
			lc.queue(p)
		}
		return nil
	}
	if !direct && total >= directWrite && len(parts) < maxIovecs {
		direct = true // queued bytes lead the writev
	}
	if !direct || len(parts) >= maxIovecs {
		for _, p := range parts {
			lc.queue(p)
		}
	} else if err := lc.writeNow(parts); err != nil {
		return err
	}
	if lc.out != nil && !lc.dispatching && !lc.outArmed && !lc.deferred && lc.slot >= 0 {
		lc.l.armOut(lc, true)
	}
	return nil
}

// deferLimit bounds the output a connection's deferred queue holds before
// a write flushes it at once: coalescing gains little beyond it, and the
// queue's bound (MaxQueuedBytes, at most twice this) is kept for a peer
// that does not read.
const deferLimit = 64 << 10

// deferWrite reports whether a write of n bytes made now is to be deferred
// to the end of the loop's batch, and puts lc on the engine's deferred
// list. Caller holds lc.mu.
func (lc *loopConn) deferWrite(n int) bool {
	if lc.out != nil && len(*lc.out)+n > min(deferLimit, lc.l.e.cfg.MaxQueuedBytes/2) {
		return false
	}
	if !onAnyLoop() {
		return false
	}
	return lc.deferred || lc.l.e.out.add(lc)
}

// add puts lc on the deferred list while a loop is awake to flush it.
// Caller holds lc.mu.
func (d *deferredOutput) add(lc *loopConn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.awake == 0 {
		return false // not written on a loop after all: see onAnyLoop
	}
	d.conns = append(d.conns, lc)
	lc.deferred = true
	return true
}

// awake counts the loop as awake: output deferred from now on is flushed
// before it waits again.
func (l *eventLoop) awake() {
	d := &l.e.out
	d.mu.Lock()
	d.awake++
	d.mu.Unlock()
}

// flushDeferred flushes every connection on the deferred list, including
// those that the flushes themselves add (a callback run by a close), and
// then counts the loop as waiting. Each gets one write of all that was
// queued for it; a failure, or a close waiting for the flush, is acted on
// by the connection's own loop, which owns its state.
func (l *eventLoop) flushDeferred() {
	d := &l.e.out
	for {
		d.mu.Lock()
		conns := d.conns
		if len(conns) == 0 {
			d.awake--
			d.mu.Unlock()
			return
		}
		d.conns = l.spare[:0]
		d.mu.Unlock()
		for _, lc := range conns {
			l.flushDeferredConn(lc)
		}
		clear(conns)
		l.spare = nil
		if cap(conns) <= 1<<16 {
			l.spare = conns
		}
	}
}

func (l *eventLoop) flushDeferredConn(lc *loopConn) {
	lc.mu.Lock()
	lc.deferred = false
	werr := lc.l.flushLocked(lc)
	closing := lc.closeReq || lc.shutWrite
	lc.mu.Unlock()
	switch {
	case lc.l == l && werr != nil:
		l.writeFailed(lc, werr)
	case lc.l == l && closing:
		l.service(lc) // the close waited for this flush
	case werr != nil:
		lc.c.closeNetConn(&writeFailedError{werr}) // asks its loop to close it
	case closing:
		lc.l.request(lc)
	}
}

const maxIovecs = 8

// writeNow writes the queue and then parts with writev, and queues what
// the socket does not take. Caller holds lc.mu.
func (lc *loopConn) writeNow(parts [][]byte) error {
	var iov [maxIovecs][]byte
	k := 0
	if lc.out != nil && len(*lc.out) > 0 {
		iov[0] = *lc.out
		k = 1
	}
	for _, p := range parts {
		if len(p) > 0 {
			iov[k] = p
			k++
		}
	}
	n, err := writevFD(int(lc.fd), iov[:k])
	if err != nil && err != syscall.EAGAIN {
		werr := error(&net.OpError{Op: "write", Net: lc.network(), Err: os.NewSyscallError("writev", err)})
		lc.werr = &werr
		lc.dropOut()
		return werr
	}
	if n > 0 {
		lc.lastWrite = monoNow()
	}
	// Keep what is left, in order: the queue's tail, then the parts'.
	i := 0
	if k > 0 && lc.out != nil && len(*lc.out) > 0 && &iov[0][0] == &(*lc.out)[0] {
		q := *lc.out
		taken := min(n, len(q))
		*lc.out = q[:copy(q, q[taken:])]
		n -= taken
		i = 1
	}
	for ; i < k; i++ {
		taken := min(n, len(iov[i]))
		n -= taken
		if rest := iov[i][taken:]; len(rest) > 0 {
			lc.queue(rest)
		}
	}
	if lc.out != nil && len(*lc.out) == 0 {
		lc.dropOut()
	}
	return nil
}

// writevFD writes bufs (at most maxIovecs) in one system call.
func writevFD(fd int, bufs [][]byte) (int, error) {
	if len(bufs) == 1 {
		return writeFD(fd, bufs[0])
	}
	var iov [maxIovecs]syscall.Iovec
	for i, b := range bufs {
		iov[i].Base = &b[0]
		iov[i].SetLen(len(b))
	}
	for {
		n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(bufs)))
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

// awaitRoom lets a data message start only while the queue is under the
// engine's bound. A writer that may be a callback on a loop must not
// wait: it gets ErrQueueFull, and the connection is closed with 1008.
// Any other writer waits for room within its write deadline and the
// write stall timeout, as a blocking write would.
func (lc *loopConn) awaitRoom() error {
	bound := lc.l.e.cfg.MaxQueuedBytes
	lc.mu.Lock()
	for lc.out != nil && len(*lc.out) >= bound && lc.werr == nil && !lc.fdClosed && !lc.aborted {
		if lc.l.e.onLoop() {
			lc.mu.Unlock()
			lc.c.CloseWithCode(ClosePolicyViolation, "output queue full")
			return ErrQueueFull
		}
		if lc.room == nil {
			lc.room = make(chan struct{})
		}
		room := lc.room
		wait := time.Duration(lc.c.writeStall.Load())
		if d := lc.writeDeadline.Load(); d != 0 {
			if left := time.Until(time.Unix(0, d)); wait <= 0 || left < wait {
				wait = left
			}
		}
		lc.mu.Unlock()
		if wait <= 0 && lc.c.writeStall.Load() <= 0 && lc.writeDeadline.Load() == 0 {
			<-room
		} else {
			t := time.NewTimer(max(wait, 0))
			select {
			case <-room:
				t.Stop()
			case <-t.C:
				err := error(ErrWriteStalled)
				if d := lc.writeDeadline.Load(); d != 0 && time.Now().UnixNano() >= d {
					err = errWriteTimeout
				}
				lc.c.closeNetConn(&writeFailedError{err})
				return err
			}
		}
		lc.mu.Lock()
	}
	lc.mu.Unlock()
	return nil
}

// lingerUntil makes the loop read and drop input until the peer's FIN or
// the deadline, before it closes the socket.
func (lc *loopConn) lingerUntil(deadline time.Time) {
	lc.lingerBy.Store(monoNow() + int64(time.Until(deadline)))
}

// abort drops the queue: CloseNow, or a close that ran out of time.
func (lc *loopConn) abort() {
	lc.mu.Lock()
	lc.aborted = true
	lc.dropOut()
	lc.mu.Unlock()
}

func (lc *loopConn) Read([]byte) (int, error) { return 0, ErrEngineRead }

// Close asks the loop to close the socket once the output is flushed.
func (lc *loopConn) Close() error {
	lc.mu.Lock()
	if lc.closeReq || lc.fdClosed {
		lc.mu.Unlock()
		return nil
	}
	lc.closeReq = true
	lc.mu.Unlock()
	lc.l.request(lc)
	return nil
}

// CloseWrite shuts the socket down for writing once the output is flushed.
func (lc *loopConn) CloseWrite() error {
	lc.mu.Lock()
	lc.shutWrite = true
	lc.mu.Unlock()
	lc.l.request(lc)
	return nil
}

func (lc *loopConn) network() string {
	if lc.unixSocket {
		return "unix"
	}
	return "tcp"
}

func (lc *loopConn) LocalAddr() net.Addr  { return lc.addresses().local }
func (lc *loopConn) RemoteAddr() net.Addr { return lc.addresses().remote }

// addresses are looked up on first use: most servers never ask, and an
// idle connection should not hold them.
func (lc *loopConn) addresses() *connAddrs {
	if a := lc.addrs.Load(); a != nil {
		return a
	}
	a := &connAddrs{}
	lc.mu.Lock()
	if !lc.fdClosed {
		if sa, err := syscall.Getsockname(int(lc.fd)); err == nil {
			a.local = sockaddrToAddr(sa)
		}
		if sa, err := syscall.Getpeername(int(lc.fd)); err == nil {
			a.remote = sockaddrToAddr(sa)
		}
	}
	lc.mu.Unlock()
	if a.local == nil {
		a.local = lc.zeroAddr()
	}
	if a.remote == nil {
		a.remote = lc.zeroAddr()
	}
	if !lc.addrs.CompareAndSwap(nil, a) {
		return lc.addrs.Load()
	}
	return a
}

func (lc *loopConn) zeroAddr() net.Addr {
	if lc.unixSocket {
		return &net.UnixAddr{Net: "unix"}
	}
	return &net.TCPAddr{}
}

func sockaddrToAddr(sa syscall.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: append(net.IP(nil), sa.Addr[:]...), Port: sa.Port}
	case *syscall.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: "unix"}
	}
	return nil
}

func (lc *loopConn) SetDeadline(t time.Time) error {
	lc.SetReadDeadline(t)
	return lc.SetWriteDeadline(t)
}

func (lc *loopConn) SetReadDeadline(t time.Time) error {
	lc.readDeadline.Store(unixNano(t))
	return nil
}

func (lc *loopConn) SetWriteDeadline(t time.Time) error {
	lc.writeDeadline.Store(unixNano(t))
	return nil
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (lc *loopConn) queueLimit() int { return lc.l.e.cfg.MaxQueuedBytes }

func (lc *loopConn) queued() int {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.out == nil {
		return 0
	}
	return len(*lc.out)
}
