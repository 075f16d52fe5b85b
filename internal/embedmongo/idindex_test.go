package embedmongo_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/internal/embedmongo"
	"github.com/bduf/mcpauth/internal/mongox"
)

// plan is SQLite's query plan for the statement FerretDB v1.24 runs for an _id equality on
// table (the filter of its collection.go and query.go: _ferretdb_sjson->'$._id' = ?).
func plan(t *testing.T, file, table string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ?`, table), `"u1"`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var steps []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, detail)
	}
	return strings.Join(steps, "; ")
}

func table(t testing.TB, file, collection string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+file+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name string
	if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, collection).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}

// FerretDB's own _id index does not serve its own _id queries (a SCAN of the table); with the
// index IndexIDs adds, the same query is a SEARCH using it, and the collection behaves as
// before: found by _id, a second document with the same _id refused.
func TestShouldLookDocumentsUpByIDThroughAnIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := embedmongo.Start(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.Disconnect(ctx)
		_ = srv.Stop(ctx)
	})
	if !mongox.PushesDownOnlyIDs(ctx, client.Database("mcpauth")) {
		t.Error("the embedded FerretDB is not recognized as a server that filters only an _id equality")
	}
	users := client.Database("mcpauth").Collection("users")
	docs := make([]any, 100)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("u%d", i)}, {Key: "email", Value: fmt.Sprintf("u%d@example.com", i)}}
	}
	if _, err := users.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "mcpauth.sqlite")
	tbl := table(t, file, "users")

	if p := plan(t, file, tbl); !strings.Contains(p, "SCAN") {
		t.Logf("FerretDB's own _id index now serves its _id queries (%s): IndexIDs may no longer be needed", p)
	}
	added, err := srv.IndexIDs(ctx)
	if err != nil || added < 1 {
		t.Fatalf("IndexIDs = %d, %v; want the users collection indexed", added, err)
	}
	if p := plan(t, file, tbl); strings.Contains(p, "SCAN") || !strings.Contains(p, "USING INDEX") {
		t.Fatalf("an _id lookup after IndexIDs: %s; want a SEARCH using an index", p)
	}
	if again, err := srv.IndexIDs(ctx); err != nil || again != 0 {
		t.Errorf("IndexIDs again = %d, %v; want nothing more to add", again, err)
	}

	var got bson.M
	if err := users.FindOne(ctx, bson.D{{Key: "_id", Value: "u42"}}).Decode(&got); err != nil || got["email"] != "u42@example.com" {
		t.Errorf("find by _id through the index: %v, %v", got, err)
	}
	if _, err := users.InsertOne(ctx, bson.D{{Key: "_id", Value: "u42"}}); !mongo.IsDuplicateKeyError(err) {
		t.Errorf("a second document with _id u42: %v, want a duplicate key error", err)
	}
	if err := users.Drop(ctx); err != nil {
		t.Fatalf("dropping an indexed collection: %v", err)
	}
}

// BenchmarkFindByID: findOne({_id}) in a collection of 20,000 documents, without the index
// IndexIDs adds (FerretDB alone: a scan, here of almost the whole table, the ids being read
// from the last inserted) and with it, in one run.
func BenchmarkFindByID(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	srv, err := embedmongo.Start(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = client.Disconnect(ctx)
		_ = srv.Stop(ctx)
	})
	const n = 20_000
	db := client.Database("bench")
	for _, name := range []string{"scanned", "indexed"} {
		docs := make([]any, n)
		for i := range docs {
			docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("usr_%06d", i)}, {Key: "email", Value: fmt.Sprintf("u%d@example.com", i)}}
		}
		if _, err := db.Collection(name).InsertMany(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := srv.IndexIDs(ctx); err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(dir, "bench.sqlite")
	sqlite, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	defer sqlite.Close()
	scanned := table(b, file, "scanned")
	if _, err := sqlite.Exec(fmt.Sprintf(`DROP INDEX %q`, scanned+"_mcpauth_id")); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"scanned", "indexed"} {
		b.Run(name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				var doc bson.M
				if err := db.Collection(name).FindOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("usr_%06d", n-1-i%n)}}).Decode(&doc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
