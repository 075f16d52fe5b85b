package rbac_test

import (
	"context"
	"testing"

	"github.com/bduf/mcpauth/internal/mongotest"
	"github.com/bduf/mcpauth/rbac"
	"github.com/bduf/mcpauth/rbac/storetest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

// newMongoStore returns a MongoStore on a fresh database dropped when t ends.
func newMongoStore(t testing.TB) *rbac.MongoStore {
	t.Helper()
	s, err := rbac.NewMongoStore(context.Background(), mongotest.Database(t))
	if err != nil {
		t.Fatalf("new mongo store: %v", err)
	}
	return s
}

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	storetest.Run(t, func(t *testing.T) rbac.Store { return newMongoStore(t) })
}

func TestShouldOpenTheMongoStoreTwiceOnTheSameDatabase(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Database(t)
	first, err := rbac.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatalf("first open: %v", err)
	}
	a := rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: "viewer"}
	if err := first.Assign(ctx, a); err != nil {
		t.Fatalf("assign: %v", err)
	}
	second, err := rbac.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatalf("second open (indexes must be created idempotently): %v", err)
	}
	as, err := second.ListAssignments(ctx, "usr_1", "acme")
	if err != nil || len(as) != 1 {
		t.Fatalf("assignments through the second store = %v, %v", as, err)
	}
	if err := second.Assign(ctx, a); err == nil {
		t.Fatalf("duplicate assignment accepted after reopening")
	}
}
