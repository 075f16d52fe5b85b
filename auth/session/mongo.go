package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the Store on MongoDB (or the embedded FerretDB). It uses no transactions and no
// TTL indexes, and every expiry is checked by the reader.
//
// Its atomic steps (spending a refresh token, revoking a session) are inserts with a unique _id,
// never conditional updates: FerretDB v1 runs findAndModify and update as a read followed by a
// whole-document replace by _id, so a filter such as {spent: false} does not make an update
// atomic there (two concurrent spends both win, and a rotation can write back a session that was
// revoked in between). A duplicate-key insert is atomic on every MongoDB-wire server.
//
// A user's sessions are found through the user's set (usersessions.go), never by a filter on
// user_id, which FerretDB v1 answers by scanning every session.
type MongoStore struct {
	sessions    *mongo.Collection
	revocations *mongo.Collection // one document per revoked session: the record of revocation
	refresh     *mongo.Collection
	spends      *mongo.Collection           // one document per spent refresh token: the record of spending
	sets        *mongox.Chain[userSessions] // per user, the ids of its newest MaxPerUser sessions
	// byIDs: the server filters only an _id equality itself (FerretDB v1), so many records are
	// read by one _id look-up each rather than by one $in, which it would answer by a scan.
	byIDs bool
}

// sessionRevocation is the record that a session was revoked; its _id is the session id.
type sessionRevocation struct {
	SessionID string    `bson:"_id"`
	At        time.Time `bson:"revoked_at"`
	Reason    string    `bson:"reason,omitempty"`
}

// refreshSpend is the record that a refresh token was spent; its _id is the token's hash.
type refreshSpend struct {
	Hash    string    `bson:"_id"`
	At      time.Time `bson:"spent_at"`
	Rotated bool      `bson:"rotated"`
}

var _ Store = (*MongoStore)(nil)

// NewMongoStore returns a store on db, creating its indexes (idempotently) and, on a store made
// before the users' sets of sessions existed, the sets (once).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{
		sessions:    db.Collection("sessions"),
		revocations: db.Collection("session_revocations"),
		refresh:     db.Collection("refresh_tokens"),
		spends:      db.Collection("refresh_token_spends"),
		sets:        newUserSets(db),
		byIDs:       mongox.PushesDownOnlyIDs(ctx, db),
	}
	if err := mongox.CreateIndexes(ctx, []mongox.Index{
		{Coll: s.sessions, Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}}},
		{Coll: s.revocations, Name: "revoked_at", Keys: bson.D{{Key: "revoked_at", Value: 1}}},
		{Coll: s.refresh, Name: "session_id", Keys: bson.D{{Key: "session_id", Value: 1}}},
		// For erasing a user (Chain.Erase) on MongoDB; they also make the collections exist
		// from the start, so the embedded store indexes their _id before the first login.
		{Coll: s.sets.Versions(), Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}}},
		{Coll: s.sets.Heads(), Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}}},
	}); err != nil {
		return nil, err
	}
	if err := s.backfill(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func findOne[T any](ctx context.Context, c *mongo.Collection, filter any, what string) (T, error) {
	return mongox.FindOne[T](ctx, c, filter, what, storeerr.ErrNotFound)
}

// GetSession finds a session by id, with its revocation if it has one.
func (s *MongoStore) GetSession(ctx context.Context, id string) (Session, error) {
	sess, err := findOne[Session](ctx, s.sessions, mongox.ByID(id), "session")
	if err != nil {
		return sess, err
	}
	sessions, err := s.withRevocations(ctx, []Session{sess})
	if err != nil {
		return Session{}, err
	}
	return sessions[0], nil
}

// withRevocations sets the revocation fields of sessions from their revocation records, which
// are the only record of revocation.
func (s *MongoStore) withRevocations(ctx context.Context, sessions []Session) ([]Session, error) {
	return mongox.Join(ctx, s.revocations, s.byIDs, sessions, func(sess Session) string { return sess.ID },
		func(sess *Session, r sessionRevocation) {
			sess.Revoked, sess.RevokedAt, sess.RevokeReason = true, r.At, r.Reason
		}, "session revocations")
}

// TouchSession records a rotation on a session that is not revoked. A revocation racing it
// still wins: it lives in its own record, which a touch never writes.
func (s *MongoStore) TouchSession(ctx context.Context, id string, at, expiresAt time.Time) error {
	_, err := findOne[sessionRevocation](ctx, s.revocations, mongox.ByID(id), "session revocation")
	if err == nil {
		return fmt.Errorf("session %s is revoked: %w", id, storeerr.ErrNotFound)
	}
	if !errors.Is(err, storeerr.ErrNotFound) {
		return err
	}
	res, err := s.sessions.UpdateOne(ctx, mongox.ByID(id),
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_used_at", Value: at}, {Key: "expires_at", Value: expiresAt}}}})
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("session %s: %w", id, storeerr.ErrNotFound)
	}
	return nil
}

// RevokeSession revokes a session once: inserting its revocation record is the atomic step, so
// of any number of concurrent calls exactly one reports true.
func (s *MongoStore) RevokeSession(ctx context.Context, id string, at time.Time, reason string) (bool, error) {
	_, err := s.revocations.InsertOne(ctx, sessionRevocation{SessionID: id, At: at, Reason: reason})
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("revoke session: %w", err)
	}
	return true, nil
}

