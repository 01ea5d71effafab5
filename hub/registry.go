package hub

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/latchws/latch/websocket"
)

// numShards spreads the registry and the channel table over independently
// locked shards so that connects, subscribes and publishes on different
// shards never wait for each other (there is no central hub goroutine).
const numShards = 32

type clientShard struct {
	mu sync.RWMutex
	m  map[uint64]*Client // guarded by mu
}

type channelShard struct {
	mu sync.RWMutex
	m  map[string]map[*Client]struct{} // channel → subscribers; guarded by mu
}

var chanSeed = maphash.MakeSeed()

func (h *Hub) clientShard(id uint64) *clientShard { return &h.clients[id%numShards] }

func (h *Hub) channelShard(name string) *channelShard {
	return &h.chans[maphash.String(chanSeed, name)%numShards]
}

func (h *Hub) register(c *Client) {
	s := h.clientShard(c.id)
	s.mu.Lock()
	s.m[c.id] = c
	s.mu.Unlock()
	h.stats.connections.Add(1)
}

func (h *Hub) unregister(c *Client) {
	s := h.clientShard(c.id)
	s.mu.Lock()
	delete(s.m, c.id)
	s.mu.Unlock()
	h.stats.connections.Add(^uint64(0))
}

// each calls f for every registered client, holding one shard's read lock
// at a time; f must not block.
func (h *Hub) each(f func(c *Client)) {
	for i := range h.clients {
		s := &h.clients[i]
		s.mu.RLock()
		for _, c := range s.m {
			f(c)
		}
		s.mu.RUnlock()
	}
}

// Subscribe adds c to channel. It returns ErrClosed if the client has
// ended or is closing.
func (h *Hub) Subscribe(c *Client, channel string) error {
	// Lock order: c.subMu before a channel shard's mu.
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if c.gone {
		return ErrClosed
	}
	if _, ok := c.channels[channel]; ok {
		return nil
	}
	if c.channels == nil {
		c.channels = make(map[string]struct{}) // most clients of a hub that has channels subscribe
	}
	c.channels[channel] = struct{}{}
	s := h.channelShard(channel)
	s.mu.Lock()
	subs := s.m[channel]
	if subs == nil {
		subs = make(map[*Client]struct{})
		s.m[channel] = subs
	}
	subs[c] = struct{}{}
	s.mu.Unlock()
	return nil
}

// Unsubscribe removes c from channel; it does nothing if c was not
// subscribed.
func (h *Hub) Unsubscribe(c *Client, channel string) {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if _, ok := c.channels[channel]; !ok {
		return
	}
	delete(c.channels, channel)
	h.removeSub(c, channel)
}

func (h *Hub) removeSub(c *Client, channel string) {
	s := h.channelShard(channel)
	s.mu.Lock()
	if subs := s.m[channel]; subs != nil {
		delete(subs, c)
		if len(subs) == 0 {
			delete(s.m, channel)
		}
	}
	s.mu.Unlock()
}

// Channels returns the channels c is subscribed to, sorted.
func (h *Hub) Channels(c *Client) []string {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	out := make([]string, 0, len(c.channels))
	for ch := range c.channels {
		out = append(out, ch)
	}
	slices.Sort(out)
	return out
}

// unsubscribeAll removes an ending client from all its channels; later
// Subscribe calls fail with ErrClosed.
func (c *Client) unsubscribeAll() {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	c.gone = true
	for ch := range c.channels {
		c.hub.removeSub(c, ch)
	}
	clear(c.channels)
}

// Publish sends one message to every client subscribed to channel, encoded
// once (a websocket.PreparedMessage), without blocking on any client: each
// subscriber's queue takes it or the slow-consumer policy applies. It
// returns how many clients it was queued for. data is copied; a text
// message that is not valid UTF-8 is queued for no one.
func (h *Hub) Publish(channel string, messageType int, data []byte) int {
	start := monoNow()
	pm, size, err := prepare(messageType, data)
	if err != nil {
		h.log.Warn("hub: publish refused", "channel", channel, "err", err)
		return 0
	}
	s := h.channelShard(channel)
	n := 0
	s.mu.RLock()
	for c := range s.m[channel] {
		if c.enqueue(pm, size) == nil {
			n++
		}
	}
	s.mu.RUnlock()
	h.stats.observeFanout(start)
	return n
}

// Broadcast sends one message to every open client, encoded once, as
// Publish does for a channel. It returns how many clients it was queued
// for.
func (h *Hub) Broadcast(messageType int, data []byte) int {
	start := monoNow()
	pm, size, err := prepare(messageType, data)
	if err != nil {
		h.log.Warn("hub: broadcast refused", "err", err)
		return 0
	}
	n := 0
	h.each(func(c *Client) {
		if c.enqueue(pm, size) == nil {
			n++
		}
	})
	h.stats.observeFanout(start)
	return n
}

// prepare validates and copies a data message for queueing.
func prepare(messageType int, data []byte) (*websocket.PreparedMessage, int, error) {
	if messageType != websocket.TextMessage && messageType != websocket.BinaryMessage {
		return nil, 0, errDataType
	}
	pm, err := websocket.NewPreparedMessage(messageType, slices.Clone(data))
	if err != nil {
		return nil, 0, err
	}
	return pm, len(data), nil
}

// Client returns the registered client with id, nil if there is none.
func (h *Hub) Client(id uint64) *Client {
	s := h.clientShard(id)
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[id]
}

// EachChannel calls f for every channel with subscribers, with their
// count, in no set order, until f returns false. It holds one shard's read
// lock at a time: f must not block or call back into the hub.
func (h *Hub) EachChannel(f func(channel string, subscribers int) bool) {
	for i := range h.chans {
		s := &h.chans[i]
		s.mu.RLock()
		for ch, subs := range s.m {
			if !f(ch, len(subs)) {
				s.mu.RUnlock()
				return
			}
		}
		s.mu.RUnlock()
	}
}
