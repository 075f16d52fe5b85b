package token

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the KeyStore on MongoDB (or the embedded FerretDB). Keys are only ever added.
type MongoStore struct {
	keys *mongo.Collection
}

var _ KeyStore = (*MongoStore)(nil)

// NewMongoStore returns a store on db.
func NewMongoStore(db *mongo.Database) *MongoStore {
	return &MongoStore{keys: db.Collection("signing_keys")}
}

// CreateSigningKey stores a signing key.
func (s *MongoStore) CreateSigningKey(ctx context.Context, k SigningKey) error {
	_, err := s.keys.InsertOne(ctx, k)
	return mongox.InsertErr(err, "signing key", storeerr.ErrAlreadyExists)
}

// ListSigningKeys returns all signing keys, oldest first.
func (s *MongoStore) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}})
	return mongox.FindAll[SigningKey](ctx, s.keys, bson.D{}, opts, "signing keys")
}
