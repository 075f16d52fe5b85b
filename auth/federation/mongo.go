package federation

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the Store on MongoDB (or the embedded FerretDB): links by _id only, the one
// filter FerretDB v1 answers without a scan, and made by unique insert, the one atomic step
// every MongoDB-wire server has.
type MongoStore struct {
	links *mongo.Collection
}

var _ Store = (*MongoStore)(nil)

// NewMongoStore returns a store on db, creating its collection (idempotently: the embedded
// store indexes the _id of the collections that exist).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{links: db.Collection("external_identities")}
	err := db.CreateCollection(ctx, s.links.Name())
	var se mongo.ServerError
	if err != nil && !(errors.As(err, &se) && se.HasErrorCode(48)) { // 48: the collection exists
		return nil, fmt.Errorf("create collection %s: %w", s.links.Name(), err)
	}
	return s, nil
}

// CreateLink inserts the link under LinkID: a second link of one identity is a duplicate key.
func (s *MongoStore) CreateLink(ctx context.Context, l Link) error {
	l.ID = LinkID(l.Issuer, l.Subject)
	_, err := s.links.InsertOne(ctx, l)
	return mongox.InsertErr(err, "external identity", storeerr.ErrAlreadyExists)
}

// GetLink finds the link of an identity.
func (s *MongoStore) GetLink(ctx context.Context, issuer, subject string) (Link, error) {
	return mongox.FindOne[Link](ctx, s.links, mongox.ByID(LinkID(issuer, subject)), "external identity", storeerr.ErrNotFound)
}

// DeleteLink removes the link of an identity.
func (s *MongoStore) DeleteLink(ctx context.Context, issuer, subject string) error {
	return mongox.DeleteByID(ctx, s.links, LinkID(issuer, subject), "external identity", storeerr.ErrNotFound)
}
