package deflate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ExtensionName is the registered name of the extension (RFC 7692 §7).
const ExtensionName = "permessage-deflate"

// Parameter names, RFC 7692 §7.1.
const (
	paramServerNoContextTakeover = "server_no_context_takeover"
	paramClientNoContextTakeover = "client_no_context_takeover"
	paramServerMaxWindowBits     = "server_max_window_bits"
	paramClientMaxWindowBits     = "client_max_window_bits"
)

// maxWindowBits is the largest LZ77 window, assumed when nothing is said (RFC 7692 §7.1.2).
const maxWindowBits = 15

var (
	// ErrNotNegotiated is returned by [Verify] when the response has no extension at all: the server
	// declined compression, which is not an error for the connection.
	ErrNotNegotiated = errors.New("deflate: permessage-deflate not negotiated")
	// ErrBadResponse reports a server response the client must fail the connection for (RFC 7692 §5).
	ErrBadResponse = errors.New("deflate: invalid permessage-deflate response")
)

// Params is what one side agreed to: the result of a negotiation.
type Params struct {
	ServerNoContextTakeover bool
	ClientNoContextTakeover bool
	ServerMaxWindowBits     int // 8..15; 15 when not limited
	ClientMaxWindowBits     int // 8..15; 15 when not limited
}

// Config is what this endpoint is willing to do.
type Config struct {
	// ContextTakeover: this endpoint keeps compression context across messages in both directions when the
	// peer allows it. False: it asks for no context takeover in both directions (no per-connection state).
	ContextTakeover bool

	// MaxWindowBits, client only. 8..14 offers server_max_window_bits and client_max_window_bits with this
	// value (RFC 7692 §7.1.2), asking for a window of 2^MaxWindowBits bytes both ways; 15 offers
	// client_max_window_bits without a value (the server may pick our window, its own stays 2^15); 0 offers
	// neither.
	MaxWindowBits int
}

// elementParams is the decoded parameter set of one permessage-deflate element. A window of 0 means the
// parameter was absent.
type elementParams struct {
	serverNoContextTakeover bool
	clientNoContextTakeover bool
	serverMaxWindowBits     int
	clientMaxWindowBits     int
	clientMaxWindowBitsSeen bool // present, with or without a value
}

// readParams checks one element's parameters: RFC 7692 §7 makes unknown names, duplicates and invalid
// values grounds to decline an offer (server) or fail the connection (client).
func readParams(ps []Param) (elementParams, error) {
	var e elementParams
	seen := map[string]bool{} // only the four known names ever enter it
	for _, p := range ps {
		name := strings.ToLower(p.Name)
		if seen[name] {
			return e, fmt.Errorf("duplicate parameter %q", p.Name)
		}
		switch name {
		case paramServerNoContextTakeover, paramClientNoContextTakeover:
			// RFC 7692 §7.1.1.1, §7.1.1.2: these have no value.
			if p.HasValue {
				return e, fmt.Errorf("parameter %q takes no value", p.Name)
			}
			if name == paramServerNoContextTakeover {
				e.serverNoContextTakeover = true
			} else {
				e.clientNoContextTakeover = true
			}
		case paramServerMaxWindowBits:
			// RFC 7692 §7.1.2.1: the value is required.
			if !p.HasValue {
				return e, fmt.Errorf("parameter %q needs a value", p.Name)
			}
			bits, ok := parseWindowBits(p.Value)
			if !ok {
				return e, fmt.Errorf("invalid %s=%q", p.Name, p.Value)
			}
			e.serverMaxWindowBits = bits
		case paramClientMaxWindowBits:
			// RFC 7692 §7.1.2.2: the value is optional in an offer.
			e.clientMaxWindowBitsSeen = true
			if p.HasValue {
				bits, ok := parseWindowBits(p.Value)
				if !ok {
					return e, fmt.Errorf("invalid %s=%q", p.Name, p.Value)
				}
				e.clientMaxWindowBits = bits
			}
		default:
			return e, fmt.Errorf("unknown parameter %q", p.Name)
		}
		seen[name] = true
	}
	return e, nil
}

