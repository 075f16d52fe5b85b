package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the Store on MongoDB (or the embedded FerretDB): the users and lock releases
// here, and the capability packages' own stores (sessions, signing keys, API keys, second
// factors) embedded, one set of collections each. It uses no transactions and no TTL indexes,
// and every expiry is checked by the reader; every atomic step is an insert with a unique _id
// (FerretDB v1 runs an update as a read and a whole-document replace).
type MongoStore struct {
	*sessions
	*signingKeys
	*apiKeys
	*factors
	users    *mongo.Collection
	names    *mongo.Collection       // one document per email and username: finding a user by either is one _id look-up (names.go)
	dir      *mongox.Chain[dirChunk] // each organization's users in pages (directory.go)
	dirTails *mongo.Collection       // a recent last chunk of each organization's directory
	// byIDs: the server filters only an _id equality itself (FerretDB v1), so GetUsers reads
	// each user by its _id rather than with $in, which it would answer by scanning every user.
	byIDs    bool
	releases *mongo.Collection // one document per user unlocked out of process
}

// The capability packages' stores, under names of their own so that all four can be embedded.
type (
	sessions    = session.MongoStore
	signingKeys = token.MongoStore
	apiKeys     = apikey.MongoStore
	factors     = mfa.MongoStore
)

// lockRelease is the record of an out-of-process unlock; its _id is the user id.
type lockRelease struct {
	UserID string    `bson:"_id"`
	At     time.Time `bson:"at"`
}

var _ Store = (*MongoStore)(nil)

// NewMongoStore returns a store on db, creating its indexes (idempotently).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{
		signingKeys: token.NewMongoStore(db),
		users:       db.Collection("users"),
		names:       db.Collection("user_names"),
		dir:         mongox.NewChain[dirChunk](db.Collection("user_directory"), db.Collection("user_directory_heads"), "user directory", dirKeep),
		dirTails:    db.Collection("user_directory_tails"),
		releases:    db.Collection("lockout_releases"),
	}
	var err error
	if s.sessions, err = session.NewMongoStore(ctx, db); err != nil {
		return nil, err
	}
	if s.apiKeys, err = apikey.NewMongoStore(ctx, db); err != nil {
		return nil, err
	}
	if s.factors, err = mfa.NewMongoStore(ctx, db); err != nil {
		return nil, err
	}
	if err := mongox.CreateIndexes(ctx, []mongox.Index{
		{Coll: s.users, Name: "email_unique", Keys: bson.D{{Key: "email", Value: 1}}, Unique: true},
		// Sparse: users without a username do not collide on a missing field.
		{Coll: s.users, Name: "username_unique", Keys: bson.D{{Key: "username", Value: 1}}, Unique: true, Sparse: true},
		// Not for queries (releases are read by _id): it makes the collection exist from the
		// start. The CLI writes releases through an embedded FerretDB of its own, and a running
		// server's FerretDB never sees a collection another process created after it started.
		{Coll: s.releases, Name: "at", Keys: bson.D{{Key: "at", Value: 1}}},
		{Coll: s.names, Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}}},
		// Like the releases' index: the directory's collections exist from the start.
		{Coll: s.dir.Versions(), Name: "org_id", Keys: bson.D{{Key: "org_id", Value: 1}}},
		{Coll: s.dir.Heads(), Name: "org_id", Keys: bson.D{{Key: "org_id", Value: 1}}},
		{Coll: s.dirTails, Name: "chunk", Keys: bson.D{{Key: "chunk", Value: 1}}},
	}); err != nil {
		return nil, err
	}
	if err := s.backfill(ctx); err != nil {
		return nil, err
	}
	if err := s.dirBackfill(ctx); err != nil {
		return nil, err
	}
	s.byIDs = mongox.PushesDownOnlyIDs(ctx, db)
	return s, nil
}

func insertErr(err error, what string) error { return mongox.InsertErr(err, what, ErrAlreadyExists) }

func findOne[T any](ctx context.Context, c *mongo.Collection, filter any, what string) (T, error) {
	return mongox.FindOne[T](ctx, c, filter, what, ErrNotFound)
}

