package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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

// MongoStore is the Store on MongoDB (or the embedded FerretDB). It uses no transactions and no
// TTL indexes, and every expiry is checked by the reader.
//
// Its atomic steps (spending a refresh token, revoking a session) are inserts with a unique _id,
// never conditional updates: FerretDB v1 runs findAndModify and update as a read followed by a
// whole-document replace by _id, so a filter such as {spent: false} does not make an update
// atomic there (two concurrent spends both win, and a rotation can write back a session that was
// revoked in between). A duplicate-key insert is atomic on every MongoDB-wire server.
type MongoStore struct {
	users       *mongo.Collection
	sessions    *mongo.Collection
	revocations *mongo.Collection // one document per revoked session: the record of revocation
	refresh     *mongo.Collection
	spends      *mongo.Collection // one document per spent refresh token: the record of spending
	keys        *mongo.Collection
	apiKeys     *mongo.Collection
	apiRevoked  *mongo.Collection // one document per revoked API key: the record of revocation
	mfa         *mongo.Collection
	totpSteps   *mongo.Collection // one document per accepted TOTP step: replay protection
	recovery    *mongo.Collection // one document per used recovery code
	releases    *mongo.Collection // one document per user unlocked out of process
}

// lockRelease is the record of an out-of-process unlock; its _id is the user id.
type lockRelease struct {
	UserID string    `bson:"_id"`
	At     time.Time `bson:"at"`
}

// totpStep is the claim of one accepted TOTP time step of a user.
type totpStep struct {
	ID     string    `bson:"_id"` // user id + ":" + step
	UserID string    `bson:"user_id"`
	Step   int64     `bson:"step"`
	At     time.Time `bson:"at"`
}

// apiKeyRevocation is the record that an API key was revoked; its _id is the key id.
type apiKeyRevocation struct {
	KeyID string    `bson:"_id"`
	At    time.Time `bson:"revoked_at"`
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

// NewMongoStore returns a store on db, creating its indexes (idempotently).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{
		users:       db.Collection("users"),
		sessions:    db.Collection("sessions"),
		revocations: db.Collection("session_revocations"),
		refresh:     db.Collection("refresh_tokens"),
		spends:      db.Collection("refresh_token_spends"),
		keys:        db.Collection("signing_keys"),
		apiKeys:     db.Collection("api_keys"),
		apiRevoked:  db.Collection("api_key_revocations"),
		mfa:         db.Collection("mfa"),
		totpSteps:   db.Collection("mfa_totp_steps"),
		recovery:    db.Collection("mfa_recovery_spent"),
		releases:    db.Collection("lockout_releases"),
	}
	if err := mongox.CreateIndexes(ctx, []mongox.Index{
		{Coll: s.users, Name: "email_unique", Keys: bson.D{{Key: "email", Value: 1}}, Unique: true},
		// Sparse: users without a username do not collide on a missing field.
		{Coll: s.users, Name: "username_unique", Keys: bson.D{{Key: "username", Value: 1}}, Unique: true, Sparse: true},
		{Coll: s.sessions, Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}}},
		{Coll: s.revocations, Name: "revoked_at", Keys: bson.D{{Key: "revoked_at", Value: 1}}},
		{Coll: s.refresh, Name: "session_id", Keys: bson.D{{Key: "session_id", Value: 1}}},
		{Coll: s.apiKeys, Name: "user_id", Keys: bson.D{{Key: "user_id", Value: 1}}},
		{Coll: s.totpSteps, Name: "user_step", Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "step", Value: -1}}},
		// Not for queries (releases are read by _id): it makes the collection exist from the
		// start. The CLI writes releases through an embedded FerretDB of its own, and a running
		// server's FerretDB never sees a collection another process created after it started.
		{Coll: s.releases, Name: "at", Keys: bson.D{{Key: "at", Value: 1}}},
	}); err != nil {
		return nil, err
	}
	return s, nil
}

func insertErr(err error, what string) error { return mongox.InsertErr(err, what, ErrAlreadyExists) }

func findOne[T any](ctx context.Context, c *mongo.Collection, filter any, what string) (T, error) {
	return mongox.FindOne[T](ctx, c, filter, what, ErrNotFound)
}

