package broker

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors returned by brokers. Implementations wrap them with %w, so test
// with errors.Is.
var (
	// ErrClosed is returned by every method of a broker after Close.
	ErrClosed = errors.New("broker: closed")
	// ErrInvalidChannel is returned for a name that is not 1–128 bytes of
	// A-Z a-z 0-9 _ - . : # (the pub/sub protocol's rule, docs/protocol.md).
	ErrInvalidChannel = errors.New("broker: invalid channel name")
	// ErrUnavailable is returned by Publish when the message could not be
	// handed to the backend (for NATS: disconnected, or no confirmation
	// before the context ended). The message may or may not have been
	// delivered; it is never retried by the broker.
	ErrUnavailable = errors.New("broker: unavailable")
)

// MaxChannelLen is the longest channel name, in bytes.
const MaxChannelLen = 128

// Handler receives a message published (on any node) to a channel this
// node is subscribed to. Calls for one channel never overlap and arrive in
// the order the broker received them; calls for different channels may run
// concurrently. payload must not be modified, and is valid only until the
// handler returns. A handler must not call Close.
type Handler func(channel string, payload []byte)

// Broker carries messages between the nodes of a cluster.
type Broker interface {
	// Publish returns nil only once the message is accepted for delivery to
	// every node subscribed now.
	Publish(ctx context.Context, channel string, payload []byte) error
	// Subscribe/Unsubscribe: interest of this node in a channel (the caller
	// counts local subscribers and calls Subscribe on the first,
	// Unsubscribe after the last). Idempotent.
	Subscribe(channel string) error
	Unsubscribe(channel string) error
	// Stats reports the broker's counters; safe to call at any time.
	Stats() Stats
	// Close releases the broker. When it returns, the Handler is not
	// running and will not be called again.
	Close() error
}

// Stats are a broker's counters since it was created.
type Stats struct {
	Published     uint64 // Publish calls that returned nil
	Received      uint64 // messages handed to the Handler
	PublishErrors uint64 // Publish calls that returned an error
	Reconnects    uint64 // successful reconnections to the backend
	Dropped       uint64 // messages for this node lost because the Handler fell behind
	Connected     bool   // connected to the backend now
	// Disconnected is the total time spent without a backend connection,
	// the current outage included.
	Disconnected time.Duration
}

// ValidChannel reports whether name is 1–128 bytes of A-Z a-z 0-9 _ - . : #
// ('#' marks a personal channel: chat:inbox#ann).
func ValidChannel(name string) bool {
	if len(name) == 0 || len(name) > MaxChannelLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_', c == '-', c == '.', c == ':', c == '#':
		default:
			return false
		}
	}
	return true
}

// CheckChannel returns nil for a valid name and an error wrapping
// ErrInvalidChannel otherwise.
func CheckChannel(name string) error {
	if ValidChannel(name) {
		return nil
	}
	if len(name) > 40 {
		name = name[:40] + "..."
	}
	return fmt.Errorf("%w: %q", ErrInvalidChannel, name)
}
