package websocket

import (
	"errors"
	"net"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/latchws/latch/internal/frame"
)

// An Engine serves connections without a goroutine each. After
// [Upgrader.Upgrade] (or a dial) the application hands the connection to
// [Engine.Serve] and returns from its handler; the engine's event loops
// read every connection it holds and deliver messages to callbacks. On
// Linux the loops wait in epoll, each with one read buffer shared by its
// connections, so an idle connection holds no buffer and no goroutine, only
// its Conn. Elsewhere, and for connections without a plain descriptor (TLS,
// HTTP/2 streams), the engine runs one goroutine per connection instead,
// with the same callbacks: the driver is chosen per connection and is
// invisible to the callbacks.
//
// A connection on an engine is a *Conn like any other for writing and
// closing: every write method, Close, CloseWithCode, CloseNow, the
// heartbeat, limits, compression and handlers work as on a blocking Conn.
// Its read methods return [ErrEngineRead]: reads arrive by callback.
type Engine struct {
	cfg   EngineConfig
	loops []*eventLoop // empty: goroutines only
	next  atomic.Uint32
	pool  *workerPool // nil: callbacks run on the loops

	mu     sync.Mutex
	closed bool
	conns  sync.WaitGroup // connections not yet ended, on either driver

	blocking sync.Map // *Conn served on goroutines, for Close

	// out is the output the loops' callbacks wrote, held until the end
	// of the batch of events they were handling (engine_linux.go).
	out deferredOutput
}

// deferredOutput lists the connections whose output a loop deferred: a
// write made on an event loop is queued (loopConn.writeParts), and before
// any loop waits in epoll again it flushes the list, one system call per
// connection for everything written to it meanwhile. A fan-out from a
// callback thereby costs each subscriber one write per batch of
// publications, not one per publication. The list is the engine's, not a
// loop's: a write cannot tell cheaply which loop it is on (onAnyLoop), and
// since a connection's output is one queue under its own lock, any loop may
// flush it. A loop that writes is awake, so the flush it needs happens
// before it waits, whoever makes it.
type deferredOutput struct {
	mu    sync.Mutex
	conns []*loopConn // guarded by mu; each with deferred set
	awake int         // guarded by mu; loops between two waits in epoll
}

// onAnyLoop reports whether the calling goroutine is one of the event
// loops, at a cost of nanoseconds, where Engine.onLoop reads the
// goroutine's id from its stack (microseconds, many on a deep stack): the
// loops mark their goroutines with the runtime's one per-goroutine flag that
// can be read back, panic-on-fault (runtime/debug.SetPanicOnFault). On a
// loop it only turns a fault at a bad non-nil address (a corrupted pointer)
// into a panic rather than a crash: the program still ends, with defers run.
// An application goroutine that set the flag itself counts as a loop here;
// its writes are then held until the end of a loop's current batch (never
// lost: see deferredOutput), and written at once when no loop is awake.
func onAnyLoop() bool {
	if !debug.SetPanicOnFault(false) {
		return false
	}
	debug.SetPanicOnFault(true)
	return true
}

// onLoop reports whether the calling goroutine is one of e's event loops,
// running a callback: a write that finds a full output queue must not
// wait there, since the loop may be the one that has to flush it (see
// loopConn.awaitRoom). Every other goroutine may wait. Only that rare case
// asks, so the cost of reading the goroutine's id does not matter.
func (e *Engine) onLoop() bool {
	id := goroutineID()
	for _, l := range e.loops {
		if l.goid.Load() == id {
			return true
		}
	}
	return false
}

// goroutineID is the calling goroutine's id, as the first line of its
// stack trace gives it ("goroutine 42 [running]:").
func goroutineID() uint64 {
	var b [64]byte
	s := b[:runtime.Stack(b[:], false)]
	s = s[len("goroutine "):]
	var id uint64
	for _, d := range s {
		if d < '0' || d > '9' {
			break
		}
		id = id*10 + uint64(d-'0')
	}
	return id
}