// CreateUser inserts u; a taken email or username is ErrAlreadyExists.
func (s *MongoStore) CreateUser(ctx context.Context, u User) error {
	_, err := s.users.InsertOne(ctx, u)
	return insertErr(err, "user")
}

// GetUser finds a user by id.
func (s *MongoStore) GetUser(ctx context.Context, id string) (User, error) {
	return findOne[User](ctx, s.users, bson.D{{Key: "_id", Value: id}}, "user")
}

// GetUsers returns the users of ids that exist.
func (s *MongoStore) GetUsers(ctx context.Context, ids []string) ([]User, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	return mongox.FindAll[User](ctx, s.users, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, options.Find(), "users")
}

// DeleteUser removes a user by id.
func (s *MongoStore) DeleteUser(ctx context.Context, id string) error {
	res, err := s.users.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("delete user: %w", err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	return nil
}

// GetUserByEmail finds a user by normalized email.
func (s *MongoStore) GetUserByEmail(ctx context.Context, email string) (User, error) {
	return findOne[User](ctx, s.users, bson.D{{Key: "email", Value: email}}, "user")
}

// GetUserByUsername finds a user by normalized username.
func (s *MongoStore) GetUserByUsername(ctx context.Context, username string) (User, error) {
	return findOne[User](ctx, s.users, bson.D{{Key: "username", Value: username}}, "user")
}

// ListUsers pages users in id order.
func (s *MongoStore) ListUsers(ctx context.Context, q UserQuery) ([]User, error) {
	filter := bson.D{}
	if q.After != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: q.After}}})
	}
	if q.OrgID != "" {
		filter = append(filter, bson.E{Key: "org_id", Value: q.OrgID})
	}
	if q.Prefix != "" {
		re := bson.Regex{Pattern: "^" + regexp.QuoteMeta(q.Prefix)}
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "email", Value: re}}, bson.D{{Key: "username", Value: re}},
		}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(q.Limit))
	return mongox.FindAll[User](ctx, s.users, filter, opts, "users")
}

// CountUsers counts all users.
func (s *MongoStore) CountUsers(ctx context.Context) (int64, error) {
	n, err := s.users.CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

// UpdateUser $sets the changed fields of a user. The unique indexes on email and username refuse
// a taken one. MongoDB says so with a duplicate-key error; FerretDB v1 (SQLite) answers an
// update that breaks a unique index with an InternalError instead (an insert gets the proper
// duplicate-key error), so on any failed write the new email and username are looked up: if
// another user holds one of them, the answer is ErrAlreadyExists. Either way the index, not the
// look-up, is what keeps them unique.
func (s *MongoStore) UpdateUser(ctx context.Context, id string, ch UserChange) error {
	set := bson.D{{Key: "updated_at", Value: ch.UpdatedAt}}
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
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}})
	if err != nil {
		if mongo.IsDuplicateKeyError(err) || s.takenByAnother(ctx, id, ch) {
			return fmt.Errorf("update user %s: %w", id, ErrAlreadyExists)
		}
		return fmt.Errorf("update user: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("user %s: %w", id, ErrNotFound)
	}
	return nil
}

// takenByAnother reports whether the email or username ch sets belongs to a user other than id.
func (s *MongoStore) takenByAnother(ctx context.Context, id string, ch UserChange) bool {
	for _, f := range []struct {
		key string
		v   *string
	}{{"email", ch.Email}, {"username", ch.Username}} {
		if f.v == nil {
			continue
		}
		if u, err := findOne[User](ctx, s.users, bson.D{{Key: f.key, Value: *f.v}}, "user"); err == nil && u.ID != id {
			return true
		}
	}
	return false
}

