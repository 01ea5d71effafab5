package deflate

import (
	"errors"
	"fmt"
	"strconv"
	"testing"
)

// Window bits, every value (RFC 7692 §7.1.2).

// TestAcceptEveryWindowBits: an offer with server_max_window_bits=N (8..15)
// is accepted and answered with N; client_max_window_bits, without a value
// or with any value 8..15, is accepted and left out of the answer; with
// both configurations and with the no-context-takeover flags.
func TestAcceptEveryWindowBits(t *testing.T) {
	t.Parallel()
	clientForms := []string{"", "; client_max_window_bits"}
	for m := 8; m <= 15; m++ {
		clientForms = append(clientForms, "; client_max_window_bits="+strconv.Itoa(m))
	}
	for n := 0; n <= 15; n++ { // 0: server_max_window_bits absent
		if n > 0 && n < 8 {
			continue
		}
		for _, client := range clientForms {
			for _, flags := range []string{"", "; server_no_context_takeover", "; client_no_context_takeover; server_no_context_takeover"} {
				for _, cfg := range []Config{takeover, noTakeover} {
					offer := "permessage-deflate" + flags + client
					if n > 0 {
						offer += "; server_max_window_bits=" + strconv.Itoa(n)
					}
					resp, p, ok := Accept(mustParse(t, offer), cfg)
					if !ok {
						t.Fatalf("Accept(%q, %+v) declined", offer, cfg)
					}
					want := Params{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
					wantResp := "permessage-deflate"
					if flags != "" || !cfg.ContextTakeover {
						wantResp += "; server_no_context_takeover"
						want.ServerNoContextTakeover = true
					}
					if flags == "; client_no_context_takeover; server_no_context_takeover" || !cfg.ContextTakeover {
						wantResp += "; client_no_context_takeover"
						want.ClientNoContextTakeover = true
					}
					if n > 0 {
						wantResp += "; server_max_window_bits=" + strconv.Itoa(n)
						want.ServerMaxWindowBits = n
					}
					if resp != wantResp || p != want {
						t.Fatalf("Accept(%q, %+v) = %q, %+v; want %q, %+v", offer, cfg, resp, p, wantResp, want)
					}
					if vp, err := Verify(mustParse(t, resp), cfg); err != nil || vp != p {
						t.Fatalf("Verify(%q) = %+v, %v; Accept said %+v", resp, vp, err, p)
					}
				}
			}
		}
	}
}

// TestAcceptDeclinesMalformedWindowBits: values outside 8..15, leading
// zeros, signs, server_max_window_bits without a value, duplicates (even
// of the same value) make the offer unacceptable (RFC 7692 §7.1.2.1,
// §7.1.2.2, §7); the next offer is then considered.
func TestAcceptDeclinesMalformedWindowBits(t *testing.T) {
	t.Parallel()
	var bad []string
	for _, v := range []string{"0", "1", "7", "16", "20", "99", "100", "08", "015", "+9", "-9", "9.0", "", `""`, "0x9", "nine"} {
		bad = append(bad, "server_max_window_bits="+v, "client_max_window_bits="+v)
	}
	bad = append(bad, "server_max_window_bits",
		"server_max_window_bits=10; server_max_window_bits=10",
		"server_max_window_bits=10; server_max_window_bits=12",
		"client_max_window_bits; client_max_window_bits",
		"client_max_window_bits=9; client_max_window_bits=9",
		"client_max_window_bits=9; Client_Max_Window_Bits",
		"server_max_window_bits=9; SERVER_MAX_WINDOW_BITS=9",
		"max_window_bits=9")
	for _, params := range bad {
		for _, cfg := range []Config{takeover, noTakeover} {
			offer := "permessage-deflate; " + params
			exts, err := ParseExtensions([]string{offer})
			if err != nil {
				continue // not even a header: nothing to negotiate
			}
			if resp, p, ok := Accept(exts, cfg); ok {
				t.Errorf("Accept(%q, %+v) = %q, %+v; want declined", offer, cfg, resp, p)
			}
			// The next offer is still answered.
			exts = append(exts, mustParse(t, "permessage-deflate; server_max_window_bits=11")...)
			resp, p, ok := Accept(exts, cfg)
			if !ok || p.ServerMaxWindowBits != 11 {
				t.Errorf("Accept(%q, then a valid offer) = %q, %+v, %v; want the second offer", offer, resp, p, ok)
			}
		}
	}
}

// TestOfferWindowBits: MaxWindowBits 8..14 adds both parameters with that
// value, 15 client_max_window_bits alone; 0 (and invalid values) add
// nothing, so the default offer is unchanged.
func TestOfferWindowBits(t *testing.T) {
	t.Parallel()
	for bits := 0; bits <= 16; bits++ {
		for _, tk := range []bool{false, true} {
			cfg := Config{ContextTakeover: tk, MaxWindowBits: bits}
			want := Offer(Config{ContextTakeover: tk})
			switch {
			case bits >= 8 && bits <= 14:
				want += fmt.Sprintf("; server_max_window_bits=%d; client_max_window_bits=%d", bits, bits)
			case bits == 15:
				want += "; client_max_window_bits"
			}
			if got := Offer(cfg); got != want {
				t.Errorf("Offer(%+v) = %q, want %q", cfg, got, want)
			}
			if _, err := ParseExtensions([]string{Offer(cfg)}); err != nil {
				t.Errorf("Offer(%+v) does not parse: %v", cfg, err)
			}
		}
	}
}

// TestVerifyEveryWindowBits is the client's side for every combination of
// what it offered (MaxWindowBits 0 or 8..15) and what the server answers
// (server_max_window_bits absent or 8..15; client_max_window_bits absent,
// without a value, or 8..15). The rules:
//   - client_max_window_bits in a response needs our offer of it (§7.1.2.2;
//     MaxWindowBits 8..15), a value (its ABNF in a response), and no more
//     than we offered (15 for the offer without a value);
//   - having offered server_max_window_bits=M (MaxWindowBits 8..14), the
//     response must carry it, no larger than M (§7.1.2.1); without our
//     offer any value is fine, we inflate any window;
//   - the params: the server's window as answered, ours as answered, else
//     the one we offered, else 15.
func TestVerifyEveryWindowBits(t *testing.T) {
	t.Parallel()
	accepted := 0
	for offered := 0; offered <= 15; offered++ {
		if offered > 0 && offered < 8 {
			continue
		}
		cfg := Config{ContextTakeover: true, MaxWindowBits: offered}
		asked := offered // server_max_window_bits offered, 0: not
		if asked == 15 {
			asked = 0
		}
		for server := 0; server <= 15; server++ {
			if server > 0 && server < 8 {
				continue
			}
			for client := -1; client <= 15; client++ { // -1 absent, 0 without a value
				if client > 0 && client < 8 {
					continue
				}
				resp := "permessage-deflate"
				if server > 0 {
					resp += "; server_max_window_bits=" + strconv.Itoa(server)
				}
				switch {
				case client == 0:
					resp += "; client_max_window_bits"
				case client > 0:
					resp += "; client_max_window_bits=" + strconv.Itoa(client)
				}
				valid := true
				switch {
				case client >= 0 && (offered == 0 || client == 0 || client > offered):
					valid = false
				case asked != 0 && (server == 0 || server > asked):
					valid = false
				}
				p, err := Verify(mustParse(t, resp), cfg)
				if !valid {
					if !errors.Is(err, ErrBadResponse) || p != (Params{}) {
						t.Errorf("offered %d bits: Verify(%q) = %+v, %v; want ErrBadResponse", offered, resp, p, err)
					}
					continue
				}
				accepted++
				want := Params{ServerMaxWindowBits: 15, ClientMaxWindowBits: 15}
				if server > 0 {
					want.ServerMaxWindowBits = server
				}
				switch {
				case client > 0:
					want.ClientMaxWindowBits = client
				case asked > 0:
					want.ClientMaxWindowBits = asked
				}
				if err != nil || p != want {
					t.Errorf("offered %d bits: Verify(%q) = %+v, %v; want %+v", offered, resp, p, err, want)
				}
			}
		}
	}
	if accepted == 0 {
		t.Fatal("no response accepted")
	}
}

// TestWindowBitsOwnPair: our Dialer's offer with every MaxWindowBits,
// answered by our Upgrader, gives both sides the same params.
func TestWindowBitsOwnPair(t *testing.T) {
	t.Parallel()
	for bits := 8; bits <= 15; bits++ {
		for _, cc := range []Config{{MaxWindowBits: bits}, {ContextTakeover: true, MaxWindowBits: bits}} {
			for _, sc := range []Config{takeover, noTakeover} {
				resp, sp, ok := Accept(mustParse(t, Offer(cc)), sc)
				if !ok {
					t.Fatalf("server %+v declined %q", sc, Offer(cc))
				}
				cp, err := Verify(mustParse(t, resp), cc)
				if err != nil {
					t.Fatalf("client %+v rejected %q: %v", cc, resp, err)
				}
				if cp.ServerMaxWindowBits != bits || sp.ServerMaxWindowBits != bits {
					t.Fatalf("offer %q, response %q: server window %d/%d, want %d", Offer(cc), resp, sp.ServerMaxWindowBits, cp.ServerMaxWindowBits, bits)
				}
				// The server leaves client_max_window_bits out; the client
				// keeps to the window it offered, a server's Params say 15.
				if cp.ClientMaxWindowBits != bits || sp.ClientMaxWindowBits != 15 {
					t.Fatalf("offer %q: client window %d (client), %d (server)", Offer(cc), cp.ClientMaxWindowBits, sp.ClientMaxWindowBits)
				}
			}
		}
	}
}
