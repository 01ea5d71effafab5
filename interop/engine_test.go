package interop

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/latchws/latch/websocket"
)

// latchConn is what the scenarios use of the Latch side: a blocking
// *websocket.Conn, or one on an event engine (engineConn), whose messages
// arrive by callback.
type latchConn interface {
	ReadMessage() (int, []byte, error)
	SetReadDeadline(time.Time) error
	WriteMessage(int, []byte) error
	SetWriteDeadline(time.Time) error
	NextWriter(int) (io.WriteCloser, error)
	WriteControl(int, []byte, time.Time) error
	SetPongHandler(func(string) error)
	SetPingHandler(func(string) error)
	PingHandler() func(string) error
	Close() error
	CloseWithCode(int, string) error
	CloseNow() error
	Subprotocol() string
	Compressed() bool
}

// testEngine is the engine every engine scenario runs on: epoll's on
// Linux, where a quiet fallback to goroutines would test nothing new.
var testEngine = sync.OnceValues(func() (*websocket.Engine, error) {
	e, err := websocket.NewEngine(websocket.EngineConfig{})
	if err == nil && runtime.GOOS == "linux" && e.Driver() != "epoll" {
		err = fmt.Errorf("engine driver %q on Linux", e.Driver())
	}
	return e, err
})

// engineConn is a Conn served by the engine. Its reads are the messages
// OnMessage delivered (copied: the payload is the loop's only during the
// call) and, at the end, the error OnClose reported.
type engineConn struct {
	*websocket.Conn
	msgs chan engineMsg

	mu       sync.Mutex
	deadline time.Time
	end      error // sticky, once read
}

type engineMsg struct {
	typ int
	p   []byte
	err error // OnClose's, last
}

// onEngine hands c to the engine; the scenarios then read through the
// callbacks.
func onEngine(t *testing.T, c *websocket.Conn) latchConn {
	t.Helper()
	e, err := testEngine()
	if err != nil {
		t.Fatal(err)
	}
	ec := &engineConn{Conn: c, msgs: make(chan engineMsg, 16)}
	err = e.Serve(c, websocket.Callbacks{
		OnMessage: func(_ *websocket.Conn, typ int, p []byte) {
			ec.msgs <- engineMsg{typ: typ, p: append([]byte(nil), p...)}
		},
		OnClose: func(_ *websocket.Conn, err error) { ec.msgs <- engineMsg{err: err} },
	})
	if err != nil {
		t.Fatalf("Engine.Serve: %v", err)
	}
	if c.QueueLimit() == 0 && runtime.GOOS == "linux" {
		t.Fatal("the connection is not on an event loop")
	}
	return ec
}

// ReadMessage returns the next message OnMessage delivered, or OnClose's
// error, waiting until the read deadline.
func (ec *engineConn) ReadMessage() (int, []byte, error) {
	ec.mu.Lock()
	end, deadline := ec.end, ec.deadline
	ec.mu.Unlock()
	if end != nil {
		return 0, nil, end
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		tm := time.NewTimer(time.Until(deadline))
		defer tm.Stop()
		timeout = tm.C
	}
	select {
	case m := <-ec.msgs:
		if m.err != nil {
			ec.mu.Lock()
			ec.end = m.err
			ec.mu.Unlock()
			return 0, nil, m.err
		}
		return m.typ, m.p, nil
	case <-timeout:
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// SetReadDeadline bounds ReadMessage's wait. It is not the Conn's: on an
// engine a read deadline fails the connection when it passes.
func (ec *engineConn) SetReadDeadline(t time.Time) error {
	ec.mu.Lock()
	ec.deadline = t
	ec.mu.Unlock()
	return nil
}
