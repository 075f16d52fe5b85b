package federation

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the Store on MongoDB (or the embedded FerretDB): links by _id only, the one
// filter FerretDB v1 answers without a scan, and made by unique insert, the one atomic step
// every MongoDB-wire server has.
type MongoStore struct {
	links  *mongo.Collection
	grants *mongo.Collection // _id: grantsID(connector, user)
}

// grantsDoc is what one connector's rules gave one user.
type grantsDoc struct {
	ID    string    `bson:"_id"`
	Roles []OrgRole `bson:"roles"`
}

func grantsID(connectorID, userID string) string { return connectorID + "\x00" + userID }

var (
	_ Store      = (*MongoStore)(nil)
	_ GrantStore = (*MongoStore)(nil)
)

// NewMongoStore returns a store on db, creating its collection (idempotently: the embedded
// store indexes the _id of the collections that exist).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{links: db.Collection("external_identities"), grants: db.Collection("sso_role_grants")}
	if err := mongox.CreateCollections(ctx, db, s.links.Name(), s.grants.Name()); err != nil {
		return nil, err
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

// GetGrants reads what a connector gave a user (none: empty).
func (s *MongoStore) GetGrants(ctx context.Context, connectorID, userID string) ([]OrgRole, error) {
	d, err := mongox.FindOne[grantsDoc](ctx, s.grants, mongox.ByID(grantsID(connectorID, userID)), "sso role grants", storeerr.ErrNotFound)
	if errors.Is(err, storeerr.ErrNotFound) {
		return []OrgRole{}, nil
	}
	return d.Roles, err
}

// PutGrants replaces what a connector gave a user (a whole-document upsert: one sign-in of a
// user at a time writes it; the last one wins).
func (s *MongoStore) PutGrants(ctx context.Context, connectorID, userID string, roles []OrgRole) error {
	id := grantsID(connectorID, userID)
	return mongox.ReplaceByID(ctx, s.grants, id, grantsDoc{ID: id, Roles: roles}, "sso role grants")
}