// CreateUser inserts u with its name records (names.go) and its directory entry
// (directory.go); a taken email or username is ErrAlreadyExists.
func (s *MongoStore) CreateUser(ctx context.Context, u User) error {
	own := names(u.Email, u.Username)
	if err := s.claim(ctx, u.ID, u.CreatedAt, own...); err != nil {
		return err
	}
	chunk, err := s.dirAdd(ctx, u)
	if err != nil {
		s.release(ctx, u.ID, own...)
		return err
	}
	u.DirChunk = chunk
	if _, err := s.users.InsertOne(ctx, u); err != nil {
		if !mongo.IsDuplicateKeyError(err) {
			s.undoInsert(ctx, u)
		}
		_ = s.dirEdit(ctx, u, func(*dirEntry) bool { return true })
		s.release(ctx, u.ID, own...)
		return insertErr(err, "user")
	}
	s.dirSettle(ctx, u)
	return nil
}

// undoInsert removes u's document after an insert that failed other than as a duplicate: the
// server may have applied it and the answer been lost (a connection cut mid-reply), which would
// leave an account the caller was told does not exist. The delete is retried (the store is
// usually what failed) until the server takes it or undoTimeout passes (undoTimeout), and matches this very
// insert (id, email and creation time), never another writer's document of the same id.
func (s *MongoStore) undoInsert(ctx context.Context, u User) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	mine := bson.D{{Key: "_id", Value: u.ID}, {Key: "email", Value: u.Email}, {Key: "created_at", Value: u.CreatedAt}}
	for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
		if _, err := s.users.DeleteOne(ctx, mine); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			return // the caller's error stands; a left-over has no name records (released below) and no roles
		case <-time.After(backoff):
		}
	}
}

// GetUser finds a user by id.
func (s *MongoStore) GetUser(ctx context.Context, id string) (User, error) {
	return findOne[User](ctx, s.users, bson.D{{Key: "_id", Value: id}}, "user")
}

// GetUsers returns the users of ids that exist: one $in, or where the server would scan for it
// (FerretDB v1), one _id look-up per user, a few at a time (mongox.FindByIDs).
func (s *MongoStore) GetUsers(ctx context.Context, ids []string) ([]User, error) {
	return mongox.FindByIDs[User](ctx, s.users, ids, s.byIDs, "users")
}

// DeleteUser removes a user by id, then its directory entry and name records.
func (s *MongoStore) DeleteUser(ctx context.Context, id string) error {
	u, err := s.GetUser(ctx, id)
	if err != nil {
		return err
	}
	if err := s.dirEdit(ctx, u, markPending); err != nil {
		return err
	}
	res, err := s.users.DeleteOne(ctx, mongox.ByID(id))
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	_ = s.dirEdit(ctx, u, func(*dirEntry) bool { return true }) // best effort: a pending entry of a user who is gone is not shown
	s.release(ctx, id, names(u.Email, u.Username)...)
	return nil
}

// GetUserByEmail finds a user by normalized email: two _id look-ups (names.go).
func (s *MongoStore) GetUserByEmail(ctx context.Context, email string) (User, error) {
	return s.byName(ctx, emailName(email))
}

// GetUserByUsername finds a user by normalized username: two _id look-ups (names.go).
func (s *MongoStore) GetUserByUsername(ctx context.Context, username string) (User, error) {
	return s.byName(ctx, usernameName(username))
}