// parseWindowBits accepts exactly the ABNF of RFC 7692 §7.1.2.1: 1*DIGIT in 8..15 with no leading zero.
func parseWindowBits(v string) (int, bool) {
	switch {
	case len(v) == 1 && (v[0] == '8' || v[0] == '9'):
		return int(v[0] - '0'), true
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return 10 + int(v[1]-'0'), true
	}
	return 0, false
}

// Accept is the server side (RFC 7692 §5, §7.1): from the client's offers (in preference order) pick the first
// permessage-deflate offer this server can honour, and return the response header value and the params.
// ok=false: no acceptable offer (then no compression). Offers with unknown parameters, duplicate parameters or
// invalid values are declined (skipped), not fatal.
//
// server_max_window_bits=N (8..15) is accepted and answered with the same N (RFC 7692 §7.1.2.1): the
// compressor then uses a window of exactly 2^N bytes, 8 included (zlib turns a request for 8 into 9; we do
// not need to). client_max_window_bits (with or without a value) is answered by omitting it: we inflate any
// window, and the value is only a hint (RFC 7692 §7.1.2.2). server_no_context_takeover in an offer is
// echoed; when cfg.ContextTakeover is false, the response has both server_no_context_takeover and
// client_no_context_takeover. client_no_context_takeover in an offer is echoed too, so that the returned
// Params say what the client will really do (RFC 7692 §7.1.1.2).
func Accept(offers []Extension, cfg Config) (response string, p Params, ok bool) {
	for _, off := range offers {
		if !strings.EqualFold(off.Name, ExtensionName) {
			continue
		}
		e, err := readParams(off.Params)
		if err != nil {
			continue
		}
		p = Params{ServerMaxWindowBits: maxWindowBits, ClientMaxWindowBits: maxWindowBits}
		var b strings.Builder
		b.WriteString(ExtensionName)
		// RFC 7692 §7.1.1.1: an offered server_no_context_takeover is accepted only by echoing it.
		if e.serverNoContextTakeover || !cfg.ContextTakeover {
			b.WriteString("; " + paramServerNoContextTakeover)
			p.ServerNoContextTakeover = true
		}
		if e.clientNoContextTakeover || !cfg.ContextTakeover {
			b.WriteString("; " + paramClientNoContextTakeover)
			p.ClientNoContextTakeover = true
		}
		// RFC 7692 §7.1.2.1: an offered server_max_window_bits must appear in the response, with a value
		// no larger than offered; we answer the offered value and compress within it.
		if e.serverMaxWindowBits != 0 {
			b.WriteString("; " + paramServerMaxWindowBits + "=" + strconv.Itoa(e.serverMaxWindowBits))
			p.ServerMaxWindowBits = e.serverMaxWindowBits
		}
		return b.String(), p, true
	}
	return "", Params{}, false
}

// Offer is the client's Sec-WebSocket-Extensions value: "permessage-deflate" plus, when cfg.ContextTakeover
// is false, "; client_no_context_takeover; server_no_context_takeover", plus, when cfg.MaxWindowBits is
// 8..14, "; server_max_window_bits=N; client_max_window_bits=N", or when it is 15,
// "; client_max_window_bits".
func Offer(cfg Config) string {
	s := ExtensionName
	if !cfg.ContextTakeover {
		s += "; " + paramClientNoContextTakeover + "; " + paramServerNoContextTakeover
	}
	switch n := cfg.MaxWindowBits; {
	case n >= 8 && n < maxWindowBits:
		bits := strconv.Itoa(n)
		s += "; " + paramServerMaxWindowBits + "=" + bits + "; " + paramClientMaxWindowBits + "=" + bits
	case n == maxWindowBits:
		s += "; " + paramClientMaxWindowBits
	}
	return s
}

