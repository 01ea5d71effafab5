package server

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/latchws/latch/history"
	"github.com/latchws/latch/presence"
)

// Subprotocol is the WebSocket subprotocol of the latch pub/sub protocol,
// selected when the client offers it (RFC 6455 §1.9). Offering it is
// optional: the protocol is the same without it.
const Subprotocol = "latch.v1"

// maxIDLen bounds request ids; docs/protocol.md documents the limits (the
// channel name rule is broker.ValidChannel's).
const maxIDLen = 64

// Error codes sent in {"type":"error"} messages.
const (
	codeBadRequest      = "bad_request"
	codeUnknownOp       = "unknown_op"
	codeBadChannel      = "bad_channel"
	codeTooManyChannels = "too_many_channels"
	codeNotSubscribed   = "not_subscribed"
	codeUnavailable     = "unavailable"
	codeUnauthorized    = "unauthorized"
	codeForbidden       = "forbidden"
	codeUnknownNS       = "unknown_namespace"
	codeTokenExpired    = "token_expired"
	codeRateLimited     = "rate_limited"
	codeNotAvailable    = "not_available" // history or presence asked of a namespace without it
)

// errorCodes lists every code, so metrics can report zero counts.
var errorCodes = []string{codeBadRequest, codeUnknownOp, codeBadChannel, codeTooManyChannels, codeNotSubscribed,
	codeUnavailable, codeUnauthorized, codeForbidden, codeUnknownNS, codeTokenExpired, codeRateLimited, codeNotAvailable}

// Close codes of the protocol, in the range RFC 6455 §7.4.2 leaves to
// applications.
const (
	CloseUnauthorized = 4001 // a bad token in connect, or none in time when one is required
	CloseTokenExpired = 4002 // the token expired and was not refreshed
	CloseDisconnected = 4003 // disconnected by the server API: do not reconnect
)

// maxHistoryLimit bounds the publications of one history answer.
const maxHistoryLimit = 100

// request is one decoded client message. Fields absent from the message
// are nil; hasID tells an absent id from an empty one.
type request struct {
	op      string
	channel *string
	data    json.RawMessage // the value exactly as received, nil when absent
	id      string
	hasID   bool

	token   *string           // connect, refresh
	recover *history.Position // subscribe
	since   uint64            // history
	limit   int               // history; 0 when absent
	reverse bool              // history
}

// protoError is a protocol error to report to the client.
type protoError struct {
	code, message string
}

// parseRequest decodes one text message. Keys are matched exactly (unlike
// encoding/json's case-insensitive struct matching) and unknown keys are
// ignored, so later protocol versions can add fields.
//
// The id is decoded first: when it is valid, errors about the rest of the
// message still echo it, so a client can match them to its request.
func parseRequest(msg []byte) (request, *protoError) {
	var req request
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(msg, &fields); err != nil || fields == nil {
		return req, &protoError{codeBadRequest, "message is not a JSON object"}
	}
	if raw, ok := fields["id"]; ok {
		var id string
		if err := json.Unmarshal(raw, &id); err != nil {
			return req, &protoError{codeBadRequest, "id must be a string"}
		}
		if len(id) > maxIDLen {
			return req, &protoError{codeBadRequest, "id longer than " + strconv.Itoa(maxIDLen) + " bytes"}
		}
		req.id, req.hasID = id, true
	}
	raw, ok := fields["op"]
	if !ok {
		return req, &protoError{codeBadRequest, "missing op"}
	}
	if err := json.Unmarshal(raw, &req.op); err != nil {
		return req, &protoError{codeBadRequest, "op must be a string"}
	}
	if raw, ok := fields["channel"]; ok {
		var ch string
		if err := json.Unmarshal(raw, &ch); err != nil {
			return req, &protoError{codeBadRequest, "channel must be a string"}
		}
		req.channel = &ch
	}
	if raw, ok := fields["data"]; ok {
		req.data = raw
	}
	if raw, ok := fields["token"]; ok {
		var tok string
		if err := json.Unmarshal(raw, &tok); err != nil {
			return req, &protoError{codeBadRequest, "token must be a string"}
		}
		req.token = &tok
	}
	if raw, ok := fields["recover"]; ok {
		var pos struct {
			Offset *uint64 `json:"offset"`
			Epoch  *string `json:"epoch"`
		}
		if err := json.Unmarshal(raw, &pos); err != nil || pos.Offset == nil || pos.Epoch == nil {
			return req, &protoError{codeBadRequest, `recover must be {"offset":N,"epoch":"E"}`}
		}
		req.recover = &history.Position{Offset: *pos.Offset, Epoch: *pos.Epoch}
	}
	if raw, ok := fields["since"]; ok {
		if err := json.Unmarshal(raw, &req.since); err != nil {
			return req, &protoError{codeBadRequest, "since must be an offset (an integer >= 0)"}
		}
	}
	if raw, ok := fields["limit"]; ok {
		if err := json.Unmarshal(raw, &req.limit); err != nil || req.limit < 1 || req.limit > maxHistoryLimit {
			return req, &protoError{codeBadRequest, "limit must be an integer from 1 to " + strconv.Itoa(maxHistoryLimit)}
		}
	}
	if raw, ok := fields["reverse"]; ok {
		if err := json.Unmarshal(raw, &req.reverse); err != nil {
			return req, &protoError{codeBadRequest, "reverse must be true or false"}
		}
	}
	return req, nil
}

