package deflate

import (
	"errors"
	"testing"
)

func mustParse(t *testing.T, values ...string) []Extension {
	t.Helper()
	exts, err := ParseExtensions(values)
	if err != nil {
		t.Fatalf("ParseExtensions(%q): %v", values, err)
	}
	return exts
}

var (
	takeover   = Config{ContextTakeover: true}
	noTakeover = Config{ContextTakeover: false}
	full       = Params{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
	noCtx      = Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
	serverNo   = Params{ServerNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
	clientNo   = Params{ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
)

const bothNoCtx = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

func TestAccept(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		offer    string
		cfg      Config
		response string // "" means declined
		params   Params
	}{
		// Real clients.
		{"firefox", "permessage-deflate", takeover, "permessage-deflate", full},
		{"firefox, no takeover", "permessage-deflate", noTakeover, bothNoCtx, noCtx},
		{"chromium", "permessage-deflate; client_max_window_bits", takeover, "permessage-deflate", full},
		{"chromium, no takeover", "permessage-deflate; client_max_window_bits", noTakeover, bothNoCtx, noCtx},
		{"node ws default", "permessage-deflate; client_max_window_bits", takeover, "permessage-deflate", full},
		{"gorilla client", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", takeover, bothNoCtx, noCtx},
		{"python websockets default (window 12)", "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12", takeover,
			"permessage-deflate; server_max_window_bits=12", Params{ServerMaxWindowBits: 12, ClientMaxWindowBits: 15}},

		// Context takeover flags.
		{"server_no_context_takeover echoed", "permessage-deflate; server_no_context_takeover", takeover,
			"permessage-deflate; server_no_context_takeover", serverNo},
		{"client_no_context_takeover echoed", "permessage-deflate; client_no_context_takeover", takeover,
			"permessage-deflate; client_no_context_takeover", clientNo},
		{"flags with config off", "permessage-deflate; client_no_context_takeover", noTakeover, bothNoCtx, noCtx},

		// Window bits.
		{"server_max_window_bits=15 echoed", "permessage-deflate; server_max_window_bits=15", takeover,
			"permessage-deflate; server_max_window_bits=15", full},
		{"server_max_window_bits quoted 15", `permessage-deflate; server_max_window_bits="15"`, takeover,
			"permessage-deflate; server_max_window_bits=15", full},
		{"server_max_window_bits=14 echoed", "permessage-deflate; server_max_window_bits=14", takeover,
			"permessage-deflate; server_max_window_bits=14", Params{ServerMaxWindowBits: 14, ClientMaxWindowBits: 15}},
		{"server_max_window_bits=8 echoed", "permessage-deflate; server_max_window_bits=8", noTakeover,
			bothNoCtx + "; server_max_window_bits=8", Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 8, ClientMaxWindowBits: 15}},
		{"client_max_window_bits=10 omitted", "permessage-deflate; client_max_window_bits=10", takeover, "permessage-deflate", full},
		{"client_max_window_bits=8 omitted", "permessage-deflate; client_max_window_bits=8", takeover, "permessage-deflate", full},
		{"client_max_window_bits quoted", `permessage-deflate; client_max_window_bits="9"`, takeover, "permessage-deflate", full},
		{"everything", "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=15", takeover,
			bothNoCtx + "; server_max_window_bits=15", noCtx},

		// Invalid values: declined.
		{"server bits leading zero", "permessage-deflate; server_max_window_bits=08", takeover, "", Params{}},
		{"server bits 015", "permessage-deflate; server_max_window_bits=015", takeover, "", Params{}},
		{"server bits 16", "permessage-deflate; server_max_window_bits=16", takeover, "", Params{}},
		{"server bits 7", "permessage-deflate; server_max_window_bits=7", takeover, "", Params{}},
		{"server bits without value", "permessage-deflate; server_max_window_bits", takeover, "", Params{}},
		{"server bits not a number", "permessage-deflate; server_max_window_bits=x", takeover, "", Params{}},
		{"server bits signed", "permessage-deflate; server_max_window_bits=+15", takeover, "", Params{}},
		{"client bits leading zero", "permessage-deflate; client_max_window_bits=09", takeover, "", Params{}},
		{"client bits 16", "permessage-deflate; client_max_window_bits=16", takeover, "", Params{}},
		{"client bits 7", "permessage-deflate; client_max_window_bits=7", takeover, "", Params{}},
		{"value on server flag", "permessage-deflate; server_no_context_takeover=true", takeover, "", Params{}},
		{"value on client flag", `permessage-deflate; client_no_context_takeover="x"`, takeover, "", Params{}},
		{"unknown param", "permessage-deflate; foo", takeover, "", Params{}},
		{"duplicate flag", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", takeover, "", Params{}},
		{"duplicate bits", "permessage-deflate; client_max_window_bits; client_max_window_bits=10", takeover, "", Params{}},
		{"duplicate in other case", "permessage-deflate; client_max_window_bits; CLIENT_MAX_WINDOW_BITS", takeover, "", Params{}},

		// Names.
		{"name case-insensitive", "PerMessage-Deflate; Server_No_Context_Takeover; CLIENT_MAX_WINDOW_BITS", takeover,
			"permessage-deflate; server_no_context_takeover", serverNo},
		{"other extension only", "x-webkit-deflate-frame", takeover, "", Params{}},
		{"no offers", "", takeover, "", Params{}},

		// Several offers: the first acceptable one wins (RFC 7692 §5).
		{"small window is the first acceptable", "permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits",
			takeover, "permessage-deflate; server_max_window_bits=10", Params{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}},
		{"fallback past a bad window", "permessage-deflate; server_max_window_bits=16, permessage-deflate; server_max_window_bits=9",
			takeover, "permessage-deflate; server_max_window_bits=9", Params{ServerMaxWindowBits: 9, ClientMaxWindowBits: 15}},
		{"fallback past unknown param", "permessage-deflate; foo=1, permessage-deflate; server_no_context_takeover",
			takeover, "permessage-deflate; server_no_context_takeover", serverNo},
		{"fallback past other extension", "foo; bar, permessage-deflate", takeover, "permessage-deflate", full},
		{"first acceptable wins", "permessage-deflate; server_no_context_takeover, permessage-deflate", takeover,
			"permessage-deflate; server_no_context_takeover", serverNo},
		{"all declined", "permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=09",
			takeover, "", Params{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, p, ok := Accept(mustParse(t, tt.offer), tt.cfg)
			if ok != (tt.response != "") {
				t.Fatalf("Accept(%q) ok = %v (response %q), want %v", tt.offer, ok, resp, !ok)
			}
			if resp != tt.response || p != tt.params {
				t.Fatalf("Accept(%q) = %q, %+v; want %q, %+v", tt.offer, resp, p, tt.response, tt.params)
			}
			if !ok {
				return
			}
			// What the server answers must be what a client reading it concludes.
			vp, err := Verify(mustParse(t, resp), tt.cfg)
			if err != nil {
				t.Fatalf("Verify(%q): %v", resp, err)
			}
			if vp != p {
				t.Fatalf("Verify(%q) = %+v, Accept said %+v", resp, vp, p)
			}
		})
	}
}

func TestOffer(t *testing.T) {
	t.Parallel()
	if got, want := Offer(takeover), "permessage-deflate"; got != want {
		t.Errorf("Offer(takeover) = %q, want %q", got, want)
	}
	want := "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
	if got := Offer(noTakeover); got != want {
		t.Errorf("Offer(noTakeover) = %q, want %q", got, want)
	}
	// Our own server and client agree with each other.
	for _, sc := range []Config{takeover, noTakeover} {
		for _, cc := range []Config{takeover, noTakeover} {
			resp, sp, ok := Accept(mustParse(t, Offer(cc)), sc)
			if !ok {
				t.Fatalf("server %+v declined client %+v offer %q", sc, cc, Offer(cc))
			}
			cp, err := Verify(mustParse(t, resp), cc)
			if err != nil {
				t.Fatalf("client %+v rejected %q: %v", cc, resp, err)
			}
			if sp != cp {
				t.Fatalf("server %+v / client %+v disagree: server %+v, client %+v", sc, cc, sp, cp)
			}
			wantNoCtx := !sc.ContextTakeover || !cc.ContextTakeover
			if cp.ServerNoContextTakeover != wantNoCtx || cp.ClientNoContextTakeover != wantNoCtx {
				t.Fatalf("server %+v / client %+v: params %+v, want no-context-takeover=%v", sc, cc, cp, wantNoCtx)
			}
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		response string
		cfg      Config
		want     Params
		wantErr  error // nil: success
	}{
		{"plain", "permessage-deflate", takeover, full, nil},
		{"server no takeover", "permessage-deflate; server_no_context_takeover", takeover, serverNo, nil},
		{"client no takeover", "permessage-deflate; client_no_context_takeover", takeover, clientNo, nil},
		{"both, config off", bothNoCtx, noTakeover, noCtx, nil},
		{"client flag omitted, config off", "permessage-deflate; server_no_context_takeover", noTakeover, noCtx, nil},
		{"server flag missing, config off", "permessage-deflate; client_no_context_takeover", noTakeover, Params{}, ErrBadResponse},
		{"plain, config off", "permessage-deflate", noTakeover, Params{}, ErrBadResponse},
		{"server window 10", "permessage-deflate; server_max_window_bits=10", takeover,
			Params{ServerMaxWindowBits: 10, ClientMaxWindowBits: 15}, nil},
		{"server window 8 quoted", `permessage-deflate; server_max_window_bits="8"`, takeover,
			Params{ServerMaxWindowBits: 8, ClientMaxWindowBits: 15}, nil},
		{"name case", "Permessage-Deflate; SERVER_NO_CONTEXT_TAKEOVER", takeover, serverNo, nil},
		{"empty", "", takeover, Params{}, ErrNotNegotiated},
		{"client window not offered", "permessage-deflate; client_max_window_bits=15", takeover, Params{}, ErrBadResponse},
		{"client window without value", "permessage-deflate; client_max_window_bits", takeover, Params{}, ErrBadResponse},
		{"server window 08", "permessage-deflate; server_max_window_bits=08", takeover, Params{}, ErrBadResponse},
		{"server window 16", "permessage-deflate; server_max_window_bits=16", takeover, Params{}, ErrBadResponse},
		{"server window 7", "permessage-deflate; server_max_window_bits=7", takeover, Params{}, ErrBadResponse},
		{"server window no value", "permessage-deflate; server_max_window_bits", takeover, Params{}, ErrBadResponse},
		{"value on flag", "permessage-deflate; server_no_context_takeover=1", takeover, Params{}, ErrBadResponse},
		{"unknown param", "permessage-deflate; foo", takeover, Params{}, ErrBadResponse},
		{"duplicate param", "permessage-deflate; client_no_context_takeover; client_no_context_takeover", takeover, Params{}, ErrBadResponse},
		{"two elements", "permessage-deflate, permessage-deflate", takeover, Params{}, ErrBadResponse},
		{"other extension", "x-foo", takeover, Params{}, ErrBadResponse},
		{"other extension too", "permessage-deflate, x-foo", takeover, Params{}, ErrBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Verify(mustParse(t, tt.response), tt.cfg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify(%q) = %+v, %v; want error %v", tt.response, got, err, tt.wantErr)
				}
				if got != (Params{}) {
					t.Fatalf("Verify(%q) returned params %+v with an error", tt.response, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Verify(%q) = %+v, %v; want %+v", tt.response, got, err, tt.want)
			}
		})
	}
}

func TestParseWindowBits(t *testing.T) {
	t.Parallel()
	for v := range 100 {
		s := string(rune('0'+v/10)) + string(rune('0'+v%10))
		if v < 10 {
			s = s[1:]
		}
		got, ok := parseWindowBits(s)
		if want := v >= 8 && v <= 15; ok != want || (ok && got != v) {
			t.Errorf("parseWindowBits(%q) = %d, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "08", "015", "1", "0", "-9", " 9", "9 ", "150"} {
		if got, ok := parseWindowBits(s); ok {
			t.Errorf("parseWindowBits(%q) = %d, true; want invalid", s, got)
		}
	}
}
