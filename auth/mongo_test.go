package auth_test

import (
	"context"
	"testing"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/storetest"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

// newMongoStore returns a MongoStore on a fresh database dropped when t ends.
func newMongoStore(t *testing.T) *auth.MongoStore {
	t.Helper()
	s, err := auth.NewMongoStore(context.Background(), mongotest.Database(t))
	if err != nil {
		t.Fatalf("new mongo store: %v", err)
	}
	return s
}

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	storetest.Run(t, func(t *testing.T) auth.Store { return newMongoStore(t) })
}

func TestShouldOpenTheMongoStoreTwiceOnTheSameDatabase(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Database(t)
	first, err := auth.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatalf("first open: %v", err)
	}
	if err := first.CreateUser(ctx, auth.User{ID: "usr_1", Email: "ada@example.com", Username: "ada", OrgID: "acme"}); err != nil {
		t.Fatalf("create user: %v", err)
	}
	second, err := auth.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatalf("second open (indexes must be created idempotently): %v", err)
	}
	if _, err := second.GetUserByEmail(ctx, "ada@example.com"); err != nil {
		t.Fatalf("data written through the first store is not visible through the second: %v", err)
	}
	// The unique indexes still hold after the second open.
	err = second.CreateUser(ctx, auth.User{ID: "usr_2", Email: "ada@example.com", OrgID: "acme"})
	if err == nil {
		t.Fatalf("duplicate email accepted after reopening")
	}
}
