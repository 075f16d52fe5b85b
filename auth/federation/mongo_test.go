package federation_test

import (
	"context"
	"testing"

	"github.com/bduf/mcpauth/auth/federation"
	"github.com/bduf/mcpauth/auth/federation/federationtest"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	federationtest.Run(t, func(t *testing.T) federation.Store {
		return newStore(t)
	})
}

func newStore(t *testing.T) *federation.MongoStore {
	t.Helper()
	ctx := context.Background()
	s, err := federation.NewMongoStore(ctx, mongotest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := mongotest.IndexIDs(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}
