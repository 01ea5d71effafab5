package websocket

import (
	"sync"
	"sync/atomic"
	"time"
)

// heartbeat finds dead peers without a goroutine of its own: a timer wakes
// up, looks at how long the current read has been waiting for the network,
// pings the peer when that wait reaches the interval, and fails the
// connection when the wait started before the ping and still has not ended
// a timeout later. A read that is not waiting (the application is busy or
// never reads) is never judged: pongs are only seen while someone reads.
type heartbeat struct {
	waitStart atomic.Int64 // monoNow when the current read began to wait; 0 = not waiting

	mu         sync.Mutex // guards the fields below
	timer      *time.Timer
	interval   time.Duration
	timeout    time.Duration
	pingSentAt int64 // monoNow of the outstanding ping; 0 = none
}

// SetHeartbeat turns the heartbeat on with the given interval and timeout,
// or off when interval <= 0. While a read waits for the peer, the peer is
// pinged once the wait reaches interval; if nothing arrives within timeout
// after the ping, the connection is dropped and the read returns an error
// matching [ErrHeartbeatTimeout]. A timeout <= 0 means the same as interval.
//
// Server connections start with the heartbeat on (see
// [Upgrader.HeartbeatInterval]); client connections with it off unless
// [Dialer.HeartbeatInterval] is set.
func (c *Conn) SetHeartbeat(interval, timeout time.Duration) {
	hb := &c.hb
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if timeout <= 0 {
		timeout = interval
	}
	hb.interval, hb.timeout, hb.pingSentAt = interval, timeout, 0
	if interval <= 0 {
		if hb.timer != nil {
			hb.timer.Stop()
		}
		return
	}
	if c.closed.Load() || c.rd.mem {
		return // closed, or the event loop's timer judges (engine.go)
	}
	if hb.timer == nil {
		hb.timer = time.AfterFunc(interval, c.heartbeatTick)
	} else {
		hb.timer.Reset(interval)
	}
}

func (c *Conn) stopHeartbeat() {
	c.hb.mu.Lock()
	if c.hb.timer != nil {
		c.hb.timer.Stop()
	}
	c.hb.interval = 0
	c.hb.mu.Unlock()
}

func (c *Conn) heartbeatTick() {
	hb := &c.hb
	hb.mu.Lock()
	if hb.interval <= 0 {
		hb.mu.Unlock()
		return
	}
	if c.closed.Load() {
		hb.mu.Unlock()
		return
	}
	now := monoNow()
	waiting := hb.waitStart.Load()
	interval, timeout := int64(hb.interval), int64(hb.timeout)
	if hb.pingSentAt != 0 {
		if waiting != 0 && waiting <= hb.pingSentAt {
			// The read has waited since before the ping: nothing came back.
			if left := hb.pingSentAt + timeout - now; left > 0 {
				hb.timer.Reset(time.Duration(left))
				hb.mu.Unlock()
				return
			}
			hb.mu.Unlock()
			c.fail(ErrHeartbeatTimeout)
			return
		}
		hb.pingSentAt = 0
	}
	if waiting == 0 || now-waiting < interval {
		next := interval
		if waiting != 0 {
			next = waiting + interval - now
		}
		hb.timer.Reset(time.Duration(next))
		hb.mu.Unlock()
		return
	}
	hb.pingSentAt = now
	hb.timer.Reset(time.Duration(timeout))
	hb.mu.Unlock()
	// Outside the lock: the write may wait for a writer holding the conn.
	err := c.WriteControl(PingMessage, nil, time.Now().Add(time.Duration(timeout)))
	if err != nil && err != ErrCloseSent && !isTimeout(err) {
		c.fail(err)
	}
}