// Verify is the client checking the server's response (RFC 7692 §5, §7.1.1.1, §7.1.2) to the offer made
// by [Offer] with the same cfg: exactly one permessage-deflate element, no unknown or duplicate params,
// valid values. client_max_window_bits in the response is an error unless we offered it, and then it needs a
// value no larger than ours (§7.1.2.2); server_max_window_bits=N is accepted (we inflate any window) but, if
// we asked for one, must be present and no larger (§7.1.2.1). It returns the params in force: when we
// offered client_max_window_bits=N and the server left it out, ClientMaxWindowBits is N anyway, the window
// we said we would use. A response with any other extension is an error. An empty response returns
// [ErrNotNegotiated]; every other error wraps [ErrBadResponse] and means the client must fail the connection
// (RFC 7692 §5).
func Verify(response []Extension, cfg Config) (Params, error) {
	if len(response) == 0 {
		return Params{}, ErrNotNegotiated
	}
	for _, ext := range response {
		if !strings.EqualFold(ext.Name, ExtensionName) {
			return Params{}, fmt.Errorf("%w: extension %q was not offered", ErrBadResponse, ext.Name)
		}
	}
	if len(response) > 1 {
		return Params{}, fmt.Errorf("%w: %d elements, want one", ErrBadResponse, len(response))
	}
	e, err := readParams(response[0].Params)
	if err != nil {
		return Params{}, fmt.Errorf("%w: %v", ErrBadResponse, err)
	}
	// What we offered (see Offer): client_max_window_bits up to offeredClient (0: not offered),
	// server_max_window_bits=offeredServer (0: not offered).
	offeredClient, offeredServer := 0, 0
	if n := cfg.MaxWindowBits; n >= 8 && n <= maxWindowBits {
		offeredClient = n
		if n < maxWindowBits {
			offeredServer = n
		}
	}
	if e.clientMaxWindowBitsSeen {
		switch {
		case offeredClient == 0:
			// RFC 7692 §7.1.2.2: the server must not include it unless the client offered it.
			return Params{}, fmt.Errorf("%w: %s was not offered", ErrBadResponse, paramClientMaxWindowBits)
		case e.clientMaxWindowBits == 0:
			return Params{}, fmt.Errorf("%w: %s needs a value in a response", ErrBadResponse, paramClientMaxWindowBits)
		case e.clientMaxWindowBits > offeredClient:
			return Params{}, fmt.Errorf("%w: %s=%d, offered %d", ErrBadResponse, paramClientMaxWindowBits, e.clientMaxWindowBits, offeredClient)
		}
	}
	if offeredBits := offeredServer; offeredBits != 0 {
		// RFC 7692 §7.1.2.1: a server accepting our server_max_window_bits echoes it, no larger.
		switch {
		case e.serverMaxWindowBits == 0:
			return Params{}, fmt.Errorf("%w: %s missing", ErrBadResponse, paramServerMaxWindowBits)
		case e.serverMaxWindowBits > offeredBits:
			return Params{}, fmt.Errorf("%w: %s=%d, offered %d", ErrBadResponse, paramServerMaxWindowBits, e.serverMaxWindowBits, offeredBits)
		}
	}
	// RFC 7692 §7.1.1.1: we offered server_no_context_takeover; a response without it accepts no offer of ours.
	if !cfg.ContextTakeover && !e.serverNoContextTakeover {
		return Params{}, fmt.Errorf("%w: %s missing", ErrBadResponse, paramServerNoContextTakeover)
	}
	p := Params{
		ServerNoContextTakeover: e.serverNoContextTakeover,
		// RFC 7692 §7.1.1.2: having offered client_no_context_takeover we keep no context either way.
		ClientNoContextTakeover: e.clientNoContextTakeover || !cfg.ContextTakeover,
		ServerMaxWindowBits:     maxWindowBits,
		ClientMaxWindowBits:     maxWindowBits,
	}
	if e.serverMaxWindowBits != 0 {
		p.ServerMaxWindowBits = e.serverMaxWindowBits
	}
	switch {
	case e.clientMaxWindowBits != 0:
		p.ClientMaxWindowBits = e.clientMaxWindowBits
	case offeredServer != 0:
		p.ClientMaxWindowBits = offeredServer // we said we would keep to it
	}
	return p, nil
}
