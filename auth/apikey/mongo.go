package apikey

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the Store on MongoDB (or the embedded FerretDB). A revocation is an insert of
// its own record with the key's id as _id: atomic everywhere, and never undone by a concurrent
// touch (FerretDB v1 runs an update as a read and a whole-document replace). A user's keys are
// found through the user's key set (sets_mongo.go), never by a filter on user_id, which
// FerretDB answers by scanning every key.
type MongoStore struct {
	keys    *mongo.Collection
	revoked *mongo.Collection // one document per revoked key: the record of revocation
	sets    *mongox.Chain[keySet]
	// byIDs: the server filters only an _id equality itself (FerretDB v1), so many keys or
	// revocations are read one _id look-up each rather than with $in, which it would scan for.
	byIDs bool
}

// revocation is the record that a key was revoked; its _id is the key id.
type revocation struct {
	KeyID string    `bson:"_id"`
	At    time.Time `bson:"revoked_at"`
}

var _ Store = (*MongoStore)(nil)

// NewMongoStore returns a store on db, creating its indexes (idempotently).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{keys: db.Collection("api_keys"), revoked: db.Collection("api_key_revocations"),
		sets: mongox.NewChain[keySet](db.Collection("api_key_sets"), db.Collection("api_key_set_heads"), "api key set", setVersionsKept)}
	// The user_id indexes serve EraseUser only (on MongoDB; FerretDB scans for it either way).
	if err := mongox.CreateIndexes(ctx, []mongox.Index{
		{Coll: s.keys, Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}}},
		{Coll: s.sets.Versions(), Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}}},
		{Coll: s.sets.Heads(), Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}}},
	}); err != nil {
		return nil, err
	}
	if err := s.backfill(ctx); err != nil {
		return nil, err
	}
	s.byIDs = mongox.PushesDownOnlyIDs(ctx, db)
	return s, nil
}

// CreateAPIKey stores a key (by the hash of its secret): first its entry in its user's set,
// where the cap is checked, then its record (why in that order: sets_mongo.go).
func (s *MongoStore) CreateAPIKey(ctx context.Context, k Key) error {
	added, err := s.enter(ctx, k)
	if err != nil {
		return err
	}
	_, err = s.keys.InsertOne(ctx, k)
	if err != nil && added {
		s.leave(context.WithoutCancel(ctx), k.UserID, k.ID)
	}
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

// ListAPIKeys returns a user's keys, oldest first: the keys of the user's set, each read by
// _id, with their revocations (two look-ups for the set, then two per key on FerretDB, or two
// $in on MongoDB). An entry without a record of the user's is skipped: an interrupted create.
func (s *MongoStore) ListAPIKeys(ctx context.Context, userID string) ([]Key, error) {
	set, err := s.sets.Latest(ctx, setKey(userID))
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(set.Body.Keys))
	for i, e := range set.Body.Keys {
		ids[i] = e.ID
	}
	found, err := mongox.FindByIDs[Key](ctx, s.keys, ids, s.byIDs, "api keys")
	if err != nil {
		return nil, err
	}
	keys := found[:0]
	for _, k := range found {
		if k.UserID == userID {
			keys = append(keys, k)
		}
	}
	// The set is in the order its creates were written; listings are by creation time.
	slices.SortStableFunc(keys, func(a, b Key) int {
		return compareEntries(setEntry{ID: a.ID, CreatedAt: a.CreatedAt}, setEntry{ID: b.ID, CreatedAt: b.CreatedAt})
	})
	return s.withRevocations(ctx, keys)
}

// withRevocations sets the revocation fields of keys from their revocation records, which are
// the only record of revocation.
func (s *MongoStore) withRevocations(ctx context.Context, keys []Key) ([]Key, error) {
	return mongox.Join(ctx, s.revoked, s.byIDs, keys, func(k Key) string { return k.ID },
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

// EraseUser deletes a user's keys, their revocation records and the user's key set. The
// revocations are found through the keys, so the keys go after them, and the set last (an
// entry without its key is skipped): an interrupted erase leaves nothing unreachable, and
// running it again finishes it. The keys are found by user_id, not through the set, which no
// longer lists the oldest revoked or expired ones.
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
	return s.sets.Erase(ctx, byUser)
}
