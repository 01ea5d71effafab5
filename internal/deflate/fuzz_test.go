package deflate

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"",
	"permessage-deflate",
	"permessage-deflate; client_max_window_bits",
	"permessage-deflate; client_max_window_bits=10, permessage-deflate",
	"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
	`permessage-deflate; server_max_window_bits="15"; client_max_window_bits=8`,
	"permessage-deflate; server_max_window_bits=08",
	"permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=8",
	"permessage-deflate; server_max_window_bits=9; client_max_window_bits=9, permessage-deflate",
	`a; b="1\0", , c ;d = e`,
	"PerMessage-Deflate; Server_No_Context_Takeover",
	"x-webkit-deflate-frame, permessage-deflate; foo",
}

// FuzzParseExtensions: never panics, and whatever parses can be written back canonically and parses to the
// same thing.
func FuzzParseExtensions(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		exts, err := ParseExtensions([]string{header})
		if err != nil {
			if !errors.Is(err, ErrMalformed) || exts != nil {
				t.Fatalf("ParseExtensions(%q) = %v, %v", header, exts, err)
			}
			return
		}
		for _, e := range exts {
			if !isToken(e.Name) {
				t.Fatalf("ParseExtensions(%q): name %q is not a token", header, e.Name)
			}
			for _, p := range e.Params {
				if !isToken(p.Name) || p.HasValue != (p.Value != "") || (p.HasValue && !isToken(p.Value)) {
					t.Fatalf("ParseExtensions(%q): bad param %#v", header, p)
				}
			}
		}
		again, err := ParseExtensions([]string{format(exts)})
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", format(exts), header, err)
		}
		if format(again) != format(exts) || len(again) != len(exts) {
			t.Fatalf("round trip of %q: %q != %q", header, format(again), format(exts))
		}
	})
}

// format writes extensions back in canonical form, quoting every value to exercise that path too.
func format(exts []Extension) string {
	var b strings.Builder
	for i, e := range exts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.Name)
		for _, p := range e.Params {
			b.WriteString("; " + p.Name)
			if p.HasValue {
				b.WriteString(`="` + p.Value + `"`)
			}
		}
	}
	return b.String()
}

// FuzzAccept: never panics, and a client reading Accept's response concludes the same Params as the server.
func FuzzAccept(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, header string, contextTakeover bool) {
		offers, err := ParseExtensions([]string{header})
		if err != nil {
			return
		}
		cfg := Config{ContextTakeover: contextTakeover}
		resp, p, ok := Accept(offers, cfg)
		if !ok {
			if resp != "" || p != (Params{}) {
				t.Fatalf("Accept(%q) declined but returned %q, %+v", header, resp, p)
			}
			return
		}
		// RFC 7692 §7.1.2: the server window is the one offered (or 15), the client's is not limited.
		if p.ServerMaxWindowBits < 8 || p.ServerMaxWindowBits > 15 || p.ClientMaxWindowBits != 15 {
			t.Fatalf("Accept(%q): window bits %+v", header, p)
		}
		if p.ServerMaxWindowBits < 15 && !strings.Contains(resp, fmt.Sprintf("server_max_window_bits=%d", p.ServerMaxWindowBits)) {
			t.Fatalf("Accept(%q) = %q: server window %d not in the response", header, resp, p.ServerMaxWindowBits)
		}
		if !contextTakeover && (!p.ServerNoContextTakeover || !p.ClientNoContextTakeover) {
			t.Fatalf("Accept(%q) with no context takeover: %+v", header, p)
		}
		parsed, err := ParseExtensions([]string{resp})
		if err != nil {
			t.Fatalf("Accept(%q) response %q does not parse: %v", header, resp, err)
		}
		vp, err := Verify(parsed, cfg)
		if err != nil {
			t.Fatalf("Accept(%q) response %q fails Verify: %v", header, resp, err)
		}
		if vp != p {
			t.Fatalf("Accept(%q) = %q, %+v; Verify says %+v", header, resp, p, vp)
		}
	})
}