// EraseUserRecords deletes a user's sessions, refresh tokens (and spends), API keys (and
// revocations), second factor, TOTP steps and recovery-code spends. Records are found through
// the ones that point at them (refresh tokens through sessions, revocations through keys), so
// those go last: an interrupted erase leaves nothing unreachable, and running it again
// finishes it.
func (s *MongoStore) EraseUserRecords(ctx context.Context, userID string) error {
	byUser := bson.D{{Key: "user_id", Value: userID}}
	sessions, err := mongox.FindAll[session.Session](ctx, s.sessions, byUser, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}), "sessions")
	if err != nil {
		return err
	}
	if len(sessions) > 0 {
		sids := make(bson.A, len(sessions))
		for i, sess := range sessions {
			sids[i] = sess.ID
		}
		// Every refresh token belongs to a session of its user (by the indexed session_id).
		if err := s.eraseRefreshTokens(ctx, bson.D{{Key: "session_id", Value: bson.D{{Key: "$in", Value: sids}}}}); err != nil {
			return err
		}
	}
	keys, err := mongox.FindAll[apikey.Key](ctx, s.apiKeys, byUser, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}), "api keys")
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		kids := make(bson.A, len(keys))
		for i, k := range keys {
			kids[i] = k.ID
		}
		if _, err := s.apiRevoked.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: kids}}}}); err != nil {
			return fmt.Errorf("erase api key revocations: %w", err)
		}
	}
	recoveryIDs := bson.Regex{Pattern: "^" + regexp.QuoteMeta(userID+":")}
	for _, del := range []struct {
		coll   *mongo.Collection
		filter bson.D
		what   string
	}{
		{s.apiKeys, byUser, "api keys"},
		{s.sessions, byUser, "sessions"},
		{s.mfa, bson.D{{Key: "_id", Value: userID}}, "mfa"},
		{s.releases, bson.D{{Key: "_id", Value: userID}}, "lock releases"},
		{s.totpSteps, byUser, "totp steps"},
		{s.recovery, bson.D{{Key: "_id", Value: recoveryIDs}}, "recovery code spends"},
	} {
		if _, err := del.coll.DeleteMany(ctx, del.filter); err != nil {
			return fmt.Errorf("erase %s: %w", del.what, err)
		}
	}
	return nil
}

// eraseRefreshTokens deletes the refresh tokens filter selects, their spend records first.
func (s *MongoStore) eraseRefreshTokens(ctx context.Context, filter bson.D) error {
	tokens, err := mongox.FindAll[session.RefreshToken](ctx, s.refresh, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}), "refresh tokens")
	if err != nil || len(tokens) == 0 {
		return err
	}
	hashes := make(bson.A, len(tokens))
	for i, t := range tokens {
		hashes[i] = t.Hash
	}
	byHash := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: hashes}}}}
	if _, err := s.spends.DeleteMany(ctx, byHash); err != nil {
		return fmt.Errorf("erase refresh token spends: %w", err)
	}
	if _, err := s.refresh.DeleteMany(ctx, byHash); err != nil {
		return fmt.Errorf("erase refresh tokens: %w", err)
	}
	return nil
}

// CreateSession inserts a session.
func (s *MongoStore) CreateSession(ctx context.Context, sess session.Session) error {
	_, err := s.sessions.InsertOne(ctx, sess)
	return insertErr(err, "session")
}

// GetSession finds a session by id, with its revocation if it has one.
func (s *MongoStore) GetSession(ctx context.Context, id string) (session.Session, error) {
	sess, err := findOne[session.Session](ctx, s.sessions, bson.D{{Key: "_id", Value: id}}, "session")
	if err != nil {
		return sess, err
	}
	sessions, err := s.withRevocations(ctx, []session.Session{sess})
	if err != nil {
		return session.Session{}, err
	}
	return sessions[0], nil
}

// ListUserSessions returns all sessions of a user, oldest first.
func (s *MongoStore) ListUserSessions(ctx context.Context, userID string) ([]session.Session, error) {
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}})
	sessions, err := mongox.FindAll[session.Session](ctx, s.sessions, bson.D{{Key: "user_id", Value: userID}}, opts, "sessions")
	if err != nil {
		return nil, err
	}
	return s.withRevocations(ctx, sessions)
}

