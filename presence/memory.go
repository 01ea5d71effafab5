package presence

import (
	"context"
	"sync"
)

// Memory is a [Store] that keeps presence in the process, for one node: a
// map from channel to client to [Info]. A channel is forgotten when its
// last client leaves, so memory follows the subscriptions present.
type Memory struct {
	mu     sync.RWMutex
	closed bool                       // guarded by mu
	chans  map[string]map[string]Info // channel → client → info; never an empty inner map; guarded by mu
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-process presence store.
func NewMemory() *Memory {
	return &Memory{chans: make(map[string]map[string]Info)}
}

// Add records info under info.Client in channel, replacing an earlier
// record of that client there.
func (m *Memory) Add(ctx context.Context, channel string, info Info) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	clients := m.chans[channel]
	if clients == nil {
		clients = make(map[string]Info, 1)
		m.chans[channel] = clients
	}
	clients[info.Client] = info
	return nil
}

// Remove forgets client in channel, and the channel when it was the last.
func (m *Memory) Remove(ctx context.Context, channel, client string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	clients := m.chans[channel]
	delete(clients, client)
	if len(clients) == 0 {
		delete(m.chans, channel)
	}
	return nil
}

// List returns a copy of the channel's records, which the caller owns; nil
// for a channel nobody is in.
func (m *Memory) List(ctx context.Context, channel string) ([]Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	clients := m.chans[channel]
	if len(clients) == 0 {
		return nil, nil
	}
	out := make([]Info, 0, len(clients))
	for _, info := range clients {
		out = append(out, info)
	}
	return out, nil
}

// Close forgets every record; later calls return [ErrClosed].
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.closed = true
	m.chans = nil
	return nil
}
