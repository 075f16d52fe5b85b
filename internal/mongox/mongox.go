// Package mongox holds the MongoDB helpers the stores of auth and rbac share: the one way an
// insert's duplicate key becomes the store's "already exists", a missing document its "not
// found", a read its slice, and an index is created. Each store passes its own sentinels, so
// callers keep matching them with errors.Is. (audit imports nothing of ours and has its own.)
package mongox

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/sync/errgroup"
)

// InsertErr maps an insert's error: a duplicate key is exists (wrapped, naming what), any other
// failure is wrapped; nil stays nil.
func InsertErr(err error, what string, exists error) error {
	if mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("%s: %w", what, exists)
	}
	if err != nil {
		return fmt.Errorf("insert %s: %w", what, err)
	}
	return nil
}

// FindOne decodes the document filter selects; none is notFound.
func FindOne[T any](ctx context.Context, c *mongo.Collection, filter any, what string, notFound error) (T, error) {
	var v T
	err := c.FindOne(ctx, filter).Decode(&v)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return v, fmt.Errorf("%s: %w", what, notFound)
	}
	if err != nil {
		return v, fmt.Errorf("find %s: %w", what, err)
	}
	return v, nil
}

// FindAll decodes every document filter selects (opts may be nil).
func FindAll[T any](ctx context.Context, c *mongo.Collection, filter any, opts *options.FindOptionsBuilder, what string) ([]T, error) {
	cur, err := c.Find(ctx, filter, opts)
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", what, err)
	}
	var out []T
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

// DeleteByID deletes the document with _id id; none is notFound.
func DeleteByID(ctx context.Context, c *mongo.Collection, id, what string, notFound error) error {
	res, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	if err != nil {
		return fmt.Errorf("delete %s: %w", what, err)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("%s: %w", what, notFound)
	}
	return nil
}

// namespaceExists is the server's answer to creating a collection that exists (MongoDB and
// FerretDB alike).
const namespaceExists = 48

// CreateCollections creates collections that do not exist yet (a store makes its own at start,
// so that the embedded store indexes their _id before the first write, and concurrent first
// inserts do not each create one).
func CreateCollections(ctx context.Context, db *mongo.Database, names ...string) error {
	for _, name := range names {
		err := db.CreateCollection(ctx, name)
		var se mongo.ServerError
		if err != nil && !(errors.As(err, &se) && se.HasErrorCode(namespaceExists)) {
			return fmt.Errorf("create collection %s: %w", name, err)
		}
	}
	return nil
}

// ReplaceByID writes doc as the whole document with _id id, inserting it if there is none (the
// last writer wins: for records whose every write is complete, never for atomic steps).
func ReplaceByID(ctx context.Context, c *mongo.Collection, id string, doc any, what string) error {
	if _, err := c.ReplaceOne(ctx, ByID(id), doc, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("put %s: %w", what, err)
	}
	return nil
}

// Index is an index of a collection, by name.
type Index struct {
	Coll           *mongo.Collection
	Name           string
	Keys           bson.D
	Unique, Sparse bool
}

// CreateIndexes creates each index (idempotently: an index that exists as declared is kept).
func CreateIndexes(ctx context.Context, indexes []Index) error {
	for _, ix := range indexes {
		opts := options.Index().SetName(ix.Name)
		if ix.Unique {
			opts.SetUnique(true)
		}
		if ix.Sparse {
			opts.SetSparse(true)
		}
		if _, err := ix.Coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ix.Keys, Options: opts}); err != nil {
			return fmt.Errorf("create index %s.%s: %w", ix.Coll.Name(), ix.Name, err)
		}
	}
	return nil
}

// ByIDs is the filter of the documents whose _id is one of ids.
func ByIDs[T any](ids []T) bson.D {
	in := make(bson.A, len(ids))
	for i, id := range ids {
		in[i] = id
	}
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: in}}}}
}

var keyEscaper = strings.NewReplacer("%", "%25", "/", "%2F")

