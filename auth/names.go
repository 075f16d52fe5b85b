package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/bduf/mcpauth/internal/mongox"
)

// Users by email and by username, each one _id look-up.
//
// FerretDB v1 on SQLite pushes down only an _id equality: a filter on email or username
// decodes and scans every user (680 ms of CPU at 20,000 users, on the anonymous login path).
// So each email and username of a user also has a name record in user_names whose _id is the
// kind and the normalized value ("email:ada@example.com", "username:ada") and which points at
// the user: a login finds the record by _id, then the user by _id.
//
// Uniqueness stays with the unique indexes of users (atomic on MongoDB and FerretDB alike);
// a name record is only a pointer, and is believed only when the user it points at holds that
// name. That makes every interruption harmless: records are written before the user (a record
// whose user does not hold the name is not an answer) and removed after it (a left-over record
// is not an answer either), and a left-over record older than nameGrace is taken over by the
// next user who takes the name. A younger one belongs to a change in flight, whose unique index
// decides the race; its loser removes its record.
type nameRecord struct {
	ID     string    `bson:"_id"`
	UserID string    `bson:"user_id"`
	At     time.Time `bson:"at"`
}

// nameGrace is how long a record whose user does not (yet) hold its name counts as a change in
// flight rather than a left-over.
const nameGrace = time.Minute

// backfilledV1 marks a store whose users all have their name records (stores made before
// user_names existed get them once, at the first start).
const backfilledV1 = "meta:backfilled-v1"

func emailName(e string) string    { return "email:" + e }
func usernameName(u string) string { return "username:" + u }

// names lists the name records of u.
func names(email, username string) []string {
	n := []string{emailName(email)}
	if username != "" {
		n = append(n, usernameName(username))
	}
	return n
}

func holds(u User, name string) bool {
	return name == emailName(u.Email) || (u.Username != "" && name == usernameName(u.Username))
}

// byName finds the user a name record points at, if that user holds the name.
func (s *MongoStore) byName(ctx context.Context, name string) (User, error) {
	r, err := findOne[nameRecord](ctx, s.names, mongox.ByID(name), "user")
	if err != nil {
		return User{}, err
	}
	u, err := s.GetUser(ctx, r.UserID)
	if err != nil {
		return User{}, err
	}
	if !holds(u, name) { // a left-over or a change in flight
		return User{}, fmt.Errorf("user: %w", ErrNotFound)
	}
	return u, nil
}

// claim writes the name records of userID, each a unique insert; a record of another user who
// holds the name is ErrAlreadyExists, and so is one that may belong to a change in flight.
// On an error, the records it wrote are removed again.
func (s *MongoStore) claim(ctx context.Context, userID string, at time.Time, want ...string) error {
	var written []string
	for _, name := range want {
		ok, err := s.claimOne(ctx, userID, name, at)
		if err != nil || !ok {
			s.release(ctx, userID, written...)
			if err == nil {
				err = fmt.Errorf("%s: %w", name, ErrAlreadyExists)
			}
			return err
		}
		written = append(written, name)
	}
	return nil
}

func (s *MongoStore) claimOne(ctx context.Context, userID, name string, at time.Time) (bool, error) {
	for range 2 {
		_, err := s.names.InsertOne(ctx, nameRecord{ID: name, UserID: userID, At: at})
		if err == nil {
			return true, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return false, fmt.Errorf("write user name: %w", err)
		}
		r, err := findOne[nameRecord](ctx, s.names, mongox.ByID(name), "user name")
		switch {
		case errors.Is(err, ErrNotFound):
			continue // released meanwhile
		case err != nil:
			return false, err
		case r.UserID == userID:
			return true, nil
		}
		holder, err := s.GetUser(ctx, r.UserID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false, err
		}
		if (err == nil && holds(holder, name)) || at.Sub(r.At) < nameGrace {
			return false, nil
		}
		// A left-over: remove it (only if it is still that one) and try again.
		if _, err := s.names.DeleteOne(ctx, bson.D{{Key: "_id", Value: name}, {Key: "user_id", Value: r.UserID}}); err != nil {
			return false, fmt.Errorf("remove a left-over user name: %w", err)
		}
	}
	return false, nil
}

// release removes userID's records of the names (only its own: a name taken over meanwhile
// stays with its new user). Best effort: a record left behind is harmless.
func (s *MongoStore) release(ctx context.Context, userID string, gone ...string) {
	for _, name := range gone {
		_, _ = s.names.DeleteOne(ctx, bson.D{{Key: "_id", Value: name}, {Key: "user_id", Value: userID}})
	}
}

// backfill gives every user of a store made before user_names existed its name records, once.
func (s *MongoStore) backfill(ctx context.Context) error {
	if _, err := findOne[nameRecord](ctx, s.names, mongox.ByID(backfilledV1), "user names"); err == nil {
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	cur, err := s.users.Find(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("backfill user names: %w", err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var u User
		if err := cur.Decode(&u); err != nil {
			return fmt.Errorf("backfill user names: %w", err)
		}
		for _, name := range names(u.Email, u.Username) {
			if _, err := s.names.InsertOne(ctx, nameRecord{ID: name, UserID: u.ID, At: u.CreatedAt}); err != nil && !mongo.IsDuplicateKeyError(err) {
				return fmt.Errorf("backfill user names: %w", err)
			}
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("backfill user names: %w", err)
	}
	_, err = s.names.InsertOne(ctx, nameRecord{ID: backfilledV1, At: time.Now()})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("backfill user names: %w", err)
	}
	return nil
}
