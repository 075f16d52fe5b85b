package rbac_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/bduf/mcpauth/internal/benchratio"
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

// A head that lags behind the versions (its replace lost, or overtaken by a slower writer) or
// is missing altogether still leads to the latest version: reads look past it.
func TestShouldReadTheLatestAssignmentsPastALaggingOrMissingHead(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Database(t)
	s, err := rbac.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"viewer", "contributor", "admin"} {
		if err := s.Assign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: role}); err != nil {
			t.Fatal(err)
		}
	}
	heads := db.Collection("rbac_subject_heads")
	var head bson.M
	if err := db.Collection("rbac_subjects").FindOne(ctx, bson.D{{Key: "_id", Value: "acme/usr_1/0000000001"}}).Decode(&head); err != nil {
		t.Fatal(err)
	}
	head["_id"] = "acme/usr_1"
	if _, err := heads.ReplaceOne(ctx, bson.D{{Key: "_id", Value: "acme/usr_1"}}, head); err != nil {
		t.Fatal(err)
	}
	roles := func() []string {
		as, err := s.ListAssignments(ctx, "usr_1", "acme")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, a := range as {
			out = append(out, a.Role)
		}
		return out
	}
	if got := roles(); !slices.Equal(got, []string{"admin", "contributor", "viewer"}) {
		t.Errorf("past a head two versions behind: %v", got)
	}
	if _, err := heads.DeleteOne(ctx, bson.D{{Key: "_id", Value: "acme/usr_1"}}); err != nil {
		t.Fatal(err)
	}
	if got := roles(); !slices.Equal(got, []string{"admin", "contributor", "viewer"}) {
		t.Errorf("without a head: %v", got)
	}
	if err := s.Unassign(ctx, rbac.Assignment{UserID: "usr_1", OrgID: "acme", Role: "admin"}); err != nil {
		t.Fatalf("a change without a head: %v", err)
	}
	if got := roles(); !slices.Equal(got, []string{"contributor", "viewer"}) {
		t.Errorf("after a change without a head: %v", got)
	}
}

// A store made before rbac_subjects (one document per assignment and per grant) keeps every
// assignment and grant when it is opened.
func TestShouldMoveTheAssignmentsAndGrantsOfAnOlderStore(t *testing.T) {
	ctx := context.Background()
	db := mongotest.Database(t)
	if _, err := db.Collection("rbac_assignments").InsertMany(ctx, []any{
		bson.D{{Key: "_id", Value: "acme/usr_1/viewer/"}, {Key: "user_id", Value: "usr_1"}, {Key: "org_id", Value: "acme"}, {Key: "role", Value: "viewer"}},
		bson.D{{Key: "_id", Value: "acme/usr_1/owner/prj_1"}, {Key: "user_id", Value: "usr_1"}, {Key: "org_id", Value: "acme"}, {Key: "role", Value: "owner"}, {Key: "project_id", Value: "prj_1"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("rbac_grants").InsertOne(ctx,
		bson.D{{Key: "_id", Value: "acme/usr_2/tasks:read"}, {Key: "user_id", Value: "usr_2"}, {Key: "org_id", Value: "acme"}, {Key: "permission", Value: "tasks:read"}}); err != nil {
		t.Fatal(err)
	}
	s, err := rbac.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	as, err := s.ListAssignments(ctx, "usr_1", "acme")
	if err != nil || len(as) != 2 || as[0].Role != "owner" || as[0].ProjectID != "prj_1" || as[1].Role != "viewer" {
		t.Errorf("usr_1's assignments after the move: %+v, %v", as, err)
	}
	gs, err := s.ListGrants(ctx, "usr_2", "acme")
	if err != nil || len(gs) != 1 || gs[0].Permission != "tasks:read" {
		t.Errorf("usr_2's grants after the move: %+v, %v", gs, err)
	}
	if again, err := rbac.NewMongoStore(ctx, db); err != nil {
		t.Fatalf("reopening: %v", err)
	} else if as, _ := again.ListAssignments(ctx, "usr_1", "acme"); len(as) != 2 {
		t.Errorf("reopening moved the assignments again: %+v", as)
	}
}

// BenchmarkColdAssignments: what a cold decision reads, a subject's assignments in an org, at
// 20,000 users on the store under test (the embedded FerretDB unless MCPAUTH_TEST_MONGO_URI),
// each with two assignments, for the last user: a filter on user and org over one document per
// assignment (the store before rbac_subjects: FerretDB scans every assignment) beside
// ListAssignments (the subject's head and one look past it, by _id), in one run.
func BenchmarkColdAssignments(b *testing.B) {
	ctx := context.Background()
	db := mongotest.Database(b)
	const n = 20_000
	old := make([]any, 0, 2*n)
	for i := range n {
		user := fmt.Sprintf("usr_%06d", i)
		for _, role := range []string{"viewer", "contributor"} {
			old = append(old, bson.D{{Key: "_id", Value: "acme/" + user + "/" + role + "/"}, {Key: "user_id", Value: user},
				{Key: "org_id", Value: "acme"}, {Key: "role", Value: role}})
		}
	}
	if _, err := db.Collection("rbac_assignments").InsertMany(ctx, old); err != nil {
		b.Fatal(err)
	}
	s, err := rbac.NewMongoStore(ctx, db) // moves them into rbac_subjects
	if err != nil {
		b.Fatal(err)
	}
	last := fmt.Sprintf("usr_%06d", n-1)
	scan := benchratio.Run(b, "filter-on-user-and-org", func(b *testing.B) {
		for b.Loop() {
			cur, err := db.Collection("rbac_assignments").Find(ctx, bson.D{{Key: "user_id", Value: last}, {Key: "org_id", Value: "acme"}})
			if err != nil {
				b.Fatal(err)
			}
			var docs []bson.M
			if err := cur.All(ctx, &docs); err != nil || len(docs) != 2 {
				b.Fatalf("%d documents, %v", len(docs), err)
			}
		}
	})
	versions := benchratio.Run(b, "subject-versions", func(b *testing.B) {
		for b.Loop() {
			if as, err := s.ListAssignments(ctx, last, "acme"); err != nil || len(as) != 2 {
				b.Fatalf("%d assignments, %v", len(as), err)
			}
		}
	})
	benchratio.Report(b, map[string][2]*benchratio.Samples{"versions/filter": {versions, scan}})
}
