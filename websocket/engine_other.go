//go:build !linux

package websocket

import (
	"net"
	"sync/atomic"
	"time"
)

// Without epoll every connection is served on a goroutine (engine.go);
// these are never created.
const epollAvailable = false

type eventLoop struct{ goid atomic.Uint64 }

func newEventLoop(*Engine) (*eventLoop, error)                    { return nil, errNotLoopable }
func (*eventLoop) run()                                           {}
func (*eventLoop) shutdown()                                      {}
func (*eventLoop) adopt(*Conn, net.Conn, func(), Callbacks) error { return errNotLoopable }

type loopConn struct {
	net.Conn
	closeBy atomic.Int64
}

func (*loopConn) awaitRoom() error      { return nil }
func (*loopConn) lingerUntil(time.Time) {}
func (*loopConn) abort()                {}

func (c *Conn) needInput() error { return errNeedInput }

func (*loopConn) queued() int { return 0 }

func (*loopConn) writeParts([][]byte) error { return errNotLoopable }
func (*loopConn) setPause(uint32, bool)     {}
func (*loopConn) queueLimit() int           { return 0 }
