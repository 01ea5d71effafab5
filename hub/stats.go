package hub

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a hub's counters. Each counter is read atomically;
// the snapshot as a whole is not a single instant.
type Stats struct {
	Connections  uint64 // clients open now
	Connected    uint64 // clients accepted since New
	Disconnected uint64 // clients ended since New

	// Rejected counts upgrades refused, by reason: "max_connections",
	// "per_ip" (the Limiter's per-address limit), "draining",
	// "unauthorized", "handshake".
	Rejected map[string]uint64

	MessagesIn, BytesIn   uint64 // data messages and payload bytes read
	MessagesOut, BytesOut uint64 // data messages and payload bytes written

	// Dropped counts messages the DropOldest policy dropped.
	Dropped uint64
	// SlowDisconnects counts clients closed because they did not keep up: a
	// full queue under Disconnect, or a write they took nothing of for
	// WriteTimeout.
	SlowDisconnects uint64
	// Discarded counts messages still queued for a client when it ended
	// (disconnected, failed, or closed as a slow consumer).
	Discarded uint64
	// Throttled counts the times the hub waited before reading a client's
	// next message because it sent faster than Config.MaxMessageRate.
	Throttled uint64

	// CloseCodes counts disconnects by the close code seen (1006: none).
	CloseCodes map[int]uint64

	// FanoutLatency is the time Publish and Broadcast spent encoding and
	// queueing: the number of calls and their summed duration, ready for a
	// Prometheus summary (rate of Sum over rate of Count is the mean).
	FanoutLatency LatencySum
}

// LatencySum is a count of observations and their total duration.
type LatencySum struct {
	Count uint64
	Sum   time.Duration
}

// counters are the hub's live statistics.
type counters struct {
	connections, connected, disconnected atomic.Uint64

	rejectMax, rejectPerAddr, rejectDraining, rejectAuth, rejectHandshake atomic.Uint64

	messagesIn, bytesIn, messagesOut, bytesOut atomic.Uint64
	dropped, slowDisconnects, discarded        atomic.Uint64
	throttled                                  atomic.Uint64

	fanoutCount atomic.Uint64
	fanoutNanos atomic.Int64

	codesMu    sync.Mutex
	closeCodes map[int]uint64 // guarded by codesMu
}

func (s *counters) addCloseCode(code int) {
	s.codesMu.Lock()
	s.closeCodes[code]++
	s.codesMu.Unlock()
}

func (s *counters) observeFanout(start int64) {
	s.fanoutNanos.Add(monoNow() - start)
	s.fanoutCount.Add(1)
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() Stats {
	s := &h.stats
	st := Stats{
		Connections:  s.connections.Load(),
		Connected:    s.connected.Load(),
		Disconnected: s.disconnected.Load(),
		Rejected: map[string]uint64{
			"max_connections": s.rejectMax.Load(),
			"per_ip":          s.rejectPerAddr.Load(),
			"draining":        s.rejectDraining.Load(),
			"unauthorized":    s.rejectAuth.Load(),
			"handshake":       s.rejectHandshake.Load(),
		},
		MessagesIn:      s.messagesIn.Load(),
		BytesIn:         s.bytesIn.Load(),
		MessagesOut:     s.messagesOut.Load(),
		BytesOut:        s.bytesOut.Load(),
		Dropped:         s.dropped.Load(),
		SlowDisconnects: s.slowDisconnects.Load(),
		Discarded:       s.discarded.Load(),
		Throttled:       s.throttled.Load(),
		FanoutLatency: LatencySum{
			Count: s.fanoutCount.Load(),
			Sum:   time.Duration(s.fanoutNanos.Load()),
		},
	}
	s.codesMu.Lock()
	st.CloseCodes = maps.Clone(s.closeCodes)
	s.codesMu.Unlock()
	return st
}

var epoch = time.Now()

// monoNow reads the monotonic clock in nanoseconds.
func monoNow() int64 { return int64(time.Since(epoch)) }
