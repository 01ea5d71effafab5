package server

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/latchws/latch/hub"
	"github.com/latchws/latch/websocket"
)

// Nodes tell each other about themselves on the control channel every
// nodeInterval; a node not heard of for nodeExpiry is gone.
// nodeInterval is a variable for the package's tests, whose fake brokers
// count publishes.
var (
	nodeInterval = 5 * time.Second
	nodeExpiry   = 3 * nodeInterval
)

const (
	// maxNodeChannels bounds the channel counts one node reports.
	maxNodeChannels = 10_000
)

// command is a message on the control channel: a server API command for
// every node, or a node's report.
type command struct {
	Op      string `json:"op"` // disconnect, unsubscribe, node
	User    string `json:"user,omitempty"`
	Client  string `json:"client,omitempty"`
	Channel string `json:"channel,omitempty"`
	Code    int    `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`

	Node *nodeInfo `json:"node,omitempty"`
}

// nodeInfo is what a node reports of itself.
type nodeInfo struct {
	ID          string         `json:"id"`
	Clients     int            `json:"clients"`
	Channels    map[string]int `json:"channels"` // local subscribers per channel
	Truncated   bool           `json:"truncated,omitempty"`
	StartedAt   int64          `json:"started_at"` // unix ms
	ReportedAt  int64          `json:"reported_at"`
	seenLocally time.Time
}

// nodeTable holds the latest report of every other node.
type nodeTable struct {
	mu sync.Mutex
	m  map[string]*nodeInfo
}

func (t *nodeTable) put(n *nodeInfo) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[string]*nodeInfo)
	}
	n.seenLocally = time.Now()
	t.m[n.ID] = n
}

// live returns the reports younger than nodeExpiry, dropping the others.
func (t *nodeTable) live() []*nodeInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*nodeInfo
	for id, n := range t.m {
		if time.Since(n.seenLocally) > nodeExpiry {
			delete(t.m, id)
			continue
		}
		out = append(out, n)
	}
	return out
}

// self reports this node now.
func (p *pubsub) self(startedAt time.Time) *nodeInfo {
	n := &nodeInfo{ID: p.nodeName, Clients: p.hub.Len(), Channels: make(map[string]int), StartedAt: startedAt.UnixMilli(), ReportedAt: time.Now().UnixMilli()}
	p.hub.EachChannel(func(ch string, subs int) bool {
		if ch == controlChannel {
			return true
		}
		if len(n.Channels) >= maxNodeChannels {
			n.Truncated = true
			return false
		}
		n.Channels[ch] = subs
		return true
	})
	return n
}

// reportNodes publishes this node's report until the server stops; only
// with an external broker (alone, a node knows itself).
func (p *pubsub) reportNodes(startedAt time.Time) {
	p.every(nodeInterval, func() { _ = p.sendCommand(command{Op: "node", Node: p.self(startedAt)}) })
}

// every runs f every interval until the server stops.
func (p *pubsub) every(interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stopping.Done():
			return
		case <-t.C:
		}
		f()
	}
}

// sendCommand hands a command to every node: through the broker, or to
// this node alone when there is no other.
func (p *pubsub) sendCommand(cmd command) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	if !p.clustered {
		p.control(b)
		return nil
	}
	ctx, cancel := context.WithTimeout(p.stopping, p.pubTimeout)
	defer cancel()
	return p.broker.Publish(ctx, controlChannel, b)
}

// control carries out a command from the control channel.
func (p *pubsub) control(payload []byte) {
	var cmd command
	if err := json.Unmarshal(payload, &cmd); err != nil {
		p.logger.Warn("bad control message dropped", "err", err)
		return
	}
	switch cmd.Op {
	case "node":
		if cmd.Node != nil && cmd.Node.ID != p.nodeName {
			p.nodes.put(cmd.Node)
		}
	case "disconnect":
		for _, c := range p.localClients(cmd.User, cmd.Client) {
			c.Close(cmd.Code, cmd.Reason)
		}
	case "unsubscribe":
		for _, c := range p.localClients(cmd.User, cmd.Client) {
			p.serverUnsubscribe(c, cmd.Channel)
		}
	}
}

// localClients finds this node's connections of a user, or the client
// with an id (both when both are given: that client, if it is the user's).
func (p *pubsub) localClients(user, client string) []*hub.Client {
	if client != "" {
		c := p.localClient(client)
		if c == nil {
			return nil
		}
		if s, ok := c.Value().(*session); user != "" && (!ok || s.userName() != user) {
			return nil
		}
		return []*hub.Client{c}
	}
	if user == "" {
		return nil
	}
	return p.users.clients(user)
}

// localClient returns the client of this node with a client id.
func (p *pubsub) localClient(id string) *hub.Client {
	num := id
	if p.nodeID != "" {
		rest, ok := strings.CutPrefix(id, p.nodeID+"-")
		if !ok {
			return nil
		}
		num = rest
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return nil
	}
	return p.hub.Client(n)
}

// serverUnsubscribe ends a client's subscription for the server API and
// tells the client.
func (p *pubsub) serverUnsubscribe(c *hub.Client, ch string) {
	s, ok := c.Value().(*session)
	if !ok || !s.dropChannel(ch) {
		return
	}
	p.hub.Unsubscribe(c, ch)
	p.left(c, s, ch)
	_ = c.Send(websocket.TextMessage, encodeUnsubscribed(ch))
}