// Key joins parts into an _id with '/', each escaped ('%' and '/' as %25 and %2F), so parts with
// a '/' in them cannot make two keys collide.
func Key(parts ...string) string {
	escaped := make([]string, len(parts))
	for i, p := range parts {
		escaped[i] = keyEscaper.Replace(p)
	}
	return strings.Join(escaped, "/")
}

// ByID is the filter of the document whose _id is id.
func ByID(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

// Join sets on each item what the record of c with the item's id says (set), for the items
// that have one: how a store joins the records that point at others, such as the revocations
// of sessions or keys. The records are read as FindByIDs reads them (oneByOne: one _id look-up
// each, for a server that scans for $in).
func Join[T, R any](ctx context.Context, c *mongo.Collection, oneByOne bool, items []T, id func(T) string, set func(*T, R), what string) ([]T, error) {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = id(it)
	}
	docs, err := findRawByIDs(ctx, c, ids, oneByOne, what)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]R, len(docs))
	for _, d := range docs {
		var r R
		if err := bson.Unmarshal(d, &r); err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		key, _ := d.Lookup("_id").StringValueOK()
		byID[key] = r
	}
	for i := range items {
		if r, ok := byID[id(items[i])]; ok {
			set(&items[i], r)
		}
	}
	return items, nil
}

// FindByIDs returns the documents of c whose _id is one of ids, in no particular order, leaving
// out the ids that have none. oneByOne reads each by its own _id look-up, IDLookupsInFlight at a
// time: for a server that answers $in by scanning the collection (PushesDownOnlyIDs); otherwise
// they are one $in (a single id is always one look-up).
func FindByIDs[T any](ctx context.Context, c *mongo.Collection, ids []string, oneByOne bool, what string) ([]T, error) {
	docs, err := findRawByIDs(ctx, c, ids, oneByOne, what)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(docs))
	for _, d := range docs {
		var v T
		if err := bson.Unmarshal(d, &v); err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// IDLookupsInFlight bounds the _id look-ups FindByIDs (and Join) has in flight at once, so one
// long list does not take every connection of the pool.
const IDLookupsInFlight = 8

func findRawByIDs(ctx context.Context, c *mongo.Collection, ids []string, oneByOne bool, what string) ([]bson.Raw, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if !oneByOne && len(ids) > 1 {
		var docs []bson.Raw
		cur, err := c.Find(ctx, ByIDs(ids))
		if err != nil {
			return nil, fmt.Errorf("find %s: %w", what, err)
		}
		if err := cur.All(ctx, &docs); err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		return docs, nil
	}
	found := make([]bson.Raw, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(IDLookupsInFlight)
	for i, id := range ids {
		g.Go(func() error {
			d, err := c.FindOne(gctx, ByID(id)).Raw()
			switch {
			case errors.Is(err, mongo.ErrNoDocuments):
				return nil
			case err != nil:
				return fmt.Errorf("find %s: %w", what, err)
			}
			found[i] = d
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	docs := found[:0]
	for _, d := range found {
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs, nil
}

// PushesDownOnlyIDs reports whether db's server is FerretDB v1, whose SQLite backend filters
// in the database only an _id equality: every other filter ($in on _id included) decodes and
// scans the whole collection there, so a store reads many records by one _id look-up each.
func PushesDownOnlyIDs(ctx context.Context, db *mongo.Database) bool {
	var info bson.M
	if err := db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false
	}
	_, ferret := info["ferretdbVersion"]
	return ferret
}

// Migrated reports whether the one-time migration named marker has finished: its marker
// document is in c (MarkMigrated). A store checks it at start and runs the migration if not.
func Migrated(ctx context.Context, c *mongo.Collection, marker string) (bool, error) {
	err := c.FindOne(ctx, ByID(marker)).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	}
	return false, fmt.Errorf("read migration marker %s: %w", marker, err)
}

// MarkMigrated records that the migration named marker has finished (last, so that an
// interrupted one runs again); marked before, by another instance, is fine.
func MarkMigrated(ctx context.Context, c *mongo.Collection, marker string) error {
	if _, err := c.InsertOne(ctx, ByID(marker)); err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("mark migration %s: %w", marker, err)
	}
	return nil
}
