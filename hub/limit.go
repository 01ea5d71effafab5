package hub

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
)

var (
	// ErrTooManyConnections is returned by [Limiter.Acquire] when the
	// limiter's maximum of open connections is reached. It is an
	// *HTTPError: the server is full, so 503 Service Unavailable.
	ErrTooManyConnections error = &HTTPError{Status: http.StatusServiceUnavailable, Message: "too many connections"}

	// ErrTooManyFromAddr is returned by [Limiter.Acquire] when the
	// request's IP address holds the per-address maximum already. It is an
	// *HTTPError with 429 Too Many Requests (RFC 6585 §4) rather than 503:
	// the server has room, it is this client that holds too much, and a
	// client or load balancer must not take it for a server in trouble.
	ErrTooManyFromAddr error = &HTTPError{Status: http.StatusTooManyRequests, Message: "too many connections from your address"}
)

// Limiter bounds the WebSocket connections open at once, in total and per
// client IP address. One Limiter may be shared by several handlers (a
// [Hub] through [Config.Limiter], and handlers of one's own), so that one
// maximum covers every route. Its methods are safe for concurrent use.
//
// The address is the IP of http.Request.RemoteAddr. IPv6 addresses count
// per /64 network, since one host usually holds a whole /64. Behind a
// reverse proxy every client has the proxy's address: leave the
// per-address limit off there. A RemoteAddr without an IP (a Unix socket)
// is not limited per address.
type Limiter struct {
	max, perAddr int // immutable; 0 means no limit

	open atomic.Int64 // slots held, across all addresses

	mu     sync.Mutex
	byAddr map[netip.Addr]int // guarded by mu; slots held per address, entries deleted at zero

	releaseTotal func() // immutable; the release of a slot not counted per address
}

// NewLimiter returns a Limiter allowing maxOpen connections in all and
// perAddr per client address; 0 (or less) means no limit.
func NewLimiter(maxOpen, perAddr int) *Limiter {
	l := &Limiter{max: max(maxOpen, 0), perAddr: max(perAddr, 0)}
	l.releaseTotal = func() { l.open.Add(-1) }
	if l.perAddr > 0 {
		l.byAddr = make(map[netip.Addr]int)
	}
	return l
}

// Acquire takes one slot for the connection r asks for. On success the
// caller must call release exactly once, when the connection has ended.
// Otherwise err is [ErrTooManyConnections] or [ErrTooManyFromAddr], both
// *HTTPError values naming the status to answer with.
func (l *Limiter) Acquire(r *http.Request) (release func(), err error) {
	if n := l.open.Add(1); l.max > 0 && n > int64(l.max) {
		l.open.Add(-1)
		return nil, ErrTooManyConnections
	}
	if l.perAddr == 0 {
		return l.releaseTotal, nil
	}
	addr, ok := addrKey(r.RemoteAddr)
	if !ok {
		return l.releaseTotal, nil
	}
	l.mu.Lock()
	if l.byAddr[addr] >= l.perAddr {
		l.mu.Unlock()
		l.open.Add(-1)
		return nil, ErrTooManyFromAddr
	}
	l.byAddr[addr]++
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		if l.byAddr[addr]--; l.byAddr[addr] <= 0 {
			delete(l.byAddr, addr) // the map holds only addresses with open connections
		}
		l.mu.Unlock()
		l.open.Add(-1)
	}, nil
}

// Len returns the number of slots held.
func (l *Limiter) Len() int { return int(l.open.Load()) }

// Addrs returns the number of client addresses holding slots, counted only
// when a per-address limit is set.
func (l *Limiter) Addrs() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byAddr)
}

// addrKey is the per-address key of a RemoteAddr: its IP, unmapped from
// IPv4-in-IPv6, or its /64 network for IPv6.
func addrKey(remote string) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		ip = p.Addr()
	}
	return ip, true
}

// AddrKey returns what per-address limits count a remote address as: its
// IP (IPv4-mapped addresses unmapped), or its /64 network for IPv6; false
// when remote holds no IP address.
func AddrKey(remote string) (netip.Addr, bool) { return addrKey(remote) }
