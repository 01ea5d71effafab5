package broker

import (
	"context"
	"sync"
	"sync/atomic"
)

// Memory is the in-process Broker, for a single node: Publish delivers
// synchronously to the Handler when the channel is subscribed, so a message
// is accepted exactly when Publish returns nil and the order of one
// publisher's messages is kept. Safe for concurrent use.
type Memory struct {
	h Handler // immutable

	mu       sync.Mutex
	subs     map[string]struct{} // guarded by mu
	inflight int                 // Handler calls running; guarded by mu
	closed   bool                // guarded by mu
	idle     sync.Cond           // signalled when inflight drops to 0 after Close; L is &mu

	published, received, publishErrors atomic.Uint64
}

var _ Broker = (*Memory)(nil)

// NewMemory returns an in-process broker that delivers to h.
func NewMemory(h Handler) *Memory {
	m := &Memory{h: h, subs: make(map[string]struct{})}
	m.idle.L = &m.mu
	return m
}

// Publish calls the Handler with the message, before returning, if the
// channel is subscribed; a message for a channel without interest is
// accepted and goes nowhere.
func (m *Memory) Publish(ctx context.Context, channel string, payload []byte) error {
	if err := m.publish(ctx, channel, payload); err != nil {
		m.publishErrors.Add(1)
		return err
	}
	m.published.Add(1)
	return nil
}

func (m *Memory) publish(ctx context.Context, channel string, payload []byte) error {
	if err := CheckChannel(channel); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return ErrClosed
	}
	if _, ok := m.subs[channel]; !ok {
		m.mu.Unlock()
		return nil
	}
	m.inflight++
	m.mu.Unlock()

	// Outside the lock: the Handler may Subscribe, Unsubscribe or Publish.
	defer m.done()
	m.h(channel, payload)
	m.received.Add(1)
	return nil
}

func (m *Memory) done() {
	m.mu.Lock()
	m.inflight--
	if m.inflight == 0 && m.closed {
		m.idle.Broadcast()
	}
	m.mu.Unlock()
}

// Subscribe starts delivery of the channel's messages to the Handler.
func (m *Memory) Subscribe(channel string) error {
	if err := CheckChannel(channel); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.subs[channel] = struct{}{}
	return nil
}

// Unsubscribe stops delivery of the channel's messages.
func (m *Memory) Unsubscribe(channel string) error {
	if err := CheckChannel(channel); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	delete(m.subs, channel)
	return nil
}

// Stats reports the counters. Connected is true until Close; Reconnects,
// Dropped and Disconnected are always zero.
func (m *Memory) Stats() Stats {
	m.mu.Lock()
	connected := !m.closed
	m.mu.Unlock()
	return Stats{
		Published:     m.published.Load(),
		Received:      m.received.Load(),
		PublishErrors: m.publishErrors.Load(),
		Connected:     connected,
	}
}

// Close stops all delivery and waits for running Handler calls to return.
// Closing twice is not an error.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.subs = nil
	for m.inflight > 0 {
		m.idle.Wait()
	}
	return nil
}
