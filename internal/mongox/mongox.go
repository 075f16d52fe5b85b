// Package mongox holds the MongoDB helpers the stores of auth and rbac share: the one way an
// insert's duplicate key becomes the store's "already exists", a missing document its "not
// found", a read its slice, and an index is created. Each store passes its own sentinels, so
// callers keep matching them with errors.Is. (audit imports nothing of ours and has its own.)
package mongox

import (
	"context"
	"errors"
	"fmt"

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

// ByID is the filter of the document whose _id is id.
func ByID(id string) bson.D { return bson.D{{Key: "_id", Value: id}} }

// FindByIDs returns, by _id, the documents of c whose _id is one of ids (those that exist).
// It sends one $in, or, when perID (a server that would answer the $in by scanning the whole
// collection: PushesDownOnlyIDs), one _id look-up per id, perIDParallel at a time. One id is
// always one look-up.
func FindByIDs[T any](ctx context.Context, c *mongo.Collection, ids []string, perID bool, what string) (map[string]T, error) {
	found := make(map[string]T, len(ids))
	if len(ids) == 0 {
		return found, nil
	}
	// one reads the document of ids[i] into docs[i], if there is one.
	docs := make([]T, len(ids))
	ok := make([]bool, len(ids))
	one := func(ctx context.Context, i int) error {
		err := c.FindOne(ctx, ByID(ids[i])).Decode(&docs[i])
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("find %s: %w", what, err)
		}
		ok[i] = true
		return nil
	}
	if perID || len(ids) == 1 {
		if len(ids) == 1 { // the hot case (a refresh's revocation): no goroutine for it
			if err := one(ctx, 0); err != nil {
				return nil, err
			}
		} else {
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(perIDParallel)
			for i := range ids {
				g.Go(func() error { return one(gctx, i) })
			}
			if err := g.Wait(); err != nil {
				return nil, err
			}
		}
		for i, id := range ids {
			if ok[i] {
				found[id] = docs[i]
			}
		}
		return found, nil
	}
	cur, err := c.Find(ctx, ByIDs(ids))
	if err != nil {
		return nil, fmt.Errorf("find %s: %w", what, err)
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	for _, d := range raws {
		var v T
		if err := bson.Unmarshal(d, &v); err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		id, _ := d.Lookup("_id").StringValueOK()
		found[id] = v
	}
	return found, nil
}

// perIDParallel bounds the look-ups FindByIDs has in flight on a server that needs one per id:
// enough to hide a round trip, few enough not to crowd out other requests.
const perIDParallel = 8

// Join sets on each item what the record of c with the item's id says (set), for the items
// that have one: how a store joins the records that point at others, such as the revocations
// of sessions or keys. One item is one _id look-up (the only filter FerretDB v1 does not
// answer with a scan); more are one $in (JoinEach reads them one by one where that scans).
func Join[T, R any](ctx context.Context, c *mongo.Collection, items []T, id func(T) string, set func(*T, R), what string) ([]T, error) {
	return JoinEach(ctx, c, items, id, set, false, what)
}

// JoinEach is Join reading the records as FindByIDs does: with perID, one _id look-up per item,
// for a server that would scan for the $in.
func JoinEach[T, R any](ctx context.Context, c *mongo.Collection, items []T, id func(T) string, set func(*T, R), perID bool, what string) ([]T, error) {
	if len(items) == 0 {
		return items, nil
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = id(it)
	}
	byID, err := FindByIDs[R](ctx, c, ids, perID, what)
	if err != nil {
		return nil, err
	}
	for i := range items {
		if r, ok := byID[id(items[i])]; ok {
			set(&items[i], r)
		}
	}
	return items, nil
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
