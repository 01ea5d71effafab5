package nats

import (
	"strings"

	"github.com/latchws/latch/broker"
)

// SubjectPrefix starts the NATS subject of every channel.
const SubjectPrefix = "latch.ch."

// Subject returns the NATS subject that carries channel: SubjectPrefix
// followed by the channel name as ONE subject token, written with '_' as an
// escape character:
//
//	'_' → "__"    '.' → "_d"    ':' → "_c"    '#' → "_h"    A-Z a-z 0-9 '-' → itself
//
// Every character maps to itself or to a two-byte sequence starting with
// '_', and no unescaped character is '_', so the encoding is injective
// (decoding reads left to right without ambiguity): two channels never
// share a subject. The token contains only A-Z a-z 0-9 _ -, so it holds no
// token separator '.', no wildcard '*' or '>' and no whitespace. Names that
// are not valid channels (see [broker.ValidChannel]) return an error
// wrapping [broker.ErrInvalidChannel].
func Subject(channel string) (string, error) {
	if err := broker.CheckChannel(channel); err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(SubjectPrefix) + 2*len(channel))
	b.WriteString(SubjectPrefix)
	escapeName(&b, channel)
	return b.String(), nil
}

// escapeName writes a valid channel name (or namespace) as one subject
// token, as [Subject] documents.
func escapeName(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '_':
			b.WriteString("__")
		case '.':
			b.WriteString("_d")
		case ':':
			b.WriteString("_c")
		case '#':
			b.WriteString("_h")
		default:
			b.WriteByte(c)
		}
	}
}