// withRevocations sets the revocation fields of sessions from their revocation records, which
// are the only record of revocation.
func (s *MongoStore) withRevocations(ctx context.Context, sessions []session.Session) ([]session.Session, error) {
	if len(sessions) == 0 {
		return sessions, nil
	}
	ids := make(bson.A, len(sessions))
	for i, sess := range sessions {
		ids[i] = sess.ID
	}
	revs, err := mongox.FindAll[sessionRevocation](ctx, s.revocations,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, options.Find(), "session revocations")
	if err != nil {
		return nil, err
	}
	byID := make(map[string]sessionRevocation, len(revs))
	for _, r := range revs {
		byID[r.SessionID] = r
	}
	for i, sess := range sessions {
		if r, ok := byID[sess.ID]; ok {
			sessions[i].Revoked, sessions[i].RevokedAt, sessions[i].RevokeReason = true, r.At, r.Reason
		}
	}
	return sessions, nil
}

// TouchSession records a rotation on a session that is not revoked. A revocation racing it
// still wins: it lives in its own record, which a touch never writes.
func (s *MongoStore) TouchSession(ctx context.Context, id string, at, expiresAt time.Time) error {
	_, err := findOne[sessionRevocation](ctx, s.revocations, bson.D{{Key: "_id", Value: id}}, "session revocation")
	if err == nil {
		return fmt.Errorf("session %s is revoked: %w", id, ErrNotFound)
	}
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	res, err := s.sessions.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_used_at", Value: at}, {Key: "expires_at", Value: expiresAt}}}})
	if err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("session %s: %w", id, ErrNotFound)
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
func (s *MongoStore) AddRefreshToken(ctx context.Context, t session.RefreshToken) error {
	_, err := s.refresh.InsertOne(ctx, t)
	return insertErr(err, "refresh token")
}

// SpendRefreshToken spends a token by inserting its spend record: the insert is the atomic
// step, so of any number of concurrent presentations exactly one gets the token back without
// error. The spend record is the only record of it: the token's Spent is read from it.
func (s *MongoStore) SpendRefreshToken(ctx context.Context, hash string, at time.Time) (session.RefreshToken, error) {
	t, err := findOne[session.RefreshToken](ctx, s.refresh, bson.D{{Key: "_id", Value: hash}}, "refresh token")
	if err != nil {
		return t, err
	}
	_, err = s.spends.InsertOne(ctx, refreshSpend{Hash: hash, At: at})
	if mongo.IsDuplicateKeyError(err) {
		spend, err := findOne[refreshSpend](ctx, s.spends, bson.D{{Key: "_id", Value: hash}}, "refresh token spend")
		if err != nil {
			return t, err
		}
		t.Spent, t.SpentAt, t.Rotated = true, spend.At, spend.Rotated
		return t, session.ErrAlreadySpent
	}
	if err != nil {
		return t, fmt.Errorf("spend refresh token: %w", err)
	}
	return t, nil
}

// CompleteRotation marks a spend as rotated. Only the one spender writes it, so a plain update
// by _id is safe even where updates are not atomic.
func (s *MongoStore) CompleteRotation(ctx context.Context, hash string) error {
	res, err := s.spends.UpdateOne(ctx, bson.D{{Key: "_id", Value: hash}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "rotated", Value: true}}}})
	if err != nil {
		return fmt.Errorf("complete rotation: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("refresh token spend: %w", ErrNotFound)
	}
	return nil
}

// CreateSigningKey stores a signing key.
func (s *MongoStore) CreateSigningKey(ctx context.Context, k token.SigningKey) error {
	_, err := s.keys.InsertOne(ctx, k)
	return insertErr(err, "signing key")
}

// ListSigningKeys returns all signing keys, oldest first.
func (s *MongoStore) ListSigningKeys(ctx context.Context) ([]token.SigningKey, error) {
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}})
	return mongox.FindAll[token.SigningKey](ctx, s.keys, bson.D{}, opts, "signing keys")
}

// CreateAPIKey stores a key (by the hash of its secret).
func (s *MongoStore) CreateAPIKey(ctx context.Context, k apikey.Key) error {
	_, err := s.apiKeys.InsertOne(ctx, k)
	return insertErr(err, "api key")
}

// GetAPIKey finds a key by id, with its revocation.
func (s *MongoStore) GetAPIKey(ctx context.Context, id string) (apikey.Key, error) {
	k, err := findOne[apikey.Key](ctx, s.apiKeys, bson.D{{Key: "_id", Value: id}}, "api key")
	if err != nil {
		return k, err
	}
	keys, err := s.withKeyRevocations(ctx, []apikey.Key{k})
	if err != nil {
		return apikey.Key{}, err
	}
	return keys[0], nil
}