// EngineConfig configures an [Engine]. The zero value is a good default.
type EngineConfig struct {
	// Loops is the number of event loops; 0 means GOMAXPROCS.
	Loops int

	// Workers, when > 0, runs the callbacks on a pool of that many
	// goroutines instead of on the event loops, in order per connection.
	// Callbacks may then block; payloads are copied for them, and a
	// connection whose input waiting for the workers passes MaxQueuedBytes
	// is not read until they have taken half of it. With 0 (the
	// default) callbacks run on the loop that read the message and must
	// not block: a callback that waits holds up every connection of its
	// loop.
	Workers int

	// MaxQueuedBytes bounds a connection's output that the socket has not
	// taken yet. A write from another goroutine that finds the queue full
	// waits for room (within the write deadline and the write stall
	// timeout); a write from a callback, which must not wait, fails with
	// [ErrQueueFull] and the connection is closed with 1008. 0 means
	// [DefaultMaxQueuedBytes]. A message that starts below the bound is
	// always queued whole.
	MaxQueuedBytes int

	// Goroutines serves every connection on a goroutine of its own, as on
	// platforms without epoll.
	Goroutines bool
}

// DefaultMaxQueuedBytes is the default output queue bound of a connection
// on an [Engine].
const DefaultMaxQueuedBytes = 1 << 20

// Callbacks are what an [Engine] calls for a connection. Both functions are
// called on one goroutine at a time per connection, in order.
type Callbacks struct {
	// OnMessage receives each data message: messageType is TextMessage or
	// BinaryMessage, and payload is valid only until OnMessage returns
	// (copy it to keep it). Text has been checked for UTF-8 and compressed
	// messages inflated. Control frames are handled by the connection's
	// ping, pong and close handlers, as on a blocking Conn.
	OnMessage func(c *Conn, messageType int, payload []byte)

	// OnClose is called once, when reading has ended: err is a *CloseError
	// when the peer closed (or [CloseAbnormalClosure] when it vanished),
	// or the cause ([ErrHeartbeatTimeout], [ErrReadLimit],
	// [ErrMessageTimeout], a protocol error, [ErrQueueFull], net.ErrClosed
	// after CloseNow or Engine.Close). Nothing is delivered after it. The
	// engine finishes the closing handshake and closes the socket itself.
	OnClose func(c *Conn, err error)
}

var (
	// ErrEngineRead is returned by the read methods of a connection that is
	// served by an [Engine]: its messages arrive through Callbacks.OnMessage.
	ErrEngineRead = errors.New("websocket: connection is served by an Engine; messages arrive through its Callbacks")

	// ErrQueueFull is returned by a write from an engine callback when the
	// connection's output queue is over [EngineConfig.MaxQueuedBytes]:
	// the peer does not read fast enough. The connection is closed with
	// 1008 (Policy Violation).
	ErrQueueFull = errors.New("websocket: output queue full, peer reads too slowly")

	errEngineClosed = errors.New("websocket: engine closed")
)

