package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	testNow    = time.Unix(1700000000, 0)
	testSecret = []byte("0123456789abcdef0123456789abcdef") // 32 bytes
	otherKey   = []byte("fedcba9876543210fedcba9876543210")
)

func fixedNow() time.Time { return testNow }

// sign makes a token with the jwt library: header fields beyond alg and
// typ from hdr, claims as given (so tests can write any JSON types).
func sign(t testing.TB, m jwt.SigningMethod, key any, hdr map[string]any, claims map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, jwt.MapClaims(claims))
	for k, v := range hdr {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", m.Alg(), err)
	}
	return s
}

// rawToken assembles a token from a literal header and payload, with an
// HMAC-SHA256 signature under key (or the given signature when key is nil).
func rawToken(header, payload string, key []byte, sig []byte) string {
	enc := base64.RawURLEncoding
	s := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
	if key != nil {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(s))
		sig = mac.Sum(nil)
	}
	return s + "." + enc.EncodeToString(sig)
}

func claimsFor(user string, exp time.Time) map[string]any {
	c := map[string]any{"sub": user, "iat": testNow.Unix() - 10}
	if !exp.IsZero() {
		c["exp"] = exp.Unix()
	}
	return c
}

func newTestVerifier(t testing.TB, cfg Config) *Verifier {
	t.Helper()
	if cfg.Now == nil {
		cfg.Now = fixedNow
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

// checkErr asserts err matches want (nil for success) and never quotes
// the token.
func checkErr(t *testing.T, err, want error, token string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("Verify error %v, want %v", err, want)
	}
	if !strings.HasPrefix(err.Error(), "auth: ") {
		t.Errorf("error %q lacks the auth: prefix", err)
	}
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 && strings.Contains(err.Error(), part) {
			t.Errorf("error %q quotes the token", err)
		}
	}
	// The time errors are distinct from ErrInvalidToken.
	if want == ErrTokenExpired || want == ErrTokenNotYetValid {
		if errors.Is(err, ErrInvalidToken) {
			t.Errorf("%v also matches ErrInvalidToken", err)
		}
	}
}

func TestVerifyAlgorithms(t *testing.T) {
	t.Parallel()
	rsaKey := rsaKeyOnce()
	ec256 := mustECDSA(t, elliptic.P256())
	ec384 := mustECDSA(t, elliptic.P384())
	ec521 := mustECDSA(t, elliptic.P521())
	ed := mustEd25519(t)
	long := []byte(strings.Repeat("k", 64))

	v := newTestVerifier(t, Config{
		HMACSecret: long,
		PublicKeys: []crypto.PublicKey{&rsaKey.PublicKey, &ec256.PublicKey, &ec384.PublicKey, &ec521.PublicKey, ed.Public()},
	})
	exp := testNow.Add(time.Hour)
	tests := []struct {
		m   jwt.SigningMethod
		key any
	}{
		{jwt.SigningMethodHS256, long},
		{jwt.SigningMethodHS384, long},
		{jwt.SigningMethodHS512, long},
		{jwt.SigningMethodRS256, rsaKey},
		{jwt.SigningMethodRS384, rsaKey},
		{jwt.SigningMethodRS512, rsaKey},
		{jwt.SigningMethodPS256, rsaKey},
		{jwt.SigningMethodPS512, rsaKey},
		{jwt.SigningMethodES256, ec256},
		{jwt.SigningMethodES384, ec384},
		{jwt.SigningMethodES512, ec521},
		{jwt.SigningMethodEdDSA, ed},
	}
	for _, tt := range tests {
		t.Run(tt.m.Alg(), func(t *testing.T) {
			c := claimsFor("ann", exp)
			c["subscribe"] = []string{"chat:*"}
			c["publish"] = []string{"chat:lobby", "news:eu"}
			c["extra"] = map[string]any{"ignored": true}
			tok := sign(t, tt.m, tt.key, nil, c)
			id, err := v.Verify(context.Background(), tok)
			checkErr(t, err, nil, tok)
			if id.User != "ann" || !id.ExpiresAt.Equal(exp) ||
				!slices.Equal(id.Subscribe, []string{"chat:*"}) ||
				!slices.Equal(id.Publish, []string{"chat:lobby", "news:eu"}) {
				t.Fatalf("identity %+v", id)
			}
		})
	}
}

