package session_test

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/session/sessiontest"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	sessiontest.Run(t, func(t *testing.T) session.Store {
		return newStore(t, mongotest.Database(t))
	})
}

// newStore returns a store on db with the embedded store's _id index already made (the server
// makes it every few seconds): the suite opens hundreds of sessions of one user at once, and
// look-ups by _id scan until the index is there.
func newStore(t *testing.T, db *mongo.Database) *session.MongoStore {
	t.Helper()
	ctx := context.Background()
	s, err := session.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatalf("new mongo store: %v", err)
	}
	if err := mongotest.IndexIDs(ctx); err != nil {
		t.Fatalf("index _id: %v", err)
	}
	return s
}
