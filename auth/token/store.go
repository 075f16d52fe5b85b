package token

import (
	"context"
	"time"
)

// KeyStore persists signing keys (private halves encrypted by the caller).
type KeyStore interface {
	CreateSigningKey(ctx context.Context, k SigningKey) error
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
}

// SigningKey is a persisted JWT signing key. PrivateSealed is the private key (PKCS #8)
// encrypted with the master key; PublicDER is PKIX.
type SigningKey struct {
	ID            string    `bson:"_id"`
	Alg           string    `bson:"alg"`
	PublicDER     []byte    `bson:"public_der"`
	PrivateSealed []byte    `bson:"private_sealed"`
	CreatedAt     time.Time `bson:"created_at"`
}