func TestVerifyTime(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) int64 { return testNow.Add(d).Unix() }
	tests := []struct {
		name   string
		claims map[string]any
		leeway time.Duration
		want   error
	}{
		{"no exp", map[string]any{"sub": "a"}, 0, nil},
		{"exp ahead", map[string]any{"sub": "a", "exp": at(time.Second)}, 0, nil},
		{"exp now", map[string]any{"sub": "a", "exp": at(0)}, 0, ErrTokenExpired},
		{"expired", map[string]any{"sub": "a", "exp": at(-time.Minute)}, 0, ErrTokenExpired},
		{"expired within leeway", map[string]any{"sub": "a", "exp": at(-time.Minute)}, 2 * time.Minute, nil},
		{"expired past leeway", map[string]any{"sub": "a", "exp": at(-3 * time.Minute)}, 2 * time.Minute, ErrTokenExpired},
		{"nbf passed", map[string]any{"sub": "a", "nbf": at(-time.Second)}, 0, nil},
		{"nbf now", map[string]any{"sub": "a", "nbf": at(0)}, 0, nil},
		{"not yet valid", map[string]any{"sub": "a", "nbf": at(time.Minute)}, 0, ErrTokenNotYetValid},
		{"nbf within leeway", map[string]any{"sub": "a", "nbf": at(time.Minute)}, 2 * time.Minute, nil},
		{"iat in the future", map[string]any{"sub": "a", "iat": at(time.Minute)}, 0, ErrTokenNotYetValid},
		{"iat within leeway", map[string]any{"sub": "a", "iat": at(time.Minute)}, 2 * time.Minute, nil},
		{"fractional exp", map[string]any{"sub": "a", "exp": float64(at(0)) + 0.5}, 0, nil},
		// An invalid claim beside an expired one: not "token_expired".
		{"expired and missing sub", map[string]any{"exp": at(-time.Minute)}, 0, ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(t, Config{HMACSecret: testSecret, Leeway: tt.leeway})
			tok := sign(t, jwt.SigningMethodHS256, testSecret, nil, tt.claims)
			_, err := v.Verify(context.Background(), tok)
			checkErr(t, err, tt.want, tok)
		})
	}
}

