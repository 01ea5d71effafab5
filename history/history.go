package history

import (
	"context"
	"errors"
	"time"
)

// ErrClosed is returned by every method of a store after Close.
var ErrClosed = errors.New("history: closed")

// ErrUnavailable is returned when the store's backend cannot be reached or
// did not answer in time. An Append that fails with it may or may not have
// stored the publication.
var ErrUnavailable = errors.New("history: unavailable")

// Position is a place in a channel's history: an offset under an epoch.
// Offsets count a channel's publications from 1, without gaps, for as long
// as its epoch lasts; a new epoch means the history before it is gone.
type Position struct {
	Offset uint64
	Epoch  string
}

// Publication is one stored publication.
type Publication struct {
	Offset uint64
	Time   time.Time // when it was appended
	Data   []byte    // the encoded message, as sent to subscribers
}

// Retention bounds a channel's history: at most Size publications, none
// older than TTL. Both must be positive.
type Retention struct {
	Size int
	TTL  time.Duration
}

// Query selects publications: those with an offset greater than Since,
// oldest first (newest first with Reverse), at most Limit (0: all kept).
type Query struct {
	Since   uint64
	Limit   int
	Reverse bool
}

// Store keeps the history of channels. Its methods are safe for
// concurrent use.
type Store interface {
	// Append assigns the channel's next offset (its top plus one) and
	// stores encode(position) as the publication's Data. encode is called
	// once the offset is known, and may be called again if the store has
	// to retry; its result must depend only on the position.
	Append(ctx context.Context, channel string, r Retention, encode func(Position) []byte) (Position, error)
	// Top returns the channel's latest position: offset 0 and the epoch
	// its next publication will have, for a channel with none kept.
	Top(ctx context.Context, channel string) (Position, error)
	// Read returns the publications q selects and the channel's top.
	Read(ctx context.Context, channel string, q Query) ([]Publication, Position, error)
	// Close releases the store.
	Close() error
}