// The encoders below build messages by hand: their shape is fixed, and a
// published value must be forwarded byte for byte, which json.Marshal of a
// RawMessage would compact.

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	// Marshal of a string cannot fail; it escapes <, > and & too, which
	// is harmless.
	enc, _ := json.Marshal(s)
	return append(b, enc...)
}

// encodeWelcome: the first message; user is set when the handshake
// carried a token.
func encodeWelcome(clientID, user string) []byte {
	b := []byte(`{"type":"welcome","client":`)
	b = appendString(b, clientID)
	if user != "" {
		b = append(b, `,"user":`...)
		b = appendString(b, user)
	}
	return append(b, '}')
}

// encodeConnected answers a connect op.
func encodeConnected(req *request, clientID, user string, expires time.Time) []byte {
	b := []byte(`{"type":"connected"`)
	b = appendID(b, req)
	b = append(b, `,"client":`...)
	b = appendString(b, clientID)
	b = append(b, `,"user":`...)
	b = appendString(b, user)
	b = appendExpires(b, expires)
	return append(b, '}')
}

// encodeRefreshed acks a refresh op.
func encodeRefreshed(req *request, expires time.Time) []byte {
	b := []byte(`{"type":"ack"`)
	b = appendID(b, req)
	b = appendExpires(b, expires)
	return append(b, '}')
}

func appendExpires(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	b = append(b, `,"expires":`...)
	return strconv.AppendInt(b, t.Unix(), 10)
}

func appendID(b []byte, req *request) []byte {
	if req != nil && req.hasID {
		b = append(b, `,"id":`...)
		b = appendString(b, req.id)
	}
	return b
}

// encodeSubscribed acks a subscribe to a history channel: the position
// the client is at, and whether it recovered what it asked for.
func encodeSubscribed(req *request, pos history.Position, recovered *bool) []byte {
	b := []byte(`{"type":"ack"`)
	b = appendID(b, req)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, pos.Offset, 10)
	b = append(b, `,"epoch":`...)
	b = appendString(b, pos.Epoch)
	if recovered != nil {
		b = append(b, `,"recovered":`...)
		b = strconv.AppendBool(b, *recovered)
	}
	return append(b, '}')
}

// encodeRecovered acks a subscribe with recover in a channel without
// history: nothing could be recovered.
func encodeNotRecovered(req *request) []byte {
	b := []byte(`{"type":"ack"`)
	b = appendID(b, req)
	return append(b, `,"recovered":false}`...)
}

// messagePrefixLen is the length of what precedes the data in a message of
// channel at offset, as encodeMessageAt writes it.
func messageDataStart(channel string, offset uint64) int {
	n := len(`{"type":"message","channel":`) + len(appendString(nil, channel)) + len(`,"offset":`)
	n += len(strconv.AppendUint(nil, offset, 10)) + len(`,"data":`)
	return n
}

// appendMessageAt appends a publication of a history channel: offset right
// after channel, so that the data starts at a known place.
func appendMessageAt(b []byte, channel string, offset uint64, data json.RawMessage) []byte {
	b = append(b, `{"type":"message","channel":`...)
	b = appendString(b, channel)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, offset, 10)
	b = append(b, `,"data":`...)
	b = append(b, bytes.TrimSpace(data)...)
	return append(b, '}')
}

