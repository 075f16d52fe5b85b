package federation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Link ties an external identity (issuer, subject) to a local account. One identity links to
// one account; its record's _id is derived from the identity, so the first link made wins
// wherever two are made at once (two first logins of one person make one account).
type Link struct {
	ID          string    `bson:"_id"` // LinkID(Issuer, Subject)
	Issuer      string    `bson:"issuer"`
	Subject     string    `bson:"subject"`
	ConnectorID string    `bson:"connector_id"`
	UserID      string    `bson:"user_id"`
	CreatedAt   time.Time `bson:"created_at"`
}

// LinkID is the record id of an identity: the SHA-256 of issuer and subject, NUL-separated (a
// subject is any string up to 255 characters; the hash keeps the id short and unambiguous).
func LinkID(issuer, subject string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + subject))
	return "ext_" + hex.EncodeToString(sum[:])
}

// Store keeps links. Implementations answer storeerr.ErrNotFound and storeerr.ErrAlreadyExists
// (wrapped with %w).
type Store interface {
	// CreateLink stores a link: a unique insert, ErrAlreadyExists when the identity is
	// linked already (the stored link stays).
	CreateLink(ctx context.Context, l Link) error
	GetLink(ctx context.Context, issuer, subject string) (Link, error)
	DeleteLink(ctx context.Context, issuer, subject string) error
}
