package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// protocol is what differs between the servers on the wire: how a client
// authenticates, subscribes and publishes. Answers and publications are
// recognised by parseLine for both.
type protocol interface {
	// open dials addr and authenticates with token; the connection is then
	// ready for subscribe and publish requests.
	open(addr, token string, timeout time.Duration) (*wsConn, error)
	// appendSubscribe and appendPublish encode requests with a numeric id.
	appendSubscribe(b []byte, id uint64, channel string) []byte
	appendPublish(b []byte, id uint64, channel string, data []byte) []byte
}

// latchProto is latch serve's /ws protocol (docs/protocol.md): the token
// goes in the upgrade's query string, the welcome comes first.
type latchProto struct{}

func (latchProto) open(addr, token string, timeout time.Duration) (*wsConn, error) {
	c, err := dialWS(addr, "/ws?token="+url.QueryEscape(token), timeout)
	if err != nil {
		return nil, err
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	defer c.nc.SetReadDeadline(time.Time{})
	m, err := c.readMessage()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("welcome: %w", err)
	}
	if !bytes.HasPrefix(m, []byte(`{"type":"welcome"`)) {
		c.Close()
		return nil, fmt.Errorf("welcome: got %.200s", m)
	}
	return c, nil
}

func (latchProto) appendSubscribe(b []byte, id uint64, channel string) []byte {
	b = append(b, `{"op":"subscribe","channel":"`...)
	b = append(b, channel...)
	b = append(b, `","id":"`...)
	b = strconv.AppendUint(b, id, 10)
	return append(b, `"}`...)
}

func (latchProto) appendPublish(b []byte, id uint64, channel string, data []byte) []byte {
	b = append(b, `{"op":"publish","channel":"`...)
	b = append(b, channel...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	b = append(b, `,"id":"`...)
	b = strconv.AppendUint(b, id, 10)
	return append(b, `"}`...)
}

// centrifugoProto is Centrifugo's JSON protocol on /connection/websocket:
// a connect command carries the token; replies and pushes may share a
// frame, one JSON object a line.
type centrifugoProto struct{}

func (centrifugoProto) open(addr, token string, timeout time.Duration) (*wsConn, error) {
	c, err := dialWS(addr, "/connection/websocket", timeout)
	if err != nil {
		return nil, err
	}
	if err := c.writeText([]byte(`{"id":1,"connect":{"token":"` + token + `"}}`)); err != nil {
		c.Close()
		return nil, err
	}
	if err := awaitReply(c, 1, timeout); err != nil {
		c.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	return c, nil
}

func (centrifugoProto) appendSubscribe(b []byte, id uint64, channel string) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"subscribe":{"channel":"`...)
	b = append(b, channel...)
	return append(b, `"}}`...)
}

func (centrifugoProto) appendPublish(b []byte, id uint64, channel string, data []byte) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, `,"publish":{"channel":"`...)
	b = append(b, channel...)
	b = append(b, `","data":`...)
	b = append(b, data...)
	return append(b, `}}`...)
}

// The kinds of line parseLine tells apart.
const (
	lineOther = iota
	linePub   // a publication carrying our payload
	lineAck   // a successful answer to request id
	lineError // an error answer (id may be 0)
	linePing  // Centrifugo's application ping, {} (answered with {})
)

// line is one parsed message (latch) or line of a frame (Centrifugo).
type line struct {
	kind       int
	id         uint64
	c, s, t, w int64 // payload: channel index, sequence, send time, in window
}

var (
	dataMarker = []byte(`"data":{"c":`)
	idMarker   = []byte(`"id":`)
)

// parseLine classifies one JSON object from either server without a full
// JSON decode: the payload is ours and both servers forward its bytes as
// published, so the keys are found where appendPayload put them.
func parseLine(l []byte) (line, error) {
	l = bytes.TrimSpace(l)
	if len(l) == 2 && l[0] == '{' && l[1] == '}' {
		return line{kind: linePing}, nil
	}
	if i := bytes.Index(l, dataMarker); i >= 0 {
		p := l[i+len(dataMarker):]
		var v [4]int64
		for k, key := range []string{"", `,"s":`, `,"t":`, `,"w":`} {
			if !bytes.HasPrefix(p, []byte(key)) {
				return line{}, fmt.Errorf("payload: want %s in %.200s", key, l)
			}
			p = p[len(key):]
			n := 0
			for n < len(p) && p[n] >= '0' && p[n] <= '9' {
				n++
			}
			x, err := strconv.ParseInt(string(p[:n]), 10, 64)
			if err != nil {
				return line{}, fmt.Errorf("payload: %.200s", l)
			}
			v[k] = x
			p = p[n:]
		}
		return line{kind: linePub, c: v[0], s: v[1], t: v[2], w: v[3]}, nil
	}
	var ln line
	if i := bytes.Index(l, idMarker); i >= 0 {
		p := l[i+len(idMarker):]
		if len(p) > 0 && p[0] == '"' {
			p = p[1:]
		}
		n := 0
		for n < len(p) && p[n] >= '0' && p[n] <= '9' {
			n++
		}
		ln.id, _ = strconv.ParseUint(string(p[:n]), 10, 64)
	}
	switch {
	case bytes.HasPrefix(l, []byte(`{"type":"error"`)), bytes.Contains(l, []byte(`"error":{`)):
		ln.kind = lineError
	case bytes.HasPrefix(l, []byte(`{"type":"ack"`)):
		ln.kind = lineAck
	case ln.id != 0 && bytes.HasPrefix(l, []byte(`{"id":`)): // a Centrifugo reply
		ln.kind = lineAck
	}
	return ln, nil
}

// forLines calls f on every newline-separated object of a message.
func forLines(m []byte, f func([]byte) error) error {
	for len(m) > 0 {
		l := m
		if i := bytes.IndexByte(m, '\n'); i >= 0 {
			l, m = m[:i], m[i+1:]
		} else {
			m = nil
		}
		if len(l) == 0 {
			continue
		}
		if err := f(l); err != nil {
			return err
		}
	}
	return nil
}

// awaitReply reads until the answer to request id; an error answer, or a
// publication before it, fails.
func awaitReply(c *wsConn, id uint64, timeout time.Duration) error {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	defer c.nc.SetReadDeadline(time.Time{})
	for {
		m, err := c.readMessage()
		if err != nil {
			return err
		}
		done := false
		err = forLines(m, func(l []byte) error {
			ln, err := parseLine(l)
			if err != nil {
				return err
			}
			switch ln.kind {
			case linePing:
				return c.writeText([]byte(`{}`))
			case lineError:
				return fmt.Errorf("error answer: %.300s", l)
			case lineAck:
				if ln.id == id {
					done = true
				}
			}
			return nil
		})
		if err != nil || done {
			return err
		}
	}
}

var errBadPayload = errors.New("publication for another channel")

// appendPayload writes the published value: channel index, sequence number
// (per channel, from 1), send time (ns on the client's monotonic clock) and
// whether it was sent in the measured window.
func appendPayload(b []byte, ch int, seq uint64, t int64, inWindow bool) []byte {
	b = append(b, `{"c":`...)
	b = strconv.AppendInt(b, int64(ch), 10)
	b = append(b, `,"s":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, t, 10)
	if inWindow {
		return append(b, `,"w":1}`...)
	}
	return append(b, `,"w":0}`...)
}