// publicationData returns the data of a stored publication: its message
// less the envelope appendMessageAt wrote.
func publicationData(channel string, pub history.Publication) []byte {
	start := messageDataStart(channel, pub.Offset)
	if start >= len(pub.Data) {
		return []byte("null") // not ours: never happens with our encoder
	}
	return pub.Data[start : len(pub.Data)-1]
}

// appendPublications appends a JSON array of publications as
// {"offset":N,"time":MS,"data":V}.
func appendPublications(b []byte, channel string, pubs []history.Publication) []byte {
	b = append(b, '[')
	for i, pub := range pubs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"offset":`...)
		b = strconv.AppendUint(b, pub.Offset, 10)
		b = append(b, `,"time":`...)
		b = strconv.AppendInt(b, pub.Time.UnixMilli(), 10)
		b = append(b, `,"data":`...)
		b = append(b, publicationData(channel, pub)...)
		b = append(b, '}')
	}
	return append(b, ']')
}

// encodeHistory answers a history op.
func encodeHistory(req *request, channel string, pubs []history.Publication, top history.Position) []byte {
	b := []byte(`{"type":"history"`)
	b = appendID(b, req)
	b = append(b, `,"channel":`...)
	b = appendString(b, channel)
	b = append(b, ',')
	b = appendHistoryBody(b, channel, pubs, top)
	return append(b, '}')
}

// appendHistoryBody appends "epoch", "offset" (the top) and "publications",
// for the history op and the server API.
func appendHistoryBody(b []byte, channel string, pubs []history.Publication, top history.Position) []byte {
	b = append(b, `"epoch":`...)
	b = appendString(b, top.Epoch)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, top.Offset, 10)
	b = append(b, `,"publications":`...)
	return appendPublications(b, channel, pubs)
}

// appendPresence appends a JSON array of presence entries.
func appendPresence(b []byte, infos []presence.Info) []byte {
	b = append(b, '[')
	for i, in := range infos {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"client":`...)
		b = appendString(b, in.Client)
		b = append(b, `,"user":`...)
		b = appendString(b, in.User)
		b = append(b, `,"connected":`...)
		b = strconv.AppendInt(b, in.ConnectedAt.UnixMilli(), 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// maxPresenceListed bounds the clients of one presence answer.
const maxPresenceListed = 1000

// encodePresence answers a presence op.
func encodePresence(req *request, channel string, infos []presence.Info, truncated bool) []byte {
	b := []byte(`{"type":"presence"`)
	b = appendID(b, req)
	b = append(b, `,"channel":`...)
	b = appendString(b, channel)
	b = append(b, `,"clients":`...)
	b = appendPresence(b, infos)
	if truncated {
		b = append(b, `,"truncated":true`...)
	}
	return append(b, '}')
}

// encodeJoinLeave: typ is "join" or "leave".
func encodeJoinLeave(typ, channel, clientID, user string) []byte {
	b := append([]byte(`{"type":"`), typ...)
	b = append(b, `","channel":`...)
	b = appendString(b, channel)
	b = append(b, `,"client":`...)
	b = appendString(b, clientID)
	b = append(b, `,"user":`...)
	b = appendString(b, user)
	return append(b, '}')
}

// encodeUnsubscribed tells a client the server API ended its subscription.
func encodeUnsubscribed(channel string) []byte {
	b := []byte(`{"type":"unsubscribed","channel":`)
	b = appendString(b, channel)
	return append(b, '}')
}

// encodeReply encodes an ack or a pong, echoing the request id if any.
func encodeReply(typ string, req *request) []byte {
	b := append([]byte(`{"type":"`), typ...)
	b = append(b, '"')
	if req.hasID {
		b = append(b, `,"id":`...)
		b = appendString(b, req.id)
	}
	return append(b, '}')
}

func encodeError(req *request, e *protoError) []byte {
	b := []byte(`{"type":"error"`)
	if req != nil && req.hasID {
		b = append(b, `,"id":`...)
		b = appendString(b, req.id)
	}
	b = append(b, `,"code":`...)
	b = appendString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.message)
	return append(b, '}')
}

// encodeMessage encodes a publication. data is a JSON value already
// validated by the decoder; only whitespace around it is trimmed.
func encodeMessage(channel string, data json.RawMessage) []byte {
	data = bytes.TrimSpace(data)
	b := make([]byte, 0, len(`{"type":"message","channel":"","data":}`)+len(channel)+len(data))
	b = append(b, `{"type":"message","channel":`...)
	b = appendString(b, channel)
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}
