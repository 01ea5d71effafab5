package server

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/latchws/latch/broker"
	"github.com/latchws/latch/history"
)

// Access says who may subscribe to or publish on a namespace's channels.
type Access string

// The values of Access.
const (
	// AccessAnonymous: anyone, with a token or without.
	AccessAnonymous Access = "anonymous"
	// AccessUser: any connection with a valid token.
	AccessUser Access = "user"
	// AccessGrant: only a connection whose token grants the channel (its
	// "subscribe" or "publish" claim matches the name).
	AccessGrant Access = "grant"
	// AccessAPI: nobody over WebSocket; only the server API.
	AccessAPI Access = "api"
)

// DefaultHistoryTTL is a history namespace's TTL when none is set.
const DefaultHistoryTTL = 5 * time.Minute

// MaxHistorySize bounds Namespace.HistorySize: history is for recovering
// a short gap, not a database.
const MaxHistorySize = 10_000

// Namespace holds the rules of the channels named "Name:...". The default
// namespace (Name "") holds the channels without ':'.
type Namespace struct {
	Name string

	// Subscribe and Publish say who may subscribe and publish over
	// WebSocket; "" means AccessUser. A token's grant always allows what it
	// names, except under AccessAPI.
	Subscribe, Publish Access

	// HistorySize > 0 keeps the latest HistorySize publications of each
	// channel for HistoryTTL (0: DefaultHistoryTTL): publications get
	// offsets, and a client that reconnects recovers what it missed.
	HistorySize int
	HistoryTTL  time.Duration

	// Presence records who is subscribed (the presence op and API);
	// JoinLeave sends join and leave messages to subscribers.
	Presence, JoinLeave bool

	// Personal: a channel "ns:name#user" may be subscribed to only by the
	// connection of that user.
	Personal bool
}

// history reports whether the namespace keeps history, and its bounds.
func (ns *Namespace) retention() (history.Retention, bool) {
	return history.Retention{Size: ns.HistorySize, TTL: ns.HistoryTTL}, ns.HistorySize > 0
}

// validNamespaceName: what may precede the ':' of a channel name.
func validNamespaceName(name string) bool {
	return name == "" || broker.ValidChannel(name) && !strings.ContainsAny(name, ":#")
}

func (a Access) valid() bool {
	switch a {
	case AccessAnonymous, AccessUser, AccessGrant, AccessAPI:
		return true
	}
	return false
}

// withDefaults checks ns and fills its zero fields.
func (ns Namespace) withDefaults() (Namespace, error) {
	name := strconv.Quote(ns.Name) // `""` for the default namespace
	if !validNamespaceName(ns.Name) {
		return ns, fmt.Errorf("namespace %s: names are A-Z a-z 0-9 _ - . without ':' or '#'", name)
	}
	if ns.Subscribe == "" {
		ns.Subscribe = AccessUser
	}
	if ns.Publish == "" {
		ns.Publish = AccessUser
	}
	if !ns.Subscribe.valid() {
		return ns, fmt.Errorf("namespace %s: subscribe must be anonymous, user, grant or api, got %q", name, ns.Subscribe)
	}
	if !ns.Publish.valid() {
		return ns, fmt.Errorf("namespace %s: publish must be anonymous, user, grant or api, got %q", name, ns.Publish)
	}
	switch {
	case ns.HistorySize < 0 || ns.HistorySize > MaxHistorySize:
		return ns, fmt.Errorf("namespace %s: history size must be 0 to %d, got %d", name, MaxHistorySize, ns.HistorySize)
	case ns.HistoryTTL < 0:
		return ns, fmt.Errorf("namespace %s: history TTL must not be negative, got %v", name, ns.HistoryTTL)
	case ns.HistoryTTL > 0 && ns.HistorySize == 0:
		return ns, fmt.Errorf("namespace %s: a history TTL needs a history size", name)
	}
	if ns.HistorySize > 0 && ns.HistoryTTL == 0 {
		ns.HistoryTTL = DefaultHistoryTTL
	}
	return ns, nil
}

// Validate reports what is wrong with ns, nil if nothing is.
func (ns Namespace) Validate() error {
	_, err := ns.withDefaults()
	return err
}

// namespaces is the immutable table of a server's namespaces.
type namespaces struct {
	byName map[string]*Namespace
	list   []*Namespace // in configuration order
	open   *Namespace   // set when none is configured: every channel's
}

// openNamespace is the default namespace of a server configured with none:
// anyone may subscribe and publish, as before namespaces existed.
var openNamespace = Namespace{Subscribe: AccessAnonymous, Publish: AccessAnonymous}

func newNamespaces(cfg []Namespace) (*namespaces, error) {
	t := &namespaces{byName: make(map[string]*Namespace, len(cfg))}
	if cfg == nil {
		ns := openNamespace
		t.open = &ns
		return t, nil
	}
	for _, ns := range cfg {
		ns, err := ns.withDefaults()
		if err != nil {
			return nil, err
		}
		if _, dup := t.byName[ns.Name]; dup {
			return nil, fmt.Errorf("namespace %q is configured twice", ns.Name)
		}
		t.byName[ns.Name] = &ns
		t.list = append(t.list, &ns)
	}
	return t, nil
}

// need reports whether some namespace keeps history, and whether some
// keeps presence.
func (t *namespaces) need() (hist, pres bool) {
	for _, ns := range t.list {
		if _, h := ns.retention(); h {
			hist = true
		}
		pres = pres || ns.Presence
	}
	return hist, pres
}

// namespaceName returns the part of channel before its first ':' ("" if
// none).
func namespaceName(channel string) string {
	if i := strings.IndexByte(channel, ':'); i >= 0 {
		return channel[:i]
	}
	return ""
}

// lookup returns the namespace of a valid channel name, nil if it has none.
func (t *namespaces) lookup(channel string) *Namespace {
	if t.open != nil {
		return t.open
	}
	return t.byName[namespaceName(channel)]
}

// personalUser returns the user a personal channel belongs to: what
// follows its last '#'.
func personalUser(channel string) (string, bool) {
	i := strings.LastIndexByte(channel, '#')
	if i < 0 || i == len(channel)-1 {
		return "", false
	}
	return channel[i+1:], true
}
