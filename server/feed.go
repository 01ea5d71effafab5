package server

import (
	"bytes"
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/latchws/latch/history"
	"github.com/latchws/latch/websocket"
)

// A publication of a history channel crosses the broker in an envelope:
// '#', its offset, ' ', its epoch, '\n', then the message as clients get
// it. Other payloads are JSON messages and start with '{'.
const envelopeMark = '#'

// appendEnvelope appends the envelope header of pos.
func appendEnvelope(b []byte, pos history.Position) []byte {
	b = append(b, envelopeMark)
	b = strconv.AppendUint(b, pos.Offset, 10)
	b = append(b, ' ')
	b = append(b, pos.Epoch...)
	return append(b, '\n')
}

// parseEnvelope splits a history publication from the broker.
func parseEnvelope(payload []byte) (history.Position, []byte, bool) {
	nl := bytes.IndexByte(payload, '\n')
	sp := bytes.IndexByte(payload, ' ')
	if len(payload) == 0 || payload[0] != envelopeMark || nl < 0 || sp < 0 || sp > nl {
		return history.Position{}, nil, false
	}
	off, err := strconv.ParseUint(string(payload[1:sp]), 10, 64)
	if err != nil || off == 0 {
		return history.Position{}, nil, false
	}
	return history.Position{Offset: off, Epoch: string(payload[sp+1 : nl])}, payload[nl+1:], true
}

// A feed is this node's view of a history channel it has subscribers
// for: the last offset it fanned out. Publications reach a node through
// the broker, which may bring them late, twice (a retried publish) or,
// from several publishers, out of order; the feed fans them out in offset
// order, exactly once, filling a gap from the history. Recovery takes the
// same lock, so a recovering client gets everything up to the feed's
// offset from the history and everything after it live: no gap, no
// duplicate (docs/protocol.md, Recovery).
type feed struct {
	refs int // local subscribers; guarded by feedTable.mu

	mu    sync.Mutex // held while fanning out and while a client recovers
	known bool       // last and epoch are set
	last  uint64
	epoch string
}

type feedTable struct {
	mu sync.Mutex
	m  map[string]*feed
}

// acquire returns the feed of channel for one more local subscriber.
func (t *feedTable) acquire(channel string) *feed {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]*feed)
	}
	f := t.m[channel]
	if f == nil {
		f = &feed{}
		t.m[channel] = f
	}
	f.refs++
	return f
}

// release drops one local subscriber; the last one ends the feed.
func (t *feedTable) release(channel string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[channel]; f != nil {
		if f.refs--; f.refs <= 0 {
			delete(t.m, channel)
		}
	}
}

func (t *feedTable) get(channel string) *feed {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[channel]
}

// snapshot returns the channels with feeds, for the periodic check.
func (t *feedTable) snapshot() map[string]*feed {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]*feed, len(t.m))
	for ch, f := range t.m {
		out[ch] = f
	}
	return out
}

// storeTimeout bounds one history operation on the delivery path.
const storeTimeout = 5 * time.Second

// fillLimit bounds the publications one gap fill reads.
const fillLimit = 1000

// deliverAt fans out a history publication in offset order.
func (p *pubsub) deliverAt(channel string, pos history.Position, msg []byte) {
	f := p.feeds.get(channel)
	if f == nil {
		return // no local subscriber
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case !f.known:
		// The first subscriber is being added: it reads the history up
		// to here.
		f.known, f.last, f.epoch = true, pos.Offset-1, pos.Epoch
	case pos.Epoch != f.epoch:
		// The channel's history was lost (expired, evicted): a new
		// series of offsets from 1.
		f.last, f.epoch = 0, pos.Epoch
	}
	if pos.Offset <= f.last {
		return // already fanned out
	}
	if pos.Offset > f.last+1 && !p.fill(channel, f, pos.Offset-1) {
		// The history could not be read: not lost, later. The check
		// (syncFeeds) fills from f.last, this publication included.
		return
	}
	p.fanout(channel, msg)
	f.last = pos.Offset
}

// fill fans out, from the history, the publications after f.last up to
// upTo; f.mu is held. What the history no longer has is counted as lost
// and skipped: a client sees the gap in the offsets. It reports false,
// with f.last where the history read stopped, when the history could not
// be read: nothing is lost then, the next try goes on from f.last.
func (p *pubsub) fill(channel string, f *feed, upTo uint64) bool {
	for f.last < upTo {
		ctx, cancel := context.WithTimeout(p.stopping, storeTimeout)
		pubs, top, err := p.history.Read(ctx, channel, history.Query{Since: f.last, Limit: int(min(upTo-f.last, fillLimit))})
		cancel()
		if err != nil {
			p.logger.Warn("history read for a gap failed", "channel", channel, "from", f.last+1, "to", upTo, "err", err)
			return false
		}
		if top.Epoch != f.epoch {
			break
		}
		progressed := false
		for _, pub := range pubs {
			if pub.Offset <= f.last || pub.Offset > upTo {
				continue
			}
			if pub.Offset > f.last+1 {
				p.metrics.gapsLost.Add(float64(pub.Offset - f.last - 1))
			}
			p.fanout(channel, pub.Data)
			p.metrics.gapFills.Inc()
			f.last = pub.Offset
			progressed = true
		}
		if !progressed {
			break
		}
	}
	if f.last < upTo {
		p.metrics.gapsLost.Add(float64(upTo - f.last))
		f.last = upTo
	}
	return true
}

// catchUp fans out what the history has beyond f.last, its top being top;
// a top of another epoch starts a new series this node has not seen. f.mu
// is held.
func (p *pubsub) catchUp(channel string, f *feed, top history.Position) {
	if top.Epoch != f.epoch && top.Offset > 0 {
		f.last, f.epoch = 0, top.Epoch
	}
	if top.Epoch == f.epoch && top.Offset > f.last {
		p.fill(channel, f, top.Offset)
	}
}

// fanout hands a message to this node's subscribers of channel.
func (p *pubsub) fanout(channel string, msg []byte) {
	start := time.Now()
	n := p.hub.Publish(channel, websocket.TextMessage, msg)
	p.metrics.observeFanout(time.Since(start), n)
}

// syncFeeds brings every feed up to its channel's top in the history:
// a publication whose broker message was lost (a node cut off from NATS,
// a publish that was stored but not sent) or whose gap fill failed is
// fanned out within one interval. Only with an external broker or
// history: in process nothing is lost.
func (p *pubsub) syncFeeds(interval time.Duration) {
	p.every(interval, func() {
		for ch, f := range p.feeds.snapshot() {
			ctx, cancel := context.WithTimeout(p.stopping, storeTimeout)
			top, err := p.history.Top(ctx, ch)
			cancel()
			if err != nil {
				continue
			}
			f.mu.Lock()
			if f.known {
				p.catchUp(ch, f, top)
			}
			f.mu.Unlock()
		}
	})
}
