package presence

import (
	"context"
	"errors"
	"time"
)

// ErrClosed is returned by every method of a store after Close.
var ErrClosed = errors.New("presence: closed")

// ErrUnavailable is returned when the store's backend cannot be reached.
var ErrUnavailable = errors.New("presence: unavailable")

// Info describes one client subscribed to a channel.
type Info struct {
	Client      string    // the client's id, unique in the cluster
	User        string    // the authenticated user; "" for anonymous
	ConnectedAt time.Time // when the client connected
}

// Store records who is subscribed to which channel. Its methods are safe
// for concurrent use.
type Store interface {
	// Add records info as present in channel (again: no error).
	Add(ctx context.Context, channel string, info Info) error
	// Remove forgets client in channel (absent: no error).
	Remove(ctx context.Context, channel, client string) error
	// List returns the clients present in channel, in no set order.
	List(ctx context.Context, channel string) ([]Info, error)
	// Close releases the store; a store shared by nodes forgets this
	// node's entries (or lets them expire).
	Close() error
}