// NewEngine starts an engine's event loops.
func NewEngine(cfg EngineConfig) (*Engine, error) {
	e := &Engine{cfg: cfg}
	if e.cfg.MaxQueuedBytes <= 0 {
		e.cfg.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if cfg.Workers > 0 {
		e.pool = newWorkerPool(e, cfg.Workers)
	}
	if !cfg.Goroutines && epollAvailable {
		n := cfg.Loops
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		for range n {
			l, err := newEventLoop(e)
			if err != nil {
				e.Close()
				return nil, err
			}
			e.loops = append(e.loops, l)
			go l.run()
		}
	}
	return e, nil
}

// Driver names how the engine serves plain TCP and Unix connections:
// "epoll" or "goroutines".
func (e *Engine) Driver() string {
	if len(e.loops) > 0 {
		return "epoll"
	}
	return "goroutines"
}

// Serve hands c to the engine, which reads it from now on and calls h. It
// must be called before c is shared with other goroutines and before any
// read. The caller may return from its HTTP handler at once: over HTTP/1.1
// the connection no longer needs it. Over HTTP/2 the stream ends with the
// handler, so the handler must wait for [Conn.Done] there.
func (e *Engine) Serve(c *Conn, h Callbacks) error {
	if h.OnMessage == nil {
		h.OnMessage = func(*Conn, int, []byte) {}
	}
	if h.OnClose == nil {
		h.OnClose = func(*Conn, error) {}
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errEngineClosed
	}
	e.conns.Add(1)
	e.mu.Unlock()
	if len(e.loops) > 0 {
		if socket, release, ok := loopable(c); ok {
			l := e.loops[int(e.next.Add(1))%len(e.loops)]
			err := l.adopt(c, socket, release, h)
			if err == nil {
				return nil
			}
			if !errors.Is(err, errNotLoopable) {
				e.conns.Done()
				return err
			}
		}
	}
	if !c.appReading.CompareAndSwap(false, true) {
		e.conns.Done()
		return ErrConcurrentRead
	}
	c.appReading.Store(false)
	bc := &blockingConn{}
	e.blocking.Store(c, bc)
	go e.serveBlocking(c, bc, h)
	return nil
}

// PauseReads stops reading c, a connection served by e, after the message
// being delivered: no more callbacks come for it and the socket is not
// read, so TCP flow control holds the peer back, until [Engine.ResumeReads].
// Writes, the closing handshake a write or Close starts, and CloseNow go
// on. While paused, the peer's silence does not count for the heartbeat
// nor against the message it is sending; input already read waits for the
// resume (at most one read buffer). Safe from any goroutine, callbacks
// included. A hub pauses a client that makes requests faster than it
// takes their answers.
func (e *Engine) PauseReads(c *Conn) { e.setPause(c, pauseApp, true) }

// ResumeReads undoes [Engine.PauseReads].
func (e *Engine) ResumeReads(c *Conn) { e.setPause(c, pauseApp, false) }

// Why a connection's reads are paused: a mask, since the application and
// the worker pool pause and resume independently.
const (
	pauseApp  = 1 << iota // PauseReads
	pausePool             // the worker pool holds too much of its input
)

func (e *Engine) setPause(c *Conn, why uint32, on bool) {
	if lc, ok := c.conn.(*loopConn); ok {
		lc.setPause(why, on)
		return
	}
	if bc, ok := e.blocking.Load(c); ok {
		bc.(*blockingConn).setPause(why, on)
	}
}

// blockingConn is the goroutine driver's state of a connection: whether
// its reads are paused.
type blockingConn struct {
	mu     sync.Mutex
	pauses uint32
	resume chan struct{} // made when a pause starts, closed when it ends
}

func (bc *blockingConn) setPause(why uint32, on bool) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	old := bc.pauses
	if on {
		bc.pauses |= why
	} else {
		bc.pauses &^= why
	}
	switch {
	case old == 0 && bc.pauses != 0:
		bc.resume = make(chan struct{})
	case old != 0 && bc.pauses == 0:
		close(bc.resume)
		bc.resume = nil
	}
}

// wait returns once reads are not paused or c has ended.
func (bc *blockingConn) wait(c *Conn) {
	bc.mu.Lock()
	resume := bc.resume
	bc.mu.Unlock()
	if resume != nil {
		select {
		case <-resume:
		case <-c.Done():
		}
	}
}

// serveBlocking is the goroutine driver: the blocking Conn's read loop,
// with the engine's callbacks.
func (e *Engine) serveBlocking(c *Conn, bc *blockingConn, h Callbacks) {
	defer e.conns.Done()
	defer e.blocking.Delete(c)
	var buf []byte
	for {
		bc.wait(c)
		mt, p, err := c.AppendMessage(buf[:0])
		if err != nil {
			if e.pool != nil {
				e.pool.closed(c, h, err)
			} else {
				h.OnClose(c, err)
			}
			// As on a loop: the handshake's end, or the linger after
			// failing the peer (so that it reads the close frame rather
			// than a reset), bounded by the close timeout.
			c.Close()
			return
		}
		if e.pool != nil {
			e.pool.run(c, h, mt, p)
		} else {
			h.OnMessage(c, mt, p)
		}
		// Keep a buffer for the next message unless it grew large.
		if cap(p) <= 64<<10 {
			buf = p
		} else {
			buf = nil
		}
	}
}

// Close stops the engine: connections still on it are dropped (CloseNow)
// and their OnClose is called with net.ErrClosed, then the loops end.
// Close them with a handshake first (Conn.Close) for a graceful stop.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	for _, l := range e.loops {
		l.shutdown()
	}
	e.blocking.Range(func(c, _ any) bool {
		c.(*Conn).closeNetConn(net.ErrClosed)
		return true
	})
	e.conns.Wait()
	if e.pool != nil {
		e.pool.stop()
	}
	return nil
}

