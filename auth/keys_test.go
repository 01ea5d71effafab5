package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkixPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("PUBLIC KEY", der)
}

func certPEM(t *testing.T, priv crypto.Signer) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "latch test"},
		NotBefore:    time.Unix(1600000000, 0),
		NotAfter:     time.Unix(1600000001, 0), // long expired: must not matter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf("CERTIFICATE", der)
}

func TestParsePublicKeyPEM(t *testing.T) {
	t.Parallel()
	rsaKey := rsaKeyOnce()
	ecKey := mustECDSA(t, elliptic.P384())
	edKey := mustEd25519(t)
	edPub := edKey.Public().(ed25519.PublicKey)

	tests := []struct {
		name string
		pem  []byte
		want crypto.PublicKey
	}{
		{"PKIX RSA", pkixPEM(t, &rsaKey.PublicKey), &rsaKey.PublicKey},
		{"PKIX ECDSA", pkixPEM(t, &ecKey.PublicKey), &ecKey.PublicKey},
		{"PKIX Ed25519", pkixPEM(t, edPub), edPub},
		{"PKCS1 RSA", pemOf("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)), &rsaKey.PublicKey},
		{"certificate RSA", certPEM(t, rsaKey), &rsaKey.PublicKey},
		{"certificate ECDSA", certPEM(t, ecKey), &ecKey.PublicKey},
		{"certificate Ed25519", certPEM(t, edKey), edPub},
		{"after other blocks", append(append([]byte("comment line\n"), pemOf("EC PARAMETERS", []byte{6, 5, 43, 129, 4, 0, 34})...), pkixPEM(t, edPub)...), edPub},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePublicKeyPEM(tt.pem)
			if err != nil {
				t.Fatal(err)
			}
			eq, ok := got.(interface{ Equal(crypto.PublicKey) bool })
			if !ok || !eq.Equal(tt.want) {
				t.Fatalf("got %T %v, want %T", got, got, tt.want)
			}
		})
	}
}

func TestParsePublicKeyPEMErrors(t *testing.T) {
	t.Parallel()
	rsaKey := rsaKeyOnce()
	small := mustRSA(1024)
	ecKey := mustECDSA(t, elliptic.P256())
	ecPriv, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, wantErr string
		pem           []byte
	}{
		{"empty", "no public key", nil},
		{"garbage", "no public key", []byte("not a pem file at all")},
		{"only other blocks", "no public key", pemOf("EC PARAMETERS", []byte{6, 8})},
		{"bad DER", "parse PEM block", pemOf("PUBLIC KEY", []byte("garbage der"))},
		{"bad PKCS1", "parse PEM block", pemOf("RSA PUBLIC KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x01})},
		{"bad certificate", "parse PEM block", pemOf("CERTIFICATE", []byte{1, 2, 3})},
		{"truncated", "no public key", pkixPEM(t, &ecKey.PublicKey)[:40]},
		{"EC private key", "private key", pemOf("EC PRIVATE KEY", ecPriv)},
		{"PKCS8 private key", "private key", pemOf("PRIVATE KEY", pkcs8)},
		{"RSA private key", "private key", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))},
		{"RSA 1024", "at least 2048", pkixPEM(t, &small.PublicKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := ParsePublicKeyPEM(tt.pem)
			if err == nil {
				t.Fatalf("got key %T, want error", key)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "auth: ") {
				t.Fatalf("error %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckPublicKey(t *testing.T) {
	t.Parallel()
	edPub := mustEd25519(t).Public().(ed25519.PublicKey)
	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)}
	p224 := mustECDSA(t, elliptic.P224())
	bad := []crypto.PublicKey{
		nil,
		(*rsa.PublicKey)(nil),
		&rsa.PublicKey{N: rsaKeyOnce().N, E: 2},
		offCurve,
		&p224.PublicKey,
		ed25519.PublicKey(edPub[:31]),
		[]byte("a secret is not a public key"),
		"string",
	}
	for i, k := range bad {
		if _, err := checkPublicKey(k); err == nil {
			t.Errorf("%d: %T accepted", i, k)
		}
	}
	got, err := checkPublicKey(&edPub)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(ed25519.PublicKey); !ok {
		t.Fatalf("*ed25519.PublicKey normalised to %T", got)
	}
}