// The time errors are for valid tokens only: an expired token with a bad
// signature is an invalid token.
func TestVerifyExpiredBadSignature(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, Config{HMACSecret: testSecret})
	tok := sign(t, jwt.SigningMethodHS256, otherKey, nil, map[string]any{"sub": "a", "exp": testNow.Unix() - 60})
	_, err := v.Verify(context.Background(), tok)
	checkErr(t, err, ErrInvalidToken, tok)
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	rsaKey := rsaKeyOnce()
	rsaOther := rsaKey2Once()
	ec256 := mustECDSA(t, elliptic.P256())
	ec384 := mustECDSA(t, elliptic.P384())
	ed := mustEd25519(t)
	edOther := mustEd25519(t)
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pemOf("PUBLIC KEY", pubDER)
	good := claimsFor("ann", testNow.Add(time.Hour))
	hs := func(claims map[string]any) string { return sign(t, jwt.SigningMethodHS256, testSecret, nil, claims) }
	valid := hs(good)
	parts := strings.Split(valid, ".")

	// Every verifier below has all three kinds of keys, so a rejection is
	// about the token, not a missing key type.
	v := newTestVerifier(t, Config{
		HMACSecret: testSecret,
		PublicKeys: []crypto.PublicKey{&rsaKey.PublicKey, &ec256.PublicKey, ed.Public()},
	})
	// One with only asymmetric keys, for alg confusion against an RSA key.
	vRSA := newTestVerifier(t, Config{PublicKeys: []crypto.PublicKey{&rsaKey.PublicKey}})

	enc := base64.RawURLEncoding
	tampered := func() string {
		var c map[string]any
		b, _ := enc.DecodeString(parts[1])
		_ = json.Unmarshal(b, &c)
		c["sub"] = "admin"
		b, _ = json.Marshal(c)
		return parts[0] + "." + enc.EncodeToString(b) + "." + parts[2]
	}()
	sig, _ := enc.DecodeString(parts[2])
	sig[0] ^= 1
	badSig := parts[0] + "." + parts[1] + "." + enc.EncodeToString(sig)
	// The last base64 character of a 32-byte MAC carries 2 unused bits;
	// setting them must not give a second valid encoding.
	last := parts[2][len(parts[2])-1]
	i := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
	nonCanonical := parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] +
		string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[i|1])

	noneTok := rawToken(`{"alg":"none","typ":"JWT"}`, `{"sub":"ann"}`, nil, nil)
	noneTok2 := rawToken(`{"alg":"None"}`, `{"sub":"ann"}`, nil, nil)

	tests := []struct {
		name  string
		v     *Verifier
		token string
	}{
		{"wrong HMAC key", v, sign(t, jwt.SigningMethodHS256, otherKey, nil, good)},
		{"wrong RSA key", v, sign(t, jwt.SigningMethodRS256, rsaOther, nil, good)},
		{"wrong Ed25519 key", v, sign(t, jwt.SigningMethodEdDSA, edOther, nil, good)},
		{"ES384 with only a P-256 key", v, sign(t, jwt.SigningMethodES384, ec384, nil, good)},
		{"HS384 with a 32-byte secret", v, sign(t, jwt.SigningMethodHS384, testSecret, nil, good)},
		// The classic: an HS256 token "signed" with the RSA public key
		// bytes, sent to a verifier holding that RSA key.
		{"alg confusion RS256 to HS256 (PEM)", vRSA, sign(t, jwt.SigningMethodHS256, pubPEM, nil, good)},
		{"alg confusion RS256 to HS256 (DER)", vRSA, sign(t, jwt.SigningMethodHS256, pubDER, nil, good)},
		{"alg confusion with a secret configured too", v, sign(t, jwt.SigningMethodHS256, pubPEM, nil, good)},
		{"ES256 token relabelled RS256", v, func() string {
			tok := sign(t, jwt.SigningMethodES256, ec256, nil, good)
			p := strings.Split(tok, ".")
			return enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + p[1] + "." + p[2]
		}()},
		{"alg none", v, noneTok},
		{"alg None", v, noneTok2},
		{"alg none with HMAC", v, rawToken(`{"alg":"none"}`, `{"sub":"ann"}`, testSecret, nil)},
		{"alg missing", v, rawToken(`{"typ":"JWT"}`, `{"sub":"ann"}`, testSecret, nil)},
		{"alg not a string", v, rawToken(`{"alg":1}`, `{"sub":"ann"}`, testSecret, nil)},
		{"alg unknown", v, rawToken(`{"alg":"HS1024"}`, `{"sub":"ann"}`, testSecret, nil)},
		{"crit header", v, rawToken(`{"alg":"HS256","crit":["exp"],"exp":1}`, `{"sub":"ann"}`, testSecret, nil)},
		{"kid not a string", v, rawToken(`{"alg":"HS256","kid":7}`, `{"sub":"ann"}`, testSecret, nil)},
		{"tampered payload", v, tampered},
		{"tampered signature", v, badSig},
		{"non-canonical signature encoding", v, nonCanonical},
		{"signature stripped", v, parts[0] + "." + parts[1] + "."},
		{"two segments", v, parts[0] + "." + parts[1]},
		{"four segments", v, valid + ".x"},
		{"padded base64", v, parts[0] + "=." + parts[1] + "." + parts[2]},
		{"not base64", v, "!!!." + parts[1] + "." + parts[2]},
		{"header not JSON", v, rawToken(`alg HS256`, `{"sub":"ann"}`, testSecret, nil)},
		{"payload not JSON", v, rawToken(`{"alg":"HS256"}`, `sub=ann`, testSecret, nil)},
		{"payload an array", v, rawToken(`{"alg":"HS256"}`, `["ann"]`, testSecret, nil)},
		{"payload null", v, rawToken(`{"alg":"HS256"}`, `null`, testSecret, nil)},
		{"empty", v, ""},
		{"garbage", v, "not a token"},
		{"only dots", v, ".."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.v.Verify(context.Background(), tt.token)
			checkErr(t, err, ErrInvalidToken, tt.token)
		})
	}
	// The control: the untampered token is fine.
	if _, err := v.Verify(context.Background(), valid); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyClaims(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, Config{HMACSecret: testSecret})
	many := make([]string, maxGrants+1)
	for i := range many {
		many[i] = "c"
	}
	tests := []struct {
		name    string
		payload string
		ok      bool
	}{
		{"minimal", `{"sub":"ann"}`, true},
		{"whitespace", ` { "sub" : "ann" , "exp" : 1700003600 , "subscribe" : [ "a" , "b" ] } `, true},
		{"grants null", `{"sub":"ann","subscribe":null,"publish":null}`, true},
		{"grants empty", `{"sub":"ann","subscribe":[],"publish":[]}`, true},
		{"100 grants", `{"sub":"ann","subscribe":` + mustJSON(many[:maxGrants]) + `}`, true},
		{"pattern of 128 bytes", `{"sub":"ann","publish":["` + strings.Repeat("p", 128) + `"]}`, true},
		{"sub of 128 bytes", `{"sub":"` + strings.Repeat("u", 128) + `"}`, true},
		{"sub unicode", `{"sub":"änn ✓"}`, true},
		{"unknown claims ignored", `{"sub":"ann","jti":5,"room":{"a":[1]}}`, true},
		{"aud ignored when not configured", `{"sub":"ann","aud":"x"}`, true},

		{"missing sub", `{"exp":1700003600}`, false},
		{"empty sub", `{"sub":""}`, false},
		{"sub upper-case name", `{"SUB":"ann"}`, false},
		{"sub a number", `{"sub":7}`, false},
		{"sub null", `{"sub":null}`, false},
		{"sub an array", `{"sub":["ann"]}`, false},
		{"sub too long", `{"sub":"` + strings.Repeat("u", 129) + `"}`, false},
		{"sub with newline", `{"sub":"ann\nbob"}`, false},
		{"sub with NUL", `{"sub":"ann\u0000"}`, false},
		{"sub with DEL", `{"sub":"ann\u007f"}`, false},
		{"sub with C1 control", `{"sub":"ann\u0085"}`, false},
		{"exp a string", `{"sub":"ann","exp":"1700003600"}`, false},
		{"exp null", `{"sub":"ann","exp":null}`, false},
		{"exp a bool", `{"sub":"ann","exp":true}`, false},
		{"exp negative", `{"sub":"ann","exp":-1}`, false},
		{"exp huge", `{"sub":"ann","exp":1e300}`, false},
		{"nbf a string", `{"sub":"ann","nbf":"0"}`, false},
		{"iat an object", `{"sub":"ann","iat":{}}`, false},
		{"subscribe a string", `{"sub":"ann","subscribe":"chat:*"}`, false},
		{"subscribe numbers", `{"sub":"ann","subscribe":[1,2]}`, false},
		{"subscribe with null", `{"sub":"ann","subscribe":["a",null]}`, false},
		{"subscribe nested", `{"sub":"ann","subscribe":[["a"]]}`, false},
		{"publish an object", `{"sub":"ann","publish":{"a":1}}`, false},
		{"publish true", `{"sub":"ann","publish":true}`, false},
		{"too many grants", `{"sub":"ann","subscribe":` + mustJSON(many) + `}`, false},
		{"pattern too long", `{"sub":"ann","publish":["` + strings.Repeat("p", 129) + `"]}`, false},
		{"iss a number", `{"sub":"ann","iss":1}`, false},
		{"aud a number", `{"sub":"ann","aud":1}`, false},
		{"aud mixed", `{"sub":"ann","aud":["a",1]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := rawToken(`{"alg":"HS256","typ":"JWT"}`, tt.payload, testSecret, nil)
			id, err := v.Verify(context.Background(), tok)
			if tt.ok {
				checkErr(t, err, nil, tok)
				if id.User == "" {
					t.Fatal("empty user")
				}
				return
			}
			checkErr(t, err, ErrInvalidToken, tok)
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestVerifyIssuerAudience(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, Config{HMACSecret: testSecret, Issuer: "https://backend", Audience: "latch"})
	vNone := newTestVerifier(t, Config{HMACSecret: testSecret})
	tests := []struct {
		name   string
		claims map[string]any
		ok     bool
	}{
		{"both right", map[string]any{"iss": "https://backend", "aud": "latch"}, true},
		{"aud array", map[string]any{"iss": "https://backend", "aud": []string{"other", "latch"}}, true},
		{"wrong issuer", map[string]any{"iss": "https://evil", "aud": "latch"}, false},
		{"issuer missing", map[string]any{"aud": "latch"}, false},
		{"issuer case differs", map[string]any{"iss": "https://Backend", "aud": "latch"}, false},
		{"wrong audience", map[string]any{"iss": "https://backend", "aud": "other"}, false},
		{"audience missing", map[string]any{"iss": "https://backend"}, false},
		{"audience empty array", map[string]any{"iss": "https://backend", "aud": []string{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := map[string]any{"sub": "ann"}
			for k, val := range tt.claims {
				c[k] = val
			}
			tok := sign(t, jwt.SigningMethodHS256, testSecret, nil, c)
			_, err := v.Verify(context.Background(), tok)
			if tt.ok {
				checkErr(t, err, nil, tok)
			} else {
				checkErr(t, err, ErrInvalidToken, tok)
			}
			// Without Issuer and Audience configured, neither is checked.
			if _, err := vNone.Verify(context.Background(), tok); err != nil {
				t.Fatalf("unconfigured verifier: %v", err)
			}
		})
	}
	// Wrong audience and expired: the audience decides.
	tok := sign(t, jwt.SigningMethodHS256, testSecret, nil, map[string]any{"sub": "a", "iss": "https://backend", "aud": "x", "exp": testNow.Unix() - 5})
	_, err := v.Verify(context.Background(), tok)
	checkErr(t, err, ErrInvalidToken, tok)
}

func TestVerifyTooLarge(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 200)
	tok := sign(t, jwt.SigningMethodHS256, testSecret, nil, map[string]any{"sub": "ann", "pad": big})
	v := newTestVerifier(t, Config{HMACSecret: testSecret, MaxTokenSize: len(tok) - 1})
	_, err := v.Verify(context.Background(), tok)
	checkErr(t, err, ErrTokenTooLarge, tok)
	if !errors.Is(err, ErrInvalidToken) {
		t.Error("ErrTokenTooLarge does not wrap ErrInvalidToken")
	}
	// Rejected before parsing: even garbage of that size says "too large".
	_, err = v.Verify(context.Background(), strings.Repeat("!", len(tok)))
	checkErr(t, err, ErrTokenTooLarge, "")

	v2 := newTestVerifier(t, Config{HMACSecret: testSecret, MaxTokenSize: len(tok)})
	if _, err := v2.Verify(context.Background(), tok); err != nil {
		t.Fatalf("token of exactly MaxTokenSize: %v", err)
	}
	// The default is 8192 bytes.
	vd := newTestVerifier(t, Config{HMACSecret: testSecret})
	huge := sign(t, jwt.SigningMethodHS256, testSecret, nil, map[string]any{"sub": "ann", "pad": strings.Repeat("x", 8192)})
	_, err = vd.Verify(context.Background(), huge)
	checkErr(t, err, ErrTokenTooLarge, huge)
}

func TestVerifySeveralKeys(t *testing.T) {
	t.Parallel()
	a, b := mustEd25519(t), mustEd25519(t)
	e1, e2 := mustECDSA(t, elliptic.P256()), mustECDSA(t, elliptic.P256())
	v := newTestVerifier(t, Config{PublicKeys: []crypto.PublicKey{a.Public(), &e1.PublicKey, b.Public(), &e2.PublicKey}})
	for _, key := range []crypto.Signer{a, b} {
		tok := sign(t, jwt.SigningMethodEdDSA, key, nil, map[string]any{"sub": "ann"})
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []*ecdsa.PrivateKey{e1, e2} {
		tok := sign(t, jwt.SigningMethodES256, key, nil, map[string]any{"sub": "ann"})
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	// No HMAC secret: an HS256 token is refused whatever its key.
	tok := sign(t, jwt.SigningMethodHS256, testSecret, nil, map[string]any{"sub": "ann"})
	_, err := v.Verify(context.Background(), tok)
	checkErr(t, err, ErrInvalidToken, tok)
}

func TestNewVerifierErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no key source", Config{}},
		{"short secret", Config{HMACSecret: []byte("short")}},
		{"31-byte secret", Config{HMACSecret: testSecret[:31]}},
		{"negative leeway", Config{HMACSecret: testSecret, Leeway: -time.Second}},
		{"negative max size", Config{HMACSecret: testSecret, MaxTokenSize: -1}},
		{"negative refresh", Config{JWKSURL: "https://example.test/jwks", JWKSRefresh: -time.Second}},
		{"bad key type", Config{PublicKeys: []crypto.PublicKey{testSecret}}},
		{"small RSA key", Config{PublicKeys: []crypto.PublicKey{&mustRSA(1024).PublicKey}}},
		{"nil key", Config{PublicKeys: []crypto.PublicKey{(*rsa.PublicKey)(nil)}}},
		{"JWKS http not loopback", Config{JWKSURL: "http://example.test/jwks"}},
		{"JWKS ftp", Config{JWKSURL: "ftp://127.0.0.1/jwks"}},
		{"JWKS no host", Config{JWKSURL: "https:///jwks"}},
		{"JWKS relative", Config{JWKSURL: "/jwks"}},
		{"JWKS not a URL", Config{JWKSURL: "https://[::1"}},
		{"JWKS http look-alike host", Config{JWKSURL: "http://127.0.0.1.example.test/jwks"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(tt.cfg)
			if err == nil {
				v.Close()
				t.Fatal("NewVerifier accepted it")
			}
			if !strings.HasPrefix(err.Error(), "auth: ") {
				t.Errorf("error %q lacks the auth: prefix", err)
			}
		})
	}
	// The secret is copied: changing the caller's slice changes nothing.
	secret := slices.Clone(testSecret)
	v := newTestVerifier(t, Config{HMACSecret: secret})
	tok := sign(t, jwt.SigningMethodHS256, testSecret, nil, map[string]any{"sub": "ann"})
	secret[0] ^= 1
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
}

func TestSignHS256(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, Config{HMACSecret: testSecret})
	id := Identity{
		User:      "ann",
		ExpiresAt: testNow.Add(90*time.Minute + 300*time.Millisecond),
		Subscribe: []string{"chat:*"},
		Publish:   []string{"chat:lobby"},
	}
	tok, err := SignHS256(testSecret, id, testNow)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.User != id.User || got.ExpiresAt.Unix() != id.ExpiresAt.Unix() || got.ExpiresAt.Nanosecond() != 0 ||
		!slices.Equal(got.Subscribe, id.Subscribe) || !slices.Equal(got.Publish, id.Publish) {
		t.Fatalf("round trip: %+v", got)
	}
	// The payload holds exactly the documented claims.
	b, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"sub": "ann", "exp": float64(testNow.Unix() + 5400), "iat": float64(testNow.Unix()),
		"subscribe": []any{"chat:*"}, "publish": []any{"chat:lobby"}}
	if mustJSON(m) != mustJSON(want) {
		t.Fatalf("claims %v, want %v", m, want)
	}

	// No expiry, no grants, no iat.
	tok, err = SignHS256(testSecret, Identity{User: "bob"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if string(b) != `{"sub":"bob"}` {
		t.Fatalf("payload %s", b)
	}
	got, err = v.Verify(context.Background(), tok)
	if err != nil || got.User != "bob" || !got.ExpiresAt.IsZero() || got.Subscribe != nil {
		t.Fatalf("got %+v, %v", got, err)
	}

	for _, bad := range []struct {
		secret []byte
		id     Identity
	}{
		{testSecret[:31], Identity{User: "ann"}},
		{testSecret, Identity{}},
		{testSecret, Identity{User: "a\tb"}},
		{testSecret, Identity{User: "ann", Publish: []string{strings.Repeat("p", 129)}}},
	} {
		if tok, err := SignHS256(bad.secret, bad.id, testNow); err == nil {
			t.Errorf("SignHS256(%d-byte secret, %+v) = %q, want error", len(bad.secret), bad.id, tok)
		}
	}
}

// Verify is safe for concurrent use.
func TestVerifyConcurrent(t *testing.T) {
	t.Parallel()
	ed := mustEd25519(t)
	v := newTestVerifier(t, Config{HMACSecret: testSecret, PublicKeys: []crypto.PublicKey{ed.Public()}})
	toks := []string{
		sign(t, jwt.SigningMethodHS256, testSecret, nil, map[string]any{"sub": "a"}),
		sign(t, jwt.SigningMethodEdDSA, ed, nil, map[string]any{"sub": "b"}),
	}
	done := make(chan error)
	for i := range 8 {
		go func() {
			var err error
			for j := 0; j < 50 && err == nil; j++ {
				_, err = v.Verify(context.Background(), toks[(i+j)%2])
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
