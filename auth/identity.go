package auth

import "time"

// Identity is what a verified token says about its bearer.
type Identity struct {
	User      string    // claim "sub"; never "" in an Identity returned by Verify
	ExpiresAt time.Time // claim "exp"; zero when the token has none
	Subscribe []string  // claim "subscribe": grant patterns, see [Match]
	Publish   []string  // claim "publish": grant patterns, see [Match]
}

// CanSubscribe reports whether any of the Subscribe grants matches channel.
func (id Identity) CanSubscribe(channel string) bool { return matchAny(id.Subscribe, channel) }

// CanPublish reports whether any of the Publish grants matches channel.
func (id Identity) CanPublish(channel string) bool { return matchAny(id.Publish, channel) }

func matchAny(patterns []string, channel string) bool {
	for _, p := range patterns {
		if Match(p, channel) {
			return true
		}
	}
	return false
}

// Match reports whether channel matches the grant pattern. A pattern is an
// exact channel name in which '*' stands for any run of characters, the
// empty run and ':' and '#' included: "chat:*" matches "chat:lobby" and
// "chat:dm#ann", "*" matches every channel. There is no escape: channel
// names cannot contain '*'. The empty pattern matches nothing.
//
// It runs in O(len(pattern)·len(channel)) at worst and allocates nothing.
func Match(pattern, channel string) bool {
	if pattern == "" {
		return false
	}
	// Greedy glob match with one backtrack point: the last '*' seen. On a
	// mismatch, let that star swallow one more byte and retry. Byte-wise is
	// right because '*' is ASCII and never part of a multi-byte sequence.
	p, c := 0, 0
	star, mark := -1, 0
	for c < len(channel) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, c
			p++
		case p < len(pattern) && pattern[p] == channel[c]:
			p++
			c++
		case star >= 0:
			mark++
			p, c = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
