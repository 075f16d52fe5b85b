package session

import (
	"cmp"
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

// A user's sessions, read in a bounded number of _id look-ups.
//
// FerretDB v1 on SQLite pushes down only an _id equality, so find({user_id}) scanned every
// session of every user, on paths any signed-in user reaches (auth_sessions, logout of all).
// Instead each user has a set of its sessions, a document of a mongox.Chain keyed by the user
// id (user_sessions holds its versions, user_session_heads a recent copy): the ids of its
// newest MaxPerUser sessions, in the order they were opened. Listing reads the set, then each
// session by _id, then their revocation records by _id.
//
// The entries are bare ids, not {id, created_at} documents: FerretDB stores and rewrites the
// whole set at every login (a version and a head), and an array of strings costs it less than
// half of what an array of documents does (measured at 100 entries). The order of opening is
// the order of eviction; listing sorts by the sessions' own creation times.
//
// The set changes at every login, so the chain keeps only its last userSetKeep versions.
type userSessions struct {
	UserID   string   `bson:"user_id"` // so that erasing a user finds its versions and heads
	Sessions []string `bson:"sessions"`
}

// userSetKeep is how many versions of a user's set are kept (see mongox.Chain).
const userSetKeep = 32

// userSetsBackfilled marks, among the heads, a store whose users all have their sets (stores
// made before the sets existed get them once, at the first start).
const userSetsBackfilled = "meta:user-sessions-v1"

func newUserSets(db *mongo.Database) *mongox.Chain[userSessions] {
	return mongox.NewChain[userSessions](db.Collection("user_sessions"), db.Collection("user_session_heads"),
		"user sessions", userSetKeep)
}

// CreateSession enters sess in its user's set, then inserts it. In that order, an interruption
// between the two leaves an entry without a session, which every read skips; the other order
// would leave a working session that no list finds, which logging out of all sessions or
// revoking them all (on disable, deletion, a password change) would then miss.
//
// Entering it may push the user's oldest sessions past MaxPerUser: each is revoked first, by
// its revocation record, then the set without it is written, so no session leaves the set
// while it still works, whatever is interrupted or runs concurrently.
func (s *MongoStore) CreateSession(ctx context.Context, sess Session) ([]string, error) {
	var evicted []string
	added := false
	err := s.sets.Change(ctx, sess.UserID, func(set *userSessions) error {
		added = false
		if slices.Contains(set.Sessions, sess.ID) {
			return mongox.ErrUnchanged
		}
		set.UserID = sess.UserID
		set.Sessions = append(set.Sessions, sess.ID)
		out, err := s.trim(ctx, set, sess.CreatedAt)
		// Every attempt's revocations are reported, the ones of attempts that lost to a
		// concurrent change too: they are written, so they must be shared.
		for _, id := range out {
			if !slices.Contains(evicted, id) {
				evicted = append(evicted, id)
			}
		}
		added = err == nil
		return err
	})
	if err != nil {
		return evicted, fmt.Errorf("enter session in its user's set: %w", err)
	}
	_, err = s.sessions.InsertOne(ctx, sess)
	if mongo.IsDuplicateKeyError(err) && added {
		// The id is another session's (perhaps another user's): take the entry out again, so
		// that the set never revokes that session when the entry leaves it.
		s.leave(ctx, sess.UserID, sess.ID)
	}
	return evicted, mongox.InsertErr(err, "session", storeerr.ErrAlreadyExists)
}

// trim keeps set at most MaxPerUser long: each of its oldest entries beyond that is revoked (at,
// ReasonSessionLimit) before it leaves, and their ids are returned.
func (s *MongoStore) trim(ctx context.Context, set *userSessions, at time.Time) ([]string, error) {
	var evicted []string
	for len(set.Sessions) > MaxPerUser {
		id := set.Sessions[0]
		// Revoked already (or never stored) is fine: the record is what must exist.
		if _, err := s.RevokeSession(ctx, id, at, ReasonSessionLimit); err != nil {
			return evicted, err
		}
		evicted = append(evicted, id)
		set.Sessions = set.Sessions[1:]
	}
	return evicted, nil
}

// leave takes session id out of userID's set. Best effort: an entry left behind is skipped by
// every read, and ids are random (random.ID), so another session holding it is a caller's slip.
func (s *MongoStore) leave(ctx context.Context, userID, id string) {
	_ = s.sets.Change(ctx, userID, func(set *userSessions) error {
		i := slices.Index(set.Sessions, id)
		if i < 0 {
			return mongox.ErrUnchanged
		}
		set.Sessions = slices.Delete(set.Sessions, i, i+1)
		return nil
	})
}

func byAge(a, b Session) int {
	return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
}

// ListUserSessions returns the sessions in a user's set, oldest first, each read by its _id.
func (s *MongoStore) ListUserSessions(ctx context.Context, userID string) ([]Session, error) {
	set, err := s.sets.Latest(ctx, userID)
	if err != nil {
		return nil, err
	}
	found, err := mongox.FindByIDs[Session](ctx, s.sessions, set.Body.Sessions, s.byIDs, "sessions")
	if err != nil {
		return nil, err
	}
	// Missing from found: an entry whose session was never stored (CreateSession interrupted
	// between its writes). Skipped: one whose id is another user's session.
	sessions := slices.DeleteFunc(found, func(sess Session) bool { return sess.UserID != userID })
	slices.SortFunc(sessions, byAge)
	return s.withRevocations(ctx, sessions)
}

// backfill gives each user of a store made before the sets existed its set, once: its newest
// MaxPerUser sessions. Each older one that has not expired is revoked (ReasonSessionLimit, at
// the time of the backfill), as it would have been had the bound held all along: a session no
// list finds must not work. Expired ones need nothing: they work no more. Sessions.ReloadRevoked,
// at start, shares these revocations as it shares any other.
//
// It reads every session once (ids, users and times only), before the store serves. Running
// it again after an interruption finishes it: revocations and entries already written stay as
// they are, and the marker goes last.
func (s *MongoStore) backfill(ctx context.Context) error {
	if done, err := mongox.Migrated(ctx, s.sets.Heads(), userSetsBackfilled); done || err != nil {
		return err
	}
	all, err := mongox.FindAll[Session](ctx, s.sessions, bson.D{},
		options.Find().SetProjection(bson.D{{Key: "user_id", Value: 1}, {Key: "created_at", Value: 1}, {Key: "expires_at", Value: 1}}),
		"sessions")
	if err != nil {
		return fmt.Errorf("backfill user sessions: %w", err)
	}
	byUser := map[string][]Session{}
	for _, sess := range all {
		byUser[sess.UserID] = append(byUser[sess.UserID], sess)
	}
	now := time.Now()
	for userID, sessions := range byUser {
		slices.SortFunc(sessions, byAge)
		older := max(0, len(sessions)-MaxPerUser)
		for _, sess := range sessions[:older] {
			if now.Before(sess.ExpiresAt) {
				if _, err := s.RevokeSession(ctx, sess.ID, now, ReasonSessionLimit); err != nil {
					return fmt.Errorf("backfill user sessions: %w", err)
				}
			}
		}
		ids := make([]string, 0, len(sessions)-older)
		for _, sess := range sessions[older:] {
			ids = append(ids, sess.ID)
		}
		// Through the chain, not as a first version: another instance may serve from this
		// store already, and the user have a set by now. Its sessions are newer: the old ones
		// go before them, and leave first.
		err := s.sets.Change(ctx, userID, func(set *userSessions) error {
			missing := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return slices.Contains(set.Sessions, id) })
			if len(missing) == 0 {
				return mongox.ErrUnchanged
			}
			set.UserID = userID
			set.Sessions = append(missing, set.Sessions...)
			_, err := s.trim(ctx, set, now)
			return err
		})
		if err != nil {
			return fmt.Errorf("backfill user sessions: %w", err)
		}
	}
	return mongox.MarkMigrated(ctx, s.sets.Heads(), userSetsBackfilled)
}

// Tombstone keeps what erasing a user filters on (mongox.Tombstoner).
func (u userSessions) Tombstone() userSessions { return userSessions{UserID: u.UserID} }