// ListAPIKeys returns a user's keys, oldest first.
func (s *MongoStore) ListAPIKeys(ctx context.Context, userID string) ([]apikey.Key, error) {
	opts := options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}})
	keys, err := mongox.FindAll[apikey.Key](ctx, s.apiKeys, bson.D{{Key: "user_id", Value: userID}}, opts, "api keys")
	if err != nil {
		return nil, err
	}
	return s.withKeyRevocations(ctx, keys)
}

func (s *MongoStore) withKeyRevocations(ctx context.Context, keys []apikey.Key) ([]apikey.Key, error) {
	if len(keys) == 0 {
		return keys, nil
	}
	ids := make(bson.A, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	revs, err := mongox.FindAll[apiKeyRevocation](ctx, s.apiRevoked,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, options.Find(), "api key revocations")
	if err != nil {
		return nil, err
	}
	at := make(map[string]time.Time, len(revs))
	for _, r := range revs {
		at[r.KeyID] = r.At
	}
	for i, k := range keys {
		if t, ok := at[k.ID]; ok {
			keys[i].Revoked, keys[i].RevokedAt = true, t
		}
	}
	return keys, nil
}

// RevokeAPIKey inserts the key's revocation record: atomic, and never undone by a touch.
func (s *MongoStore) RevokeAPIKey(ctx context.Context, id string, at time.Time) (bool, error) {
	_, err := s.apiRevoked.InsertOne(ctx, apiKeyRevocation{KeyID: id, At: at})
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
	res, err := s.apiKeys.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "last_used_at", Value: at}}}})
	if err != nil {
		return fmt.Errorf("touch api key: %w", err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("api key %s: %w", id, ErrNotFound)
	}
	return nil
}

// GetMFA finds a user's second factor.
func (s *MongoStore) GetMFA(ctx context.Context, userID string) (mfa.Factor, error) {
	return findOne[mfa.Factor](ctx, s.mfa, bson.D{{Key: "_id", Value: userID}}, "mfa")
}

// PutMFA creates or replaces a user's second factor (only that user's own flows write it).
func (s *MongoStore) PutMFA(ctx context.Context, m mfa.Factor) error {
	_, err := s.mfa.ReplaceOne(ctx, bson.D{{Key: "_id", Value: m.UserID}}, m, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("put mfa: %w", err)
	}
	return nil
}

// DeleteMFA removes a user's second factor.
func (s *MongoStore) DeleteMFA(ctx context.Context, userID string) error {
	res, err := s.mfa.DeleteOne(ctx, bson.D{{Key: "_id", Value: userID}})
	if err != nil {
		return fmt.Errorf("delete mfa: %w", err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("mfa of %s: %w", userID, ErrNotFound)
	}
	return nil
}

// ClaimTOTPStep inserts the step's claim: a duplicate is a replay.
func (s *MongoStore) ClaimTOTPStep(ctx context.Context, userID string, step int64, at time.Time) error {
	_, err := s.totpSteps.InsertOne(ctx, totpStep{ID: fmt.Sprintf("%s:%d", userID, step), UserID: userID, Step: step, At: at})
	return insertErr(err, "totp step")
}

// LastTOTPStep returns the highest claimed step of a user (0 if none).
func (s *MongoStore) LastTOTPStep(ctx context.Context, userID string) (int64, error) {
	opts := options.Find().SetSort(bson.D{{Key: "step", Value: -1}}).SetLimit(1)
	steps, err := mongox.FindAll[totpStep](ctx, s.totpSteps, bson.D{{Key: "user_id", Value: userID}}, opts, "totp steps")
	if err != nil || len(steps) == 0 {
		return 0, err
	}
	return steps[0].Step, nil
}

// SpendRecoveryCode inserts the code's spend record: a duplicate means it was used before.
func (s *MongoStore) SpendRecoveryCode(ctx context.Context, userID, hash string, at time.Time) error {
	_, err := s.recovery.InsertOne(ctx, bson.D{{Key: "_id", Value: userID + ":" + hash}, {Key: "at", Value: at}})
	return insertErr(err, "recovery code")
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
