package server

import (
	"bytes"
	"encoding/json"
	"strconv"
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
)

// errorCodes lists every code, so metrics can report zero counts.
var errorCodes = []string{codeBadRequest, codeUnknownOp, codeBadChannel, codeTooManyChannels, codeNotSubscribed, codeUnavailable}

// request is one decoded client message. Fields absent from the message
// are nil; hasID tells an absent id from an empty one.
type request struct {
	op      string
	channel *string
	data    json.RawMessage // the value exactly as received, nil when absent
	id      string
	hasID   bool
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

func encodeWelcome(clientID uint64) []byte {
	b := []byte(`{"type":"welcome","client":"`)
	b = strconv.AppendUint(b, clientID, 10)
	return append(b, `"}`...)
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
