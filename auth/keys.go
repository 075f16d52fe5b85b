package auth

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Supported signing algorithms. EdDSA (Ed25519) is the default: small keys, fast, no nonce
// pitfalls.
const (
	AlgEdDSA = "EdDSA"
	AlgES256 = "ES256"
	AlgRS256 = "RS256"
)

// SupportedAlgs lists the algorithms a key can be generated for.
var SupportedAlgs = []string{AlgEdDSA, AlgES256, AlgRS256}

// MasterKeySize is the size of the key that seals signing keys (AES-256-GCM).
const MasterKeySize = 32

// Sealer encrypts key material at rest with the master key (AES-256-GCM, the record's id as
// associated data so a sealed blob cannot be moved to another record).
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a sealer for a 32-byte master key.
func NewSealer(masterKey []byte) (*Sealer, error) {
	if len(masterKey) != MasterKeySize {
		return nil, fmt.Errorf("master key must be %d bytes, got %d", MasterKeySize, len(masterKey))
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext bound to id.
func (s *Sealer) Seal(id string, plaintext []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, []byte("mcpauth:"+id))
}

// Open decrypts a sealed blob bound to id.
func (s *Sealer) Open(id string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sealed data too short")
	}
	pt, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte("mcpauth:"+id))
	if err != nil {
		return nil, fmt.Errorf("unseal %s (wrong master key?): %w", id, err)
	}
	return pt, nil
}

type loadedKey struct {
	id     string
	alg    string
	method jwt.SigningMethod
	public crypto.PublicKey
	signer crypto.Signer
}

// KeySet is our own set of signing keys. Verification looks a key up only by kid in this set;
// a key named or embedded by a token is never used.
type KeySet struct {
	mu      sync.RWMutex
	byID    map[string]*loadedKey
	current *loadedKey
}

// LoadKeySet loads the persisted keys, generating and persisting a first key of alg when the
// store has none of that algorithm. The newest key of alg signs; all keys verify.
func LoadKeySet(ctx context.Context, store KeyStore, sealer *Sealer, alg string, now time.Time) (*KeySet, error) {
	if methodFor(alg) == nil {
		return nil, fmt.Errorf("unsupported signing algorithm %q (supported: %v)", alg, SupportedAlgs)
	}
	stored, err := store.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	ks := &KeySet{byID: make(map[string]*loadedKey, len(stored)+1)}
	for _, sk := range stored {
		k, err := openKey(sealer, sk)
		if err != nil {
			return nil, err
		}
		ks.byID[k.id] = k
		if k.alg == alg {
			ks.current = k // stored oldest first: the last one wins
		}
	}
	if ks.current == nil {
		sk, k, err := generateKey(sealer, alg, now)
		if err != nil {
			return nil, err
		}
		if err := store.CreateSigningKey(ctx, sk); err != nil {
			return nil, fmt.Errorf("persist signing key: %w", err)
		}
		ks.byID[k.id] = k
		ks.current = k
	}
	return ks, nil
}

func methodFor(alg string) jwt.SigningMethod {
	switch alg {
	case AlgEdDSA:
		return jwt.SigningMethodEdDSA
	case AlgES256:
		return jwt.SigningMethodES256
	case AlgRS256:
		return jwt.SigningMethodRS256
	}
	return nil
}

func generateKey(sealer *Sealer, alg string, now time.Time) (SigningKey, *loadedKey, error) {
	var signer crypto.Signer
	var err error
	switch alg {
	case AlgEdDSA:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	case AlgES256:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgRS256:
		signer, err = rsa.GenerateKey(rand.Reader, 3072)
	}
	if err != nil {
		return SigningKey{}, nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(signer)
	if err != nil {
		return SigningKey{}, nil, fmt.Errorf("encode private key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return SigningKey{}, nil, fmt.Errorf("encode public key: %w", err)
	}
	id := "k_" + randomString(12)
	sk := SigningKey{ID: id, Alg: alg, PublicDER: pub, PrivateSealed: sealer.Seal(id, priv), CreatedAt: now}
	return sk, &loadedKey{id: id, alg: alg, method: methodFor(alg), public: signer.Public(), signer: signer}, nil
}

func openKey(sealer *Sealer, sk SigningKey) (*loadedKey, error) {
	method := methodFor(sk.Alg)
	if method == nil {
		return nil, fmt.Errorf("signing key %s: unsupported algorithm %q", sk.ID, sk.Alg)
	}
	der, err := sealer.Open(sk.ID, sk.PrivateSealed)
	if err != nil {
		return nil, err
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", sk.ID, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("signing key %s: not a signer", sk.ID)
	}
	return &loadedKey{id: sk.ID, alg: sk.Alg, method: method, public: signer.Public(), signer: signer}, nil
}

// lookup returns the verification key for kid, if it is ours.
func (ks *KeySet) lookup(kid string) (*loadedKey, bool) {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	k, ok := ks.byID[kid]
	return k, ok
}

func (ks *KeySet) signingKey() *loadedKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.current
}

// algs lists the algorithms of the keys in the set: the only ones the parser accepts.
func (ks *KeySet) algs() []string {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	seen := map[string]bool{}
	var out []string
	for _, k := range ks.byID {
		if !seen[k.alg] {
			seen[k.alg] = true
			out = append(out, k.alg)
		}
	}
	return out
}

// JWK is one public key in JWKS form (RFC 7517).
type JWK struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

// JWKS is the published key set document.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// JWKS returns the public keys for /.well-known/jwks.json.
func (ks *KeySet) JWKS() JWKS {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	out := JWKS{Keys: []JWK{}}
	b64 := base64.RawURLEncoding.EncodeToString
	for _, k := range ks.byID {
		j := JWK{Use: "sig", Alg: k.alg, Kid: k.id}
		switch pub := k.public.(type) {
		case ed25519.PublicKey:
			j.Kty, j.Crv, j.X = "OKP", "Ed25519", b64(pub)
		case *ecdsa.PublicKey:
			ecdh, err := pub.ECDH()
			if err != nil {
				continue
			}
			raw := ecdh.Bytes() // 0x04 || X || Y
			size := (len(raw) - 1) / 2
			j.Kty, j.Crv, j.X, j.Y = "EC", "P-256", b64(raw[1:1+size]), b64(raw[1+size:])
		case *rsa.PublicKey:
			j.Kty, j.N, j.E = "RSA", b64(pub.N.Bytes()), b64(big.NewInt(int64(pub.E)).Bytes())
		default:
			continue
		}
		out.Keys = append(out.Keys, j)
	}
	slices.SortFunc(out.Keys, func(a, b JWK) int { return strings.Compare(a.Kid, b.Kid) })
	return out
}