// AnyUsers reads one user, with no filter: the one query FerretDB v1 limits in the database.
func (s *MongoStore) AnyUsers(ctx context.Context) (bool, error) {
	_, err := findOne[bson.Raw](ctx, s.users, bson.D{}, "user")
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// UpdateUser $sets the changed fields of a user. A new email or username gets its name record
// first and the old one loses its record after the update (names.go); the unique indexes on
// email and username are what refuse a taken one. MongoDB says so with a duplicate-key error;
// FerretDB v1 (SQLite) answers an update that breaks a unique index with an InternalError
// instead (an insert gets the proper duplicate-key error), so on any failed write the new email
// and username are looked up: if another user holds one of them, the answer is
// ErrAlreadyExists.
func (s *MongoStore) UpdateUser(ctx context.Context, id string, ch UserChange) error {
	set := bson.D{{Key: "updated_at", Value: ch.UpdatedAt}}
	var claimed, replaced []string
	listed := ch.Email != nil || ch.Username != nil || ch.Disabled != nil
	var cur User
	if listed {
		var err error
		if cur, err = s.GetUser(ctx, id); err != nil {
			return err
		}
		// The directory's copy is not believed while the user changes (directory.go).
		if err := s.dirEdit(ctx, cur, markPending); err != nil {
			return err
		}
		defer func() { s.dirSettleFrom(ctx, cur) }()
	}
	if ch.Email != nil || ch.Username != nil {
		if ch.Email != nil && *ch.Email != cur.Email {
			claimed, replaced = append(claimed, emailName(*ch.Email)), append(replaced, emailName(cur.Email))
		}
		if ch.Username != nil && *ch.Username != cur.Username {
			if *ch.Username != "" {
				claimed = append(claimed, usernameName(*ch.Username))
			}
			if cur.Username != "" {
				replaced = append(replaced, usernameName(cur.Username))
			}
		}
		if err := s.claim(ctx, id, ch.UpdatedAt, claimed...); err != nil {
			return fmt.Errorf("update user %s: %w", id, err)
		}
	}
	if ch.Email != nil {
		set = append(set, bson.E{Key: "email", Value: *ch.Email})
	}
	if ch.Username != nil {
		set = append(set, bson.E{Key: "username", Value: *ch.Username})
	}
	if ch.Disabled != nil {
		set = append(set, bson.E{Key: "disabled", Value: *ch.Disabled})
	}
	if ch.PasswordHash != nil {
		set = append(set, bson.E{Key: "password_hash", Value: ch.PasswordHash})
	}
	res, err := s.users.UpdateOne(ctx, mongox.ByID(id), bson.D{{Key: "$set", Value: set}})
	if err != nil {
		s.release(ctx, id, claimed...)
		if mongo.IsDuplicateKeyError(err) || s.takenByAnother(ctx, id, ch) {
			return fmt.Errorf("update user %s: %w", id, ErrAlreadyExists)
		}
		return fmt.Errorf("update user: %w", err)
	}
	if res.MatchedCount == 0 {
		s.release(ctx, id, claimed...)
		return fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	s.release(ctx, id, replaced...)
	return nil
}

// takenByAnother reports whether the email or username ch sets belongs to a user other than id.
// It reads the users themselves (a scan on FerretDB: only after a failed write), so that a user
// whose name record went missing still counts.
func (s *MongoStore) takenByAnother(ctx context.Context, id string, ch UserChange) bool {
	for _, f := range []struct {
		key string
		v   *string
	}{{"email", ch.Email}, {"username", ch.Username}} {
		if f.v == nil || *f.v == "" {
			continue
		}
		if u, err := findOne[User](ctx, s.users, bson.D{{Key: f.key, Value: *f.v}}, "user"); err == nil && u.ID != id {
			return true
		}
	}
	return false
}

// EraseUserRecords deletes a user's sessions, refresh tokens (and spends), API keys (and
// revocations), second factor, TOTP steps, recovery-code spends and lock release. Each
// package's erase finds its records through the ones that point at them and deletes those
// last: an interrupted erase leaves nothing unreachable, and running it again finishes it.
func (s *MongoStore) EraseUserRecords(ctx context.Context, userID string) error {
	for _, erase := range []func(context.Context, string) error{
		s.sessions.EraseUser, s.apiKeys.EraseUser, s.factors.EraseUser,
	} {
		if err := erase(ctx, userID); err != nil {
			return err
		}
	}
	if _, err := s.releases.DeleteMany(ctx, mongox.ByID(userID)); err != nil {
		return fmt.Errorf("erase lock releases: %w", err)
	}
	return nil
}

// ReleaseLock records an out-of-process unlock of userID.
func (s *MongoStore) ReleaseLock(ctx context.Context, userID string, at time.Time) error {
	_, err := s.releases.ReplaceOne(ctx, bson.D{{Key: "_id", Value: userID}}, lockRelease{UserID: userID, At: at},
		options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("release lock: %w", err)
	}
	return nil
}

// LockReleasedAt is when userID was last unlocked out of process.
func (s *MongoStore) LockReleasedAt(ctx context.Context, userID string) (time.Time, error) {
	r, err := findOne[lockRelease](ctx, s.releases, bson.D{{Key: "_id", Value: userID}}, "lock release")
	return r.At, err
}
