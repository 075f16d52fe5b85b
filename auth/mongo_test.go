package auth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

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
	indexIDs(t)
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

// A name record is only believed when its user holds the name: a left-over (an interrupted
// change or delete) answers nothing and, once old, is taken over by the next user of the name;
// a young one (a change in flight) keeps the name for that change.
func TestShouldTakeOverALeftOverNameRecordButNotOneInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := mongotest.Database(t)
	store, err := auth.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	names := db.Collection("user_names")
	if _, err := names.InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "email:old@example.com"}, {Key: "user_id", Value: "usr_gone"}, {Key: "at", Value: now.Add(-time.Hour)}},
		bson.D{{Key: "_id", Value: "email:young@example.com"}, {Key: "user_id", Value: "usr_creating"}, {Key: "at", Value: now}},
	}); err != nil {
		t.Fatal(err)
	}
	for _, email := range []string{"old@example.com", "young@example.com"} {
		if _, err := store.GetUserByEmail(ctx, email); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("a record whose user does not hold %s: %v, want not found", email, err)
		}
	}
	if err := store.CreateUser(ctx, auth.User{ID: "usr_1", Email: "old@example.com", OrgID: "acme", CreatedAt: now}); err != nil {
		t.Fatalf("taking a left-over name: %v", err)
	}
	if u, err := store.GetUserByEmail(ctx, "old@example.com"); err != nil || u.ID != "usr_1" {
		t.Errorf("the name taken over finds %+v, %v; want usr_1", u, err)
	}
	err = store.CreateUser(ctx, auth.User{ID: "usr_2", Email: "young@example.com", OrgID: "acme", CreatedAt: now})
	if !errors.Is(err, auth.ErrAlreadyExists) {
		t.Errorf("taking a name whose change is in flight: %v, want already exists", err)
	}
	if _, err := store.GetUser(ctx, "usr_2"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("the refused user was stored: %v", err)
	}
}

// A store made before user_names existed gets every user's name records at its next start.
func TestShouldBackfillTheNameRecordsOfAnOlderStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := mongotest.Database(t)
	if _, err := db.Collection("users").InsertMany(ctx, []any{
		auth.User{ID: "usr_1", Email: "ada@example.com", Username: "ada", OrgID: "acme"},
		auth.User{ID: "usr_2", Email: "bob@example.com", OrgID: "acme"},
	}); err != nil {
		t.Fatal(err)
	}
	store, err := auth.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, find := range []func() (auth.User, error){
		func() (auth.User, error) { return store.GetUserByEmail(ctx, "ada@example.com") },
		func() (auth.User, error) { return store.GetUserByUsername(ctx, "ada") },
		func() (auth.User, error) { return store.GetUserByEmail(ctx, "bob@example.com") },
	} {
		if _, err := find(); err != nil {
			t.Errorf("a user of the older store: %v", err)
		}
	}
}

// Uniqueness is the unique indexes', not the name records': a user whose name record went
// missing still holds its email against an update of another user, and a user taking back a
// name whose record is already its own (an interrupted change) gets it.
func TestShouldKeepNamesUniqueWhenARecordIsMissingOrAlreadyOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := mongotest.Database(t)
	store, err := auth.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if _, err := db.Collection("users").InsertOne(ctx, auth.User{ID: "usr_orphan", Email: "taken@example.com", OrgID: "acme", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateUser(ctx, auth.User{ID: "usr_1", Email: "ada@example.com", OrgID: "acme", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	taken := "taken@example.com"
	if err := store.UpdateUser(ctx, "usr_1", auth.UserChange{Email: &taken, UpdatedAt: now}); !errors.Is(err, auth.ErrAlreadyExists) {
		t.Errorf("taking the email of a user without a name record: %v, want already exists", err)
	}
	if u, err := store.GetUserByEmail(ctx, "ada@example.com"); err != nil || u.ID != "usr_1" {
		t.Errorf("after the refused update, usr_1 by its email: %+v, %v", u, err)
	}
	if _, err := db.Collection("user_names").InsertOne(ctx,
		bson.D{{Key: "_id", Value: "email:ada2@example.com"}, {Key: "user_id", Value: "usr_1"}, {Key: "at", Value: now.Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	next := "ada2@example.com"
	if err := store.UpdateUser(ctx, "usr_1", auth.UserChange{Email: &next, UpdatedAt: now}); err != nil {
		t.Fatalf("taking a name whose record is already one's own: %v", err)
	}
	if u, err := store.GetUserByEmail(ctx, next); err != nil || u.ID != "usr_1" {
		t.Errorf("usr_1 by its new email: %+v, %v", u, err)
	}
}

// indexIDs gives the collections a store just created the _id index the embedded server adds
// within seconds (internal/embedmongo/idindex.go), as the server does after opening its stores.
func indexIDs(t *testing.T) {
	t.Helper()
	if err := mongotest.IndexIDs(context.Background()); err != nil {
		t.Fatalf("index ids: %v", err)
	}
}