// ListSessionsRevokedSince returns the ids of sessions revoked at or after t.
func (s *MongoStore) ListSessionsRevokedSince(ctx context.Context, t time.Time) ([]string, error) {
	revs, err := mongox.FindAll[sessionRevocation](ctx, s.revocations,
		bson.D{{Key: "revoked_at", Value: bson.D{{Key: "$gte", Value: t}}}}, options.Find(), "revoked sessions")
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(revs))
	for i, r := range revs {
		ids[i] = r.SessionID
	}
	return ids, nil
}

// AddRefreshToken stores a new refresh token (by hash).
func (s *MongoStore) AddRefreshToken(ctx context.Context, t RefreshToken) error {
	_, err := s.refresh.InsertOne(ctx, t)
	return mongox.InsertErr(err, "refresh token", storeerr.ErrAlreadyExists)
}

// SpendRefreshToken spends a token by inserting its spend record: the insert is the atomic
// step, so of any number of concurrent presentations exactly one gets the token back without
// error. The spend record is the only record of it: the token's Spent is read from it.
func (s *MongoStore) SpendRefreshToken(ctx context.Context, hash string, at time.Time) (RefreshToken, error) {
	t, err := findOne[RefreshToken](ctx, s.refresh, mongox.ByID(hash), "refresh token")
	if err != nil {
		return t, err
	}
	_, err = s.spends.InsertOne(ctx, refreshSpend{Hash: hash, At: at})
	if mongo.IsDuplicateKeyError(err) {
		spend, err := findOne[refreshSpend](ctx, s.spends, mongox.ByID(hash), "refresh token spend")
		if err != nil {
			return t, err
		}
		t.Spent, t.SpentAt, t.Rotated = true, spend.At, spend.Rotated
		return t, ErrAlreadySpent
	}
	if err != nil {
		return t, fmt.Errorf("spend refresh token: %w", err)
	}
	return t, nil
}

// CompleteRotation marks a spend as rotated. Only the one spender writes it, so a plain update
// by _id is safe even where updates are not atomic.
func (s *MongoStore) CompleteRotation(ctx context.Context, hash string) error {
	res, err := s.spends.UpdateOne(ctx, mongox.ByID(hash), bson.D{{Key: "$set", Value: bson.D{{Key: "rotated", Value: true}}}})
	if err != nil {
		return fmt.Errorf("complete rotation: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("refresh token spend: %w", storeerr.ErrNotFound)
	}
	return nil
}

// EraseUser deletes a user's sessions and refresh tokens (with their spend records), and the
// user's set of sessions. The session revocation records stay: they hold a session id, a time
// and a reason, and keep the erased sessions' access tokens refused after a restart. Refresh
// tokens are found through the sessions, so the sessions go after them, and the set, which
// only points at sessions, last: an interrupted erase leaves nothing unreachable, and running
// it again finishes it.
func (s *MongoStore) EraseUser(ctx context.Context, userID string) error {
	byUser := bson.D{{Key: "user_id", Value: userID}}
	sessions, err := mongox.FindAll[Session](ctx, s.sessions, byUser, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}), "sessions")
	if err != nil {
		return err
	}
	if len(sessions) > 0 {
		sids := make([]string, len(sessions))
		for i, sess := range sessions {
			sids[i] = sess.ID
		}
		// Every refresh token belongs to a session of its user (by the indexed session_id).
		bySession := bson.D{{Key: "session_id", Value: bson.D{{Key: "$in", Value: sids}}}}
		tokens, err := mongox.FindAll[RefreshToken](ctx, s.refresh, bySession, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}), "refresh tokens")
		if err != nil {
			return err
		}
		if len(tokens) > 0 {
			hashes := make([]string, len(tokens))
			for i, t := range tokens {
				hashes[i] = t.Hash
			}
			if _, err := s.spends.DeleteMany(ctx, mongox.ByIDs(hashes)); err != nil {
				return fmt.Errorf("erase refresh token spends: %w", err)
			}
			if _, err := s.refresh.DeleteMany(ctx, mongox.ByIDs(hashes)); err != nil {
				return fmt.Errorf("erase refresh tokens: %w", err)
			}
		}
	}
	if _, err := s.sessions.DeleteMany(ctx, byUser); err != nil {
		return fmt.Errorf("erase sessions: %w", err)
	}
	return s.sets.Erase(ctx, byUser)
}
