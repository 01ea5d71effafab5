package auth

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signedByUs checks a token's signature without the jwt library: an
// independent oracle for the fuzz test.
func signedByUs(token string, secret []byte, pub ed25519.PublicKey) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	sig, err2 := base64.RawURLEncoding.DecodeString(parts[2])
	var hdr struct {
		Alg string `json:"alg"`
	}
	if err1 != nil || err2 != nil || json.Unmarshal(hb, &hdr) != nil {
		return false
	}
	input := []byte(parts[0] + "." + parts[1])
	var h func() hash.Hash
	switch hdr.Alg {
	case "HS256":
		h = sha256.New
	case "HS384":
		h = sha512.New384
	case "HS512":
		h = sha512.New
	case "EdDSA":
		return ed25519.Verify(pub, input, sig)
	default:
		return false
	}
	mac := hmac.New(h, secret)
	mac.Write(input)
	return hmac.Equal(mac.Sum(nil), sig)
}

// FuzzVerify: Verify never panics, accepts only tokens that the oracle
// says are signed with the configured keys, and its errors are always one
// of the sentinels and never quote the token.
func FuzzVerify(f *testing.F) {
	secret := []byte(strings.Repeat("s", 64))
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub := priv.Public().(ed25519.PublicKey)
	v, err := NewVerifier(Config{HMACSecret: secret, PublicKeys: []crypto.PublicKey{pub}, Now: fixedNow, Leeway: time.Minute})
	if err != nil {
		f.Fatal(err)
	}
	defer v.Close()

	good := map[string]any{"sub": "ann", "exp": testNow.Unix() + 60, "subscribe": []string{"chat:*"}}
	for _, tok := range []string{
		sign(f, jwt.SigningMethodHS256, secret, nil, good),
		sign(f, jwt.SigningMethodHS512, secret, nil, good),
		sign(f, jwt.SigningMethodEdDSA, priv, nil, good),
		sign(f, jwt.SigningMethodHS256, otherKey, nil, good),
		sign(f, jwt.SigningMethodHS256, secret, nil, map[string]any{"sub": 1, "exp": "x"}),
		sign(f, jwt.SigningMethodHS256, []byte(pub), nil, good),
		rawToken(`{"alg":"none"}`, `{"sub":"ann"}`, nil, nil),
		rawToken(`{"alg":"HS256","kid":"k"}`, `{"sub":"ann","publish":[null]}`, secret, nil),
		"", ".", "..", "a.b.c", "eyJ.eyJ.", strings.Repeat("A", 100),
	} {
		f.Add(tok)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(context.Background(), token)
		if err == nil {
			if !signedByUs(token, secret, pub) {
				t.Fatalf("accepted a token not signed by the key: %q", token)
			}
			if id.User == "" {
				t.Fatal("accepted a token without a user")
			}
			return
		}
		n := 0
		for _, s := range []error{ErrInvalidToken, ErrTokenExpired, ErrTokenNotYetValid} {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("error %v matches %d sentinels", err, n)
		}
		// Reasons contain no '.', so a dotted token this long cannot
		// appear in an error by chance.
		if len(token) >= 16 && strings.Contains(token, ".") && strings.Contains(err.Error(), token) {
			t.Fatalf("error %q quotes the token", err)
		}
	})
}
