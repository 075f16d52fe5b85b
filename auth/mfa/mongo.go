package mfa

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/mongox"
)

// MongoStore is the Store on MongoDB (or the embedded FerretDB). An accepted TOTP step and a
// spent recovery code are each an insert with a unique _id: atomic everywhere, so a code is
// accepted once however many logins race with it.
type MongoStore struct {
	factors  *mongo.Collection
	steps    *mongo.Collection // one document per accepted TOTP step: replay protection
	recovery *mongo.Collection // one document per used recovery code
}

// totpStep is the claim of one accepted TOTP time step of a user.
type totpStep struct {
	ID     string    `bson:"_id"` // user id + ":" + step
	UserID string    `bson:"user_id"`
	Step   int64     `bson:"step"`
	At     time.Time `bson:"at"`
}

var _ Store = (*MongoStore)(nil)

// NewMongoStore returns a store on db, creating its indexes (idempotently).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	s := &MongoStore{factors: db.Collection("mfa"), steps: db.Collection("mfa_totp_steps"), recovery: db.Collection("mfa_recovery_spent")}
	if err := mongox.CreateIndexes(ctx, []mongox.Index{
		{Coll: s.steps, Name: "user_step", Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "step", Value: -1}}},
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// GetMFA finds a user's second factor.
func (s *MongoStore) GetMFA(ctx context.Context, userID string) (Factor, error) {
	return mongox.FindOne[Factor](ctx, s.factors, mongox.ByID(userID), "mfa", storeerr.ErrNotFound)
}

// PutMFA creates or replaces a user's second factor (only that user's own flows write it).
func (s *MongoStore) PutMFA(ctx context.Context, m Factor) error {
	_, err := s.factors.ReplaceOne(ctx, mongox.ByID(m.UserID), m, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("put mfa: %w", err)
	}
	return nil
}

// DeleteMFA removes a user's second factor.
func (s *MongoStore) DeleteMFA(ctx context.Context, userID string) error {
	return mongox.DeleteByID(ctx, s.factors, userID, "mfa", storeerr.ErrNotFound)
}

// ClaimTOTPStep inserts the step's claim: a duplicate is a replay.
func (s *MongoStore) ClaimTOTPStep(ctx context.Context, userID string, step int64, at time.Time) error {
	_, err := s.steps.InsertOne(ctx, totpStep{ID: fmt.Sprintf("%s:%d", userID, step), UserID: userID, Step: step, At: at})
	return mongox.InsertErr(err, "totp step", storeerr.ErrAlreadyExists)
}

// LastTOTPStep returns the highest claimed step of a user (0 if none).
func (s *MongoStore) LastTOTPStep(ctx context.Context, userID string) (int64, error) {
	opts := options.Find().SetSort(bson.D{{Key: "step", Value: -1}}).SetLimit(1)
	steps, err := mongox.FindAll[totpStep](ctx, s.steps, bson.D{{Key: "user_id", Value: userID}}, opts, "totp steps")
	if err != nil || len(steps) == 0 {
		return 0, err
	}
	return steps[0].Step, nil
}

// SpendRecoveryCode inserts the code's spend record: a duplicate means it was used before.
func (s *MongoStore) SpendRecoveryCode(ctx context.Context, userID, hash string, at time.Time) error {
	_, err := s.recovery.InsertOne(ctx, bson.D{{Key: "_id", Value: userID + ":" + hash}, {Key: "at", Value: at}})
	return mongox.InsertErr(err, "recovery code", storeerr.ErrAlreadyExists)
}

// EraseUser deletes a user's second factor, accepted TOTP steps and spent recovery codes.
func (s *MongoStore) EraseUser(ctx context.Context, userID string) error {
	recoveryIDs := bson.Regex{Pattern: "^" + regexp.QuoteMeta(userID+":")}
	for _, del := range []struct {
		coll   *mongo.Collection
		filter bson.D
		what   string
	}{
		{s.factors, mongox.ByID(userID), "mfa"},
		{s.steps, bson.D{{Key: "user_id", Value: userID}}, "totp steps"},
		{s.recovery, bson.D{{Key: "_id", Value: recoveryIDs}}, "recovery code spends"},
	} {
		if _, err := del.coll.DeleteMany(ctx, del.filter); err != nil {
			return fmt.Errorf("erase %s: %w", del.what, err)
		}
	}
	return nil
}
