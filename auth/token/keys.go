// Package token issues and verifies mcpauth's access tokens: the signing key set (rotation,
// sealing at rest with the master key, JWKS), the JWT codec (RFC 9068 access tokens, every
// header and claim checked, nothing a token says about its own key trusted) and the cache of
// verified tokens that makes a repeated bearer token cost a hash and a look-up.
//
// Revocation is not decided here: a verified token still has to pass the session's
// revocation check (auth), on every call.
package token

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

	"github.com/bduf/mcpauth/internal/random"
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
	id        string
	alg       string
	method    jwt.SigningMethod
	public    crypto.PublicKey
	signer    crypto.Signer
	createdAt time.Time
	// retiredAt is when a newer key of the same algorithm took over signing (zero: still
	// signing). A retired key verifies for one overlap more, then not at all.
	retiredAt time.Time
}

// KeySet is our own set of signing keys. Verification looks a key up only by kid in this set;
// a key named or embedded by a token is never used.
//
// Rotation adds a key; it never edits one. A key's retirement is the creation time of the next
// key of its algorithm, so instances agree on it without a write, and a retired key keeps
// verifying for the overlap (at least one access-token lifetime) so tokens signed just before a
// rotation stay valid until they expire.
type KeySet struct {
	store  KeyStore
	sealer *Sealer
	alg    string

	mu         sync.RWMutex
	byID       map[string]*loadedKey
	current    *loadedKey
	overlap    time.Duration
	nextReload time.Time
}

// DefaultKeyOverlap is how long a retired key still verifies unless the service sets the
// overlap to its access-token lifetime.
const DefaultKeyOverlap = 24 * time.Hour

// reloadEvery bounds how often an unknown kid makes the set re-read the store (another instance
// may have rotated): a flood of forged kids costs at most one read per interval.
const reloadEvery = 10 * time.Second

// LoadKeySet loads the persisted keys, generating and persisting a first key of alg when the
// store has none of that algorithm. The newest key of alg signs; the others verify until their
// overlap ends.
func LoadKeySet(ctx context.Context, store KeyStore, sealer *Sealer, alg string, now time.Time) (*KeySet, error) {
	if methodFor(alg) == nil {
		return nil, fmt.Errorf("unsupported signing algorithm %q (supported: %v)", alg, SupportedAlgs)
	}
	ks := &KeySet{store: store, sealer: sealer, alg: alg, overlap: DefaultKeyOverlap, byID: map[string]*loadedKey{}}
	if err := ks.load(ctx); err != nil {
		return nil, err
	}
	if ks.current == nil {
		if _, err := ks.Rotate(ctx, now); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

// load (re)reads every key from the store and recomputes retirements.
func (ks *KeySet) load(ctx context.Context) error {
	stored, err := ks.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("load signing keys: %w", err)
	}
	byID := make(map[string]*loadedKey, len(stored))
	latest := map[string]*loadedKey{} // newest so far per algorithm; stored is oldest first
	var current *loadedKey
	for _, sk := range stored {
		k, err := openKey(ks.sealer, sk)
		if err != nil {
			return err
		}
		if prev := latest[k.alg]; prev != nil {
			prev.retiredAt = k.createdAt
		}
		latest[k.alg] = k
		byID[k.id] = k
		if k.alg == ks.alg {
			current = k
		}
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.byID, ks.current = byID, current
	return nil
}

// Rotate generates a new key of the set's algorithm, persists it and makes it the signing key.
// The previous key verifies for the overlap more. It returns the new key's id.
func (ks *KeySet) Rotate(ctx context.Context, now time.Time) (string, error) {
	// Keys are ordered by creation time (as stored: milliseconds); a new key must sort after the
	// one it replaces, or instances loading the store would disagree on which one signs.
	now = now.UTC().Truncate(time.Millisecond)
	if cur := ks.signingKey(); cur != nil && !now.After(cur.createdAt) {
		now = cur.createdAt.Add(time.Millisecond)
	}
	sk, k, err := generateKey(ks.sealer, ks.alg, now)
	if err != nil {
		return "", err
	}
	if err := ks.store.CreateSigningKey(ctx, sk); err != nil {
		return "", fmt.Errorf("persist signing key: %w", err)
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.current != nil {
		ks.current.retiredAt = k.createdAt
	}
	ks.byID[k.id] = k
	ks.current = k
	return k.id, nil
}

// setOverlap sets how long retired keys keep verifying (the codec sets it to its access
// tokens' lifetime and the clock skew).
func (ks *KeySet) setOverlap(d time.Duration) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.overlap = d
}

// usable reports whether k may verify at now.
func (ks *KeySet) usable(k *loadedKey, now time.Time) bool {
	return k.retiredAt.IsZero() || now.Before(k.retiredAt.Add(ks.overlap))
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
	id := "k_" + random.String(12)
	sk := SigningKey{ID: id, Alg: alg, PublicDER: pub, PrivateSealed: sealer.Seal(id, priv), CreatedAt: now}
	return sk, &loadedKey{id: id, alg: alg, method: methodFor(alg), public: signer.Public(), signer: signer, createdAt: now}, nil
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
	return &loadedKey{id: sk.ID, alg: sk.Alg, method: method, public: signer.Public(), signer: signer, createdAt: sk.CreatedAt}, nil
}

// lookup returns the verification key for kid if it is ours and still usable at now. An
// unknown kid re-reads the store (at most once per reloadEvery): another instance may have
// rotated.
func (ks *KeySet) lookup(ctx context.Context, kid string, now time.Time) (*loadedKey, bool) {
	ks.mu.RLock()
	k, ok := ks.byID[kid]
	reload := !ok && now.After(ks.nextReload)
	ks.mu.RUnlock()
	if reload {
		ks.mu.Lock()
		reload = now.After(ks.nextReload) // one reloader per interval
		ks.nextReload = now.Add(reloadEvery)
		ks.mu.Unlock()
		if reload && ks.load(ctx) == nil {
			ks.mu.RLock()
			k, ok = ks.byID[kid]
			ks.mu.RUnlock()
		}
	}
	if !ok {
		return nil, false
	}
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return k, ks.usable(k, now)
}

// stillUsable reports whether k, which verified a token earlier, still verifies at now.
func (ks *KeySet) stillUsable(k *loadedKey, now time.Time) bool {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.usable(k, now)
}

func (ks *KeySet) signingKey() *loadedKey {
	ks.mu.RLock()
	defer ks.mu.RUnlock()
	return ks.current
}

// algs lists the algorithms of the keys in the set: the only ones the parser accepts.
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
	now := time.Now()
	for _, k := range ks.byID {
		if !ks.usable(k, now) {
			continue // past its overlap: no token signed by it verifies any more
		}
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
