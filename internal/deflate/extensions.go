package deflate

import (
	"errors"
	"fmt"
)

// ErrMalformed reports a Sec-WebSocket-Extensions header that does not follow RFC 6455 §9.1.
var ErrMalformed = errors.New("deflate: malformed Sec-WebSocket-Extensions header")

// Extension is one parsed element of a Sec-WebSocket-Extensions header: a name and its parameters in order.
type Extension struct {
	Name   string
	Params []Param
}

// Param is one extension parameter. HasValue tells "name" from "name=value"; Value is already unquoted.
type Param struct {
	Name, Value string
	HasValue    bool
}

// ParseExtensions parses all Sec-WebSocket-Extensions header values (RFC 6455 §9.1 grammar: comma-separated
// extensions, ';'-separated params, values are tokens or quoted-strings whose content must be a token,
// optional whitespace). A malformed header returns an error wrapping [ErrMalformed].
//
// Empty list elements ("a, , b") are skipped (RFC 9110 §5.6.1), so an empty header yields no extensions.
// Names keep their case; the negotiation functions compare them case-insensitively.
func ParseExtensions(values []string) ([]Extension, error) {
	var out []Extension
	for _, v := range values {
		p := parser{s: v}
		var err error
		out, err = p.list(out)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parser walks one header value. It only moves forward, so parsing is linear in the input.
type parser struct {
	s string
	i int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrMalformed, fmt.Sprintf(format, args...), p.i)
}

func (p *parser) eof() bool { return p.i >= len(p.s) }

// at reports whether the next byte is c.
func (p *parser) at(c byte) bool { return p.i < len(p.s) && p.s[p.i] == c }

// ows skips optional whitespace (RFC 9110 §5.6.3: SP and HTAB).
func (p *parser) ows() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// list parses extension-list = 1#extension and appends to out.
func (p *parser) list(out []Extension) ([]Extension, error) {
	for {
		p.ows()
		if p.eof() {
			return out, nil
		}
		if p.at(',') { // empty list element
			p.i++
			continue
		}
		ext, err := p.extension()
		if err != nil {
			return nil, err
		}
		out = append(out, ext)
		p.ows()
		if p.eof() {
			return out, nil
		}
		if !p.at(',') {
			return nil, p.errorf("unexpected %q", p.s[p.i])
		}
		p.i++
	}
}

// extension parses extension-token *( ";" extension-param ).
func (p *parser) extension() (Extension, error) {
	name := p.token()
	if name == "" {
		return Extension{}, p.errorf("expected extension name")
	}
	ext := Extension{Name: name}
	for {
		p.ows()
		if !p.at(';') {
			return ext, nil
		}
		p.i++
		p.ows()
		param := Param{Name: p.token()}
		if param.Name == "" {
			return Extension{}, p.errorf("expected parameter name")
		}
		p.ows()
		if p.at('=') {
			p.i++
			p.ows()
			v, err := p.value()
			if err != nil {
				return Extension{}, err
			}
			param.Value, param.HasValue = v, true
		}
		ext.Params = append(ext.Params, param)
	}
}

// value parses token | quoted-string. RFC 6455 §9.1: a quoted value must be a token once unescaped.
func (p *parser) value() (string, error) {
	if !p.at('"') {
		v := p.token()
		if v == "" {
			return "", p.errorf("expected parameter value")
		}
		return v, nil
	}
	p.i++
	var buf []byte
	for {
		if p.eof() {
			return "", p.errorf("unterminated quoted string")
		}
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			v := string(buf)
			if v == "" || !isToken(v) {
				return "", p.errorf("quoted value %q is not a token", v)
			}
			return v, nil
		case c == '\\': // quoted-pair, RFC 9110 §5.6.4
			if p.eof() {
				return "", p.errorf("unterminated quoted string")
			}
			c = p.s[p.i]
			p.i++
			if !isQuotedPairChar(c) {
				return "", p.errorf("invalid escaped byte %#x", c)
			}
			buf = append(buf, c)
		case isQDText(c):
			buf = append(buf, c)
		default:
			return "", p.errorf("invalid byte %#x in quoted string", c)
		}
	}
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return false
		}
	}
	return true
}

// isTokenChar reports tchar (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// isQDText reports qdtext (RFC 9110 §5.6.4): HTAB, SP, VCHAR except '"' and '\', obs-text.
func isQDText(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80
}

func isQuotedPairChar(c byte) bool {
	return c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80
}
