package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: testNow} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var b64 = base64.RawURLEncoding

// jwkOf encodes pub as a JWK (RFC 7517, RFC 7518 §6, RFC 8037 §2).
func jwkOf(kid string, pub crypto.PublicKey) map[string]any {
	m := map[string]any{}
	if kid != "" {
		m["kid"] = kid
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", b64.EncodeToString(k.N.Bytes()), b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		pt, err := k.Bytes()
		if err != nil {
			panic(err)
		}
		size := (len(pt) - 1) / 2
		m["kty"], m["crv"] = "EC", k.Curve.Params().Name
		m["x"], m["y"] = b64.EncodeToString(pt[1:1+size]), b64.EncodeToString(pt[1+size:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", b64.EncodeToString(k)
	default:
		panic("jwkOf: unsupported key")
	}
	return m
}

// jwksServer serves a key set that the test can change, fail or slow down,
// and counts requests.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64

	mu     sync.Mutex
	keys   []map[string]any // guarded by mu
	status int              // guarded by mu; 0 = 200
	block  chan struct{}    // guarded by mu; when set, requests wait on it
}

func newJWKSServer(t *testing.T, keys ...map[string]any) *jwksServer {
	s := &jwksServer{keys: keys}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		keys, status, block := s.keys, s.status, s.block
		s.mu.Unlock()
		if block != nil {
			select {
			case <-block:
			case <-r.Context().Done():
				return
			}
		}
		if status != 0 {
			http.Error(w, "down", status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(keys ...map[string]any) {
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
}

func (s *jwksServer) setStatus(code int) {
	s.mu.Lock()
	s.status = code
	s.mu.Unlock()
}

// waitLoaded waits for the verifier's first JWKS fetch to succeed, so that
// tests count requests from a known state.
func waitLoaded(t *testing.T, v *Verifier) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		v.jwks.mu.Lock()
		loaded := v.jwks.keys != nil
		v.jwks.mu.Unlock()
		if loaded {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("JWKS never loaded")
}

func waitRequests(t *testing.T, s *jwksServer, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.requests.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d JWKS requests, want %d", s.requests.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func kidToken(t testing.TB, m jwt.SigningMethod, key any, kid, user string) string {
	hdr := map[string]any{}
	if kid != "" {
		hdr["kid"] = kid
	}
	return sign(t, m, key, hdr, map[string]any{"sub": user})
}

func TestJWKSFetchAndCache(t *testing.T) {
	t.Parallel()
	rsaKey := rsaKeyOnce()
	ec := mustECDSA(t, elliptic.P384())
	ed := mustEd25519(t)
	srv := newJWKSServer(t, jwkOf("r1", &rsaKey.PublicKey), jwkOf("e1", &ec.PublicKey), jwkOf("d1", ed.Public()))
	v := newTestVerifier(t, Config{JWKSURL: srv.URL + "/jwks.json", JWKSRefresh: time.Hour})

	toks := []string{
		kidToken(t, jwt.SigningMethodRS256, rsaKey, "r1", "ann"),
		kidToken(t, jwt.SigningMethodPS384, rsaKey, "r1", "ann"),
		kidToken(t, jwt.SigningMethodES384, ec, "e1", "ann"),
		kidToken(t, jwt.SigningMethodEdDSA, ed, "d1", "ann"),
		kidToken(t, jwt.SigningMethodEdDSA, ed, "", "ann"), // no kid: every Ed25519 key is tried
	}
	// The first Verify may race the initial fetch: it joins it.
	for range 3 {
		for _, tok := range toks {
			id, err := v.Verify(context.Background(), tok)
			if err != nil || id.User != "ann" {
				t.Fatalf("Verify: %+v, %v", id, err)
			}
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("%d JWKS requests, want 1 (cached)", n)
	}

	// A key is used only under its own kid.
	tok := kidToken(t, jwt.SigningMethodEdDSA, ed, "r1", "ann")
	_, err := v.Verify(context.Background(), tok)
	checkErr(t, err, ErrInvalidToken, tok)
	// The set has no secret keys: HS256 is never accepted from a JWKS
	// verifier, whatever the key.
	tok = kidToken(t, jwt.SigningMethodHS256, testSecret, "r1", "ann")
	_, err = v.Verify(context.Background(), tok)
	checkErr(t, err, ErrInvalidToken, tok)
}

func TestJWKSUnknownKidRefetch(t *testing.T) {
	t.Parallel()
	k1, k2, k3 := mustEd25519(t), mustEd25519(t), mustEd25519(t)
	srv := newJWKSServer(t, jwkOf("k1", k1.Public()))
	clock := newClock()
	v := newTestVerifier(t, Config{JWKSURL: srv.URL, JWKSRefresh: time.Hour, Now: clock.Now})
	waitLoaded(t, v)
	ctx := context.Background()
	if _, err := v.Verify(ctx, kidToken(t, jwt.SigningMethodEdDSA, k1, "k1", "a")); err != nil {
		t.Fatal(err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("%d requests after the first fetch", n)
	}

	// Key rotation: the server publishes k2 and tokens signed with it
	// arrive; the unknown kid makes Verify fetch the set again.
	srv.set(jwkOf("k1", k1.Public()), jwkOf("k2", k2.Public()))
	if _, err := v.Verify(ctx, kidToken(t, jwt.SigningMethodEdDSA, k2, "k2", "a")); err != nil {
		t.Fatalf("new kid after refetch: %v", err)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}

	// Made-up kids within the rate limit cause no request.
	for i := range 20 {
		tok := kidToken(t, jwt.SigningMethodEdDSA, k3, "bogus"+string(rune('a'+i)), "a")
		_, err := v.Verify(ctx, tok)
		checkErr(t, err, ErrInvalidToken, tok)
		if !strings.Contains(err.Error(), "unknown key id") {
			t.Fatalf("error %q", err)
		}
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("%d requests after bogus kids, want 2 (rate-limited)", n)
	}

	// k3 appears on the server; within the limit Verify cannot know yet.
	srv.set(jwkOf("k1", k1.Public()), jwkOf("k2", k2.Public()), jwkOf("k3", k3.Public()))
	tok3 := kidToken(t, jwt.SigningMethodEdDSA, k3, "k3", "a")
	clock.Advance(jwksMinInterval - time.Second)
	_, err := v.Verify(ctx, tok3)
	checkErr(t, err, ErrInvalidToken, tok3)
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	// Past the limit it fetches once more and accepts.
	clock.Advance(time.Second)
	if _, err := v.Verify(ctx, tok3); err != nil {
		t.Fatalf("after the rate limit: %v", err)
	}
	if n := srv.requests.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
	// Known kids never fetch.
	for range 5 {
		if _, err := v.Verify(ctx, kidToken(t, jwt.SigningMethodEdDSA, k1, "k1", "a")); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.requests.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

func TestJWKSRefreshInterval(t *testing.T) {
	t.Parallel()
	k1, k2 := mustEd25519(t), mustEd25519(t)
	srv := newJWKSServer(t, jwkOf("k1", k1.Public()))
	clock := newClock() // frozen: only the refresh interval can fetch
	v := newTestVerifier(t, Config{JWKSURL: srv.URL, JWKSRefresh: 20 * time.Millisecond, Now: clock.Now})
	waitLoaded(t, v)
	tok1 := kidToken(t, jwt.SigningMethodEdDSA, k1, "k1", "a")
	// Use up the on-demand fetch so that only the interval brings k2.
	_, _ = v.Verify(context.Background(), kidToken(t, jwt.SigningMethodEdDSA, k2, "nope", "a"))

	// The key server revokes k1 and publishes k2. Request n+1 starts
	// after the change; request n+2 starts only once n+1 is installed.
	srv.set(jwkOf("k2", k2.Public()))
	n := srv.requests.Load()
	waitRequests(t, srv, n+2)
	tok2 := kidToken(t, jwt.SigningMethodEdDSA, k2, "k2", "a")
	if _, err := v.Verify(context.Background(), tok2); err != nil {
		t.Fatalf("k2 after refresh: %v", err)
	}
	_, err := v.Verify(context.Background(), tok1)
	checkErr(t, err, ErrInvalidToken, tok1)

	// Close stops the refreshing.
	v.Close()
	n = srv.requests.Load()
	time.Sleep(100 * time.Millisecond)
	if m := srv.requests.Load(); m != n {
		t.Fatalf("%d requests after Close, had %d", m, n)
	}
	// Verify still works with the keys in hand, and fetches no more.
	if _, err := v.Verify(context.Background(), tok2); err != nil {
		t.Fatalf("after Close: %v", err)
	}
	clock.Advance(time.Hour)
	_, _ = v.Verify(context.Background(), kidToken(t, jwt.SigningMethodEdDSA, k2, "other", "a"))
	if m := srv.requests.Load(); m != n {
		t.Fatalf("on-demand fetch after Close")
	}
	v.Close() // idempotent
}

func TestJWKSServerDownKeepsKeys(t *testing.T) {
	t.Parallel()
	k1 := mustEd25519(t)
	srv := newJWKSServer(t, jwkOf("k1", k1.Public()))
	clock := newClock()
	v := newTestVerifier(t, Config{JWKSURL: srv.URL, JWKSRefresh: 10 * time.Millisecond, Now: clock.Now})
	waitLoaded(t, v)
	tok := kidToken(t, jwt.SigningMethodEdDSA, k1, "k1", "a")

	for _, failure := range []func(){
		func() { srv.setStatus(http.StatusInternalServerError) },
		func() { srv.setStatus(0); srv.set() },                            // an empty set is refused, not installed
		func() { srv.set(map[string]any{"kty": "oct", "k": "c2VjcmV0"}) }, // nothing usable
	} {
		failure()
		n := srv.requests.Load()
		waitRequests(t, srv, n+2) // request n+1 failed and was handled
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("cached key lost after a failed refresh: %v", err)
		}
	}
	// The server gone altogether: connection refused.
	srv.Close()
	time.Sleep(50 * time.Millisecond)
	clock.Advance(time.Minute)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("cached key lost with the server gone: %v", err)
	}
}

func TestJWKSUnavailableAtStart(t *testing.T) {
	t.Parallel()
	k1 := mustEd25519(t)
	srv := newJWKSServer(t, jwkOf("k1", k1.Public()))
	srv.setStatus(http.StatusServiceUnavailable)
	clock := newClock()
	v := newTestVerifier(t, Config{JWKSURL: srv.URL + "/keys?token=s3cr3t", JWKSRefresh: time.Hour, Now: clock.Now})
	waitRequests(t, srv, 1)
	tok := kidToken(t, jwt.SigningMethodEdDSA, k1, "k1", "a")
	_, err := v.Verify(context.Background(), tok)
	checkErr(t, err, ErrInvalidToken, tok)
	if !strings.Contains(err.Error(), "JWKS unavailable") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("error %q does not say why", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %q quotes the JWKS URL", err)
	}
	// The server recovers; past the rate limit the next Verify fetches.
	srv.setStatus(0)
	clock.Advance(jwksMinInterval)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

func TestJWKSContext(t *testing.T) {
	t.Parallel()
	k1 := mustEd25519(t)
	srv := newJWKSServer(t, jwkOf("k1", k1.Public()))
	release := make(chan struct{})
	srv.mu.Lock()
	srv.block = release
	srv.mu.Unlock()
	v := newTestVerifier(t, Config{JWKSURL: srv.URL})
	tok := kidToken(t, jwt.SigningMethodEdDSA, k1, "k1", "a")

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := v.Verify(ctx, tok)
	checkErr(t, err, ErrInvalidToken, tok)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v does not wrap the context's", err)
	}
	// The fetch itself was not cancelled with the caller: once the server
	// answers, the keys are there.
	close(release)
	waitLoaded(t, v)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestJWKSRedirectAndSize(t *testing.T) {
	t.Parallel()
	var hits atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/redirect-out":
			// Plain http off loopback is refused before any connection.
			http.Redirect(w, r, "http://keys.example.test/jwks", http.StatusFound)
		case "/big":
			w.Write([]byte(`{"keys":[],"pad":"`))
			w.Write([]byte(strings.Repeat("x", jwksMaxBody)))
			w.Write([]byte(`"}`))
		}
	}))
	defer ts.Close()
	for _, path := range []string{"/redirect-out", "/big"} {
		c, err := newJWKSCache(ts.URL+path, time.Hour, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		err = c.fetch(context.Background(), false)
		c.close()
		if err == nil {
			t.Fatalf("%s: fetch succeeded", path)
		}
	}
	if n := hits.Load(); n > 4 {
		t.Fatalf("%d hits", n)
	}
}

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	rsaKey := rsaKeyOnce()
	ec := mustECDSA(t, elliptic.P256())
	ed := mustEd25519(t)
	small := mustRSA(1024)
	with := func(m map[string]any, kv ...any) map[string]any {
		out := map[string]any{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	r, e, d := jwkOf("r", &rsaKey.PublicKey), jwkOf("e", &ec.PublicKey), jwkOf("d", ed.Public())
	x, _ := b64.DecodeString(e["x"].(string))
	tests := []struct {
		name string
		key  map[string]any
		ok   bool
	}{
		{"RSA", r, true},
		{"EC", e, true},
		{"OKP", d, true},
		{"use sig", with(r, "use", "sig"), true},
		{"key_ops verify", with(e, "key_ops", []string{"verify"}), true},
		{"alg fits", with(d, "alg", "EdDSA"), true},
		{"padded base64", with(d, "x", b64.EncodeToString(ed.Public().(ed25519.PublicKey))+"="), true},
		{"private member ignored", with(d, "d", "AAAA"), true},

		{"use enc", with(r, "use", "enc"), false},
		{"key_ops encrypt", with(r, "key_ops", []string{"encrypt"}), false},
		{"alg RSA-OAEP", with(r, "alg", "RSA-OAEP"), false},
		{"alg of another key type", with(r, "alg", "ES256"), false},
		{"alg none", with(d, "alg", "none"), false},
		{"oct", map[string]any{"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}, false},
		{"unknown kty", map[string]any{"kty": "XYZ"}, false},
		{"X25519", with(d, "crv", "X25519"), false},
		{"Ed448", with(d, "crv", "Ed448"), false},
		{"Ed25519 short", with(d, "x", b64.EncodeToString(make([]byte, 31))), false},
		{"EC P-224", with(e, "crv", "P-224"), false},
		{"EC curve mismatch", with(e, "crv", "P-384"), false},
		{"EC short coordinate", with(e, "x", b64.EncodeToString(x[1:])), false},
		{"EC off curve", with(e, "y", e["x"]), false},
		{"EC bad base64", with(e, "x", "!!"), false},
		{"RSA 1024", jwkOf("s", &small.PublicKey), false},
		{"RSA no e", with(r, "e", ""), false},
		{"RSA even e", with(r, "e", "Ag"), false},
		{"RSA huge e", with(r, "e", b64.EncodeToString(make([]byte, 9))), false},
		{"n a number", with(r, "n", 5), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each key beside a good one: a bad key is skipped, not fatal.
			body := mustJSON(map[string]any{"keys": []any{tt.key, jwkOf("good", ed.Public())}})
			keys, err := parseJWKS([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if tt.ok {
				want = 2
			}
			if len(keys) != want {
				t.Fatalf("%d keys, want %d", len(keys), want)
			}
		})
	}
	for _, body := range []string{``, `[]`, `{}`, `{"keys":null}`, `{"keys":{}}`, `{"keys":[]}`, `{"keys":[{"kty":"oct","k":"AA"}]}`, `not json`} {
		if _, err := parseJWKS([]byte(body)); err == nil {
			t.Errorf("parseJWKS(%q) succeeded", body)
		}
	}
}

// A JWK's "alg" restricts its key: an RS256-only key does not verify a
// PS256 token.
func TestJWKSAlgRestriction(t *testing.T) {
	t.Parallel()
	rsaKey := rsaKeyOnce()
	k := jwkOf("r", &rsaKey.PublicKey)
	k["alg"] = "RS256"
	srv := newJWKSServer(t, k)
	v := newTestVerifier(t, Config{JWKSURL: srv.URL})
	if _, err := v.Verify(context.Background(), kidToken(t, jwt.SigningMethodRS256, rsaKey, "r", "a")); err != nil {
		t.Fatal(err)
	}
	tok := kidToken(t, jwt.SigningMethodPS256, rsaKey, "r", "a")
	_, err := v.Verify(context.Background(), tok)
	checkErr(t, err, ErrInvalidToken, tok)
}

// Static keys and a key set together: each token finds its key.
func TestJWKSWithStaticKeys(t *testing.T) {
	t.Parallel()
	static, fetched := mustEd25519(t), mustEd25519(t)
	srv := newJWKSServer(t, jwkOf("f", fetched.Public()))
	v := newTestVerifier(t, Config{HMACSecret: testSecret, PublicKeys: []crypto.PublicKey{static.Public()}, JWKSURL: srv.URL})
	for _, tok := range []string{
		kidToken(t, jwt.SigningMethodEdDSA, static, "", "a"),
		kidToken(t, jwt.SigningMethodEdDSA, fetched, "f", "a"),
		kidToken(t, jwt.SigningMethodEdDSA, fetched, "", "a"),
		kidToken(t, jwt.SigningMethodHS256, testSecret, "f", "a"),
	} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	// A JWK without kid serves tokens naming any kid (the kid is a hint).
	anon := mustEd25519(t)
	srv.set(jwkOf("", anon.Public()))
	v2 := newTestVerifier(t, Config{JWKSURL: srv.URL})
	if _, err := v2.Verify(context.Background(), kidToken(t, jwt.SigningMethodEdDSA, anon, "whatever", "a")); err != nil {
		t.Fatal(err)
	}
}

func TestCheckJWKSURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"https://keys.example.test/jwks", "http://127.0.0.1:8080/jwks", "http://localhost/jwks", "http://[::1]:9/jwks", "http://127.9.9.9/"} {
		if _, err := checkJWKSURL(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://keys.example.test/jwks", "http://10.0.0.1/jwks", "http://localhost.example.test/", "file:///etc/jwks", "https:relative", ""} {
		if _, err := checkJWKSURL(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}