// workerPool runs callbacks off the loops, in order per connection: each
// connection has a queue, and a connection is on the pool's run queue at
// most once, so one worker at a time works through its messages.
type workerPool struct {
	e    *Engine
	runq chan *workQueue
	wg   sync.WaitGroup
	qs   sync.Map // *Conn -> *workQueue
}

type workQueue struct {
	mu        sync.Mutex
	c         *Conn
	h         Callbacks
	tasks     []workTask
	bytes     int  // payload bytes in tasks
	paused    bool // the pool paused c's reads: bytes went over the bound
	scheduled bool
}

type workTask struct {
	mt      int
	payload []byte
	closeBy error // set: the OnClose task
	close   bool
}

func newWorkerPool(e *Engine, n int) *workerPool {
	p := &workerPool{e: e, runq: make(chan *workQueue, 1024)}
	for range n {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *workerPool) work() {
	defer p.wg.Done()
	for q := range p.runq {
		for {
			q.mu.Lock()
			if len(q.tasks) == 0 {
				q.scheduled = false
				q.mu.Unlock()
				break
			}
			t := q.tasks[0]
			q.tasks[0] = workTask{}
			q.tasks = q.tasks[1:]
			q.bytes -= len(t.payload)
			if q.paused && q.bytes <= p.e.cfg.MaxQueuedBytes/2 {
				// Under q.mu, so that a pause and its end reach the
				// connection in the order they were decided.
				q.paused = false
				p.e.setPause(q.c, pausePool, false)
			}
			q.mu.Unlock()
			if t.close {
				p.qs.Delete(q.c)
				q.h.OnClose(q.c, t.closeBy)
				continue
			}
			q.h.OnMessage(q.c, t.mt, t.payload)
		}
	}
}

func (p *workerPool) queue(c *Conn, h Callbacks) *workQueue {
	if q, ok := p.qs.Load(c); ok {
		return q.(*workQueue)
	}
	q, _ := p.qs.LoadOrStore(c, &workQueue{c: c, h: h})
	return q.(*workQueue)
}

// run queues a message (its payload copied) for c's callbacks.
func (p *workerPool) run(c *Conn, h Callbacks, mt int, payload []byte) {
	p.push(p.queue(c, h), workTask{mt: mt, payload: append([]byte(nil), payload...)})
}

// closed queues c's OnClose after its messages.
func (p *workerPool) closed(c *Conn, h Callbacks, err error) {
	p.push(p.queue(c, h), workTask{close: true, closeBy: err})
}

// push queues t. Input waiting for the workers is bounded like output:
// beyond MaxQueuedBytes the connection's reads pause until the workers
// have taken half of it, so a peer cannot make the pool hold more by
// sending faster than the callbacks run.
func (p *workerPool) push(q *workQueue, t workTask) {
	q.mu.Lock()
	q.tasks = append(q.tasks, t)
	q.bytes += len(t.payload)
	if !q.paused && q.bytes > p.e.cfg.MaxQueuedBytes {
		q.paused = true
		p.e.setPause(q.c, pausePool, true) // under q.mu: see work
	}
	schedule := !q.scheduled
	q.scheduled = true
	q.mu.Unlock()
	if schedule {
		p.runq <- q
	}
}

func (p *workerPool) stop() {
	close(p.runq)
	p.wg.Wait()
}

// errNotLoopable: the connection has no descriptor an event loop can own;
// it is served on a goroutine.
var errNotLoopable = errors.New("websocket: connection cannot be served by an event loop")

// loopable reports whether c's network connection is a plain socket an
// event loop can take over: TCP or Unix, not TLS or an HTTP/2 stream.
func loopable(c *Conn) (socket net.Conn, release func(), ok bool) {
	nc := c.conn
	if w, ok := nc.(SocketWrapper); ok {
		nc, release = w.WrappedSocket()
	}
	switch nc.(type) {
	case *net.TCPConn, *net.UnixConn:
		return nc, release, true
	}
	return nil, nil, false
}

// A SocketWrapper is a net.Conn that wraps a socket without changing its
// bytes, such as a listener's wrapper that counts open connections. An
// [Engine] holds such a connection on an event loop: WrappedSocket returns
// the socket (a *net.TCPConn or a *net.UnixConn), which the engine reads
// and writes itself, and a function the engine calls once, when the
// connection has ended, in place of the wrapper's Close (the engine closes
// the socket; release does the rest, such as counting). The engine keeps
// neither the wrapper nor the socket's net.Conn. Other wrappers (TLS, a
// conn that counts bytes) are served on goroutines, through their own
// Read and Write.
type SocketWrapper interface {
	net.Conn
	WrappedSocket() (socket net.Conn, release func())
}

// The reader's side of the engine: what an event loop asks of the Conn
// besides the blocking read path it shares (nextMessage, readRest,
// handleControl and the rules they apply).

// payloadInPlace returns the rest of the current message, a single frame
// whose payload is all buffered, unmasked and checked in place in the read
// buffer: the event loop's read that copies nothing. The caller owns the
// read side.
func (c *Conn) payloadInPlace() ([]byte, error) {
	n := int(c.frameLeft)
	p := c.rd.buffered()[:n]
	c.rd.consume(n)
	c.unmaskPayload(p)
	if err := c.checkText(p); err != nil {
		return nil, err
	}
	return p, c.endMessage()
}

// messageBuffered reports whether the rest of the message being read, and
// the control frames between its frames, are in the read buffer. A frame
// the parser refuses counts as complete: the reader reports it. An event
// loop inflates a compressed message only once it is all there, since the
// flate reader cannot stop and go on later.
func (c *Conn) messageBuffered() bool {
	b := c.rd.buffered()
	left, fin := c.frameLeft, c.frameFin
	for {
		if int64(len(b)) < left {
			return false
		}
		b = b[left:]
		if fin {
			return true
		}
		h, n, done, err := frame.Parse(b)
		if err != nil {
			return true
		}
		if !done {
			return false
		}
		b, left = b[n:], h.Length
		if !h.Opcode.IsControl() {
			fin = h.Fin
		}
	}
}

// engineRoom waits, before a data message is written to a connection on an
// event loop, until its output queue has room. Not inlined: the write
// paths of a blocking Conn pay only for the test of c.rd.mem.
//
//go:noinline
func (c *Conn) engineRoom() error {
	return c.conn.(*loopConn).awaitRoom()
}

// closeOnLoop is Close for a connection on an event loop: it sends the
// close frame and returns; the loop reads on, discarding data, until the
// peer's close frame or the close timeout, then closes the socket. It
// must not wait as Close does: it may be called from a callback, on the
// loop that has to read the peer's answer.
func (c *Conn) closeOnLoop(code int, reason string) error {
	if c.closeStarted.Swap(true) || c.closed.Load() {
		return nil
	}
	lc := c.conn.(*loopConn)
	lc.closeBy.Store(monoNow() + int64(c.closeTimeoutDuration()))
	if err := c.closeSentBy(code, reason); err != nil {
		c.closeNetConn(nil)
		return err
	}
	if c.closeReceived.Load() {
		c.closeNetConn(nil)
	}
	return nil
}

// errEngineStop ends a read inside an event loop's inflation when the
// connection ends (engine_linux.go).
var errEngineStop = errors.New("websocket: engine stopped the read")

// QueuedBytes returns how many bytes written to c the socket has not taken
// yet. Only a connection on an event loop queues output; on any other it
// is 0. A fan-out that must never wait (a hub publishing to many clients)
// checks it before writing and applies its own slow-consumer policy, since
// a write from outside the loops waits while the queue is over the
// engine's bound.
func (c *Conn) QueuedBytes() int {
	if !c.rd.mem {
		return 0
	}
	return c.conn.(*loopConn).queued()
}

// QueueLimit returns the bound on c's queued output ([EngineConfig.MaxQueuedBytes])
// when c is on an event loop, and 0 when c does not queue: its writes go
// to the network and wait for it. A data message written while
// QueuedBytes is below the limit is queued whole and never waits.
func (c *Conn) QueueLimit() int {
	if !c.rd.mem {
		return 0
	}
	return c.conn.(*loopConn).queueLimit()
}
