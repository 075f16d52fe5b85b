package apikey

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the Store on MongoDB (or the embedded FerretDB). A revocation is an insert of
// its own record with the key's id as _id: atomic everywhere, and never undone by a concurrent
// touch (FerretDB v1 runs an update as a read and a whole-document replace).
type MongoStore struct {
	keys    *mongo.Collection
	revoked *mongo.Collection // one document per revoked key: the record of revocation
}

// revocation is the record that a key was revoked; its _id is the key id.
type revocation struct {
	KeyID string    `bson:"_id"`
	At    time.Time `bson:"revoked_at"`
}

var _ Store = (*MongoStore)(nil)

// NewMongoStore returns a store on db, creating its indexes (idempotently).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{keys: db.Collection("api_keys"), revoked: db.Collection("api_key_revocations")}
	if err := mongox.CreateIndexes(ctx, []mongox.Index{
		{Coll: s.keys, Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}}},
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// CreateAPIKey stores a key (by the hash of its secret).
func (s *MongoStore) CreateAPIKey(ctx context.Context, k Key) error {
	_, err := s.keys.InsertOne(ctx, k)
	return mongox.InsertErr(err, "api key", storeerr.ErrAlreadyExists)
}

// GetAPIKey finds a key by id, with its revocation.
func (s *MongoStore) GetAPIKey(ctx context.Context, id string) (Key, error) {
	k, err := mongox.FindOne[Key](ctx, s.keys, mongox.ByID(id), "api key", storeerr.ErrNotFound)
	if err != nil {
		return k, err
	}
	keys, err := s.withRevocations(ctx, []Key{k})
	if err != nil {
		return Key{}, err
	}
	return keys[0], nil
}

// ListAPIKeys returns a user's keys, oldest first.
func (s *MongoStore) ListAPIKeys(ctx context.Context, userID string) ([]Key, error) {
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}})
	keys, err := mongox.FindAll[Key](ctx, s.keys, bson.D{{Key: "user_id", Value: userID}}, opts, "api keys")
	if err != nil {
		return nil, err
	}
	return s.withRevocations(ctx, keys)
}

// withRevocations sets the revocation fields of keys from their revocation records, which are
// the only record of revocation.
func (s *MongoStore) withRevocations(ctx context.Context, keys []Key) ([]Key, error) {
	// By $in as before: these keys are found by a filter on user_id, a scan on FerretDB anyway.
	return mongox.Join(ctx, s.revoked, false, keys, func(k Key) string { return k.ID },
		func(k *Key, r revocation) { k.Revoked, k.RevokedAt = true, r.At }, "api key revocations")
}

// RevokeAPIKey inserts the key's revocation record: atomic, and never undone by a touch.
func (s *MongoStore) RevokeAPIKey(ctx context.Context, id string, at time.Time) (bool, error) {
	_, err := s.revoked.InsertOne(ctx, revocation{KeyID: id, At: at})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("revoke api key: %w", err)
	}
	return true, nil
}

// TouchAPIKey sets the key's last use.
func (s *MongoStore) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.keys.UpdateOne(ctx, mongox.ByID(id), bson.D{{Key: "$set", Value: bson.D{{Key: "last_used_at", Value: at}}}})
	if err != nil {
		return fmt.Errorf("touch api key: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("api key %s: %w", id, storeerr.ErrNotFound)
	}
	return nil
}

// EraseUser deletes a user's keys and their revocation records. The revocations are found
// through the keys, so the keys go last: an interrupted erase leaves nothing unreachable, and
// running it again finishes it.
func (s *MongoStore) EraseUser(ctx context.Context, userID string) error {
	byUser := bson.D{{Key: "user_id", Value: userID}}
	keys, err := mongox.FindAll[Key](ctx, s.keys, byUser, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}), "api keys")
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID
		}
		if _, err := s.revoked.DeleteMany(ctx, mongox.ByIDs(ids)); err != nil {
			return fmt.Errorf("erase api key revocations: %w", err)
		}
	}
	if _, err := s.keys.DeleteMany(ctx, byUser); err != nil {
		return fmt.Errorf("erase api keys: %w", err)
	}
	return nil
}
