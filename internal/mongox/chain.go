package mongox

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A Chain keeps documents that change atomically and are read in two _id look-ups, on a server
// whose updates are not atomic and which filters in the database only an _id equality (FerretDB
// v1 on SQLite; MongoDB too, where it costs the same).
//
// Each document, by key, has versions: the versions collection holds one document per version,
// _id <key>/<version>, with the whole body; a change reads the latest version N and inserts
// N+1 with the change applied. The insert is the atomic step (a unique _id, atomic on FerretDB
// and MongoDB alike): of concurrent changes exactly one writes N+1, the others read it and try
// again on top of it, so no change is lost and none applied twice.
//
// The heads collection holds, per key, a copy of a recent version: a hint, written after each
// change (a plain replace, which FerretDB does not make atomic, so it may lag). A read takes the
// head, then looks for the version after it: usually absent, so the head is current (two
// look-ups); a lagging head costs one look-up per version it lags.
//
// With Keep = 0 versions are never removed, so the chain from any head to the latest version is
// always there (for bodies that change rarely: a subject's roles). With Keep = K, a change whose
// head was written removes the version K before it, so a key keeps about K versions (for bodies
// that change at every login: a user's sessions). That is safe while no head lags K versions:
// a head lags only by the changes whose own head write failed or was overtaken, and K = 32
// changes of one key each completing while one head write is in flight does not happen.
type Chain[T any] struct {
	versions, heads *mongo.Collection
	what            string
	keep            int64
}

// Version is a version of a chain's document as stored: Body's fields are the document's.
type Version[T any] struct {
	ID      string `bson:"_id"`
	Version int64  `bson:"version"`
	Body    T      `bson:",inline"`
}

// NewChain returns the chain of documents in versions and heads; what names them in errors;
// keep is how many versions of a key to keep (0: all).
func NewChain[T any](versions, heads *mongo.Collection, what string, keep int) *Chain[T] {
	return &Chain[T]{versions: versions, heads: heads, what: what, keep: int64(keep)}
}

// VersionID is the _id of version v of key.
func VersionID(key string, v int64) string { return key + fmt.Sprintf("/%010d", v) }

// ErrUnchanged, returned by an edit, ends a change without writing: the document stays as it is
// and Change returns nil.
var ErrUnchanged = errors.New("unchanged")

// maxChainRetries bounds how often a change is tried again on top of concurrent ones.
const maxChainRetries = 100

var errNone = errors.New("none")

// Latest returns the latest version of key (version 0 with a zero body when it has none).
func (c *Chain[T]) Latest(ctx context.Context, key string) (Version[T], error) {
	cur := Version[T]{ID: VersionID(key, 0)}
	head, err := FindOne[Version[T]](ctx, c.heads, ByID(key), c.what, errNone)
	switch {
	case err == nil:
		cur = head
	case !errors.Is(err, errNone):
		return Version[T]{}, err
	}
	for {
		next, err := FindOne[Version[T]](ctx, c.versions, ByID(VersionID(key, cur.Version+1)), c.what, errNone)
		if errors.Is(err, errNone) {
			cur.ID = VersionID(key, cur.Version)
			return cur, nil
		}
		if err != nil {
			return Version[T]{}, err
		}
		cur = next
	}
}

// Change applies edit to the latest body of key and writes the result as the next version;
// edit returns an error to refuse the change (nothing is written, Change returns it) or
// ErrUnchanged to write nothing. Edit may run more than once (once per concurrent change it
// loses to), each time on a freshly read body, so it must not keep state across calls except
// what it recomputes.
func (c *Chain[T]) Change(ctx context.Context, key string, edit func(body *T) error) error {
	for range maxChainRetries {
		cur, err := c.Latest(ctx, key)
		if err != nil {
			return err
		}
		if err := edit(&cur.Body); err != nil {
			if errors.Is(err, ErrUnchanged) {
				return nil
			}
			return err
		}
		next := Version[T]{ID: VersionID(key, cur.Version+1), Version: cur.Version + 1, Body: cur.Body}
		_, err = c.versions.InsertOne(ctx, next)
		if mongo.IsDuplicateKeyError(err) {
			continue // a concurrent change wrote this version: try again on top of it
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", c.what, err)
		}
		head := next
		head.ID = key
		// Only a hint: if the replace fails, reads find the version written above by looking
		// past the head, so its error changes nothing (and nothing is removed then).
		if _, err := c.heads.ReplaceOne(ctx, ByID(key), head, options.Replace().SetUpsert(true)); err == nil && c.keep > 0 && next.Version > c.keep {
			// Best effort too: a version left behind is only space.
			_, _ = c.versions.DeleteOne(ctx, ByID(VersionID(key, next.Version-c.keep)))
		}
		return nil
	}
	return fmt.Errorf("write %s: %d concurrent changes in a row", c.what, maxChainRetries)
}

// Erase removes the versions and heads that filter selects (a scan on FerretDB: for erasures,
// an administrator's act). Heads go last, so an interrupted erase leaves the latest state
// readable, and running it again finishes it.
func (c *Chain[T]) Erase(ctx context.Context, filter bson.D) error {
	if _, err := c.versions.DeleteMany(ctx, filter); err != nil {
		return fmt.Errorf("erase %s: %w", c.what, err)
	}
	if _, err := c.heads.DeleteMany(ctx, filter); err != nil {
		return fmt.Errorf("erase %s: %w", c.what, err)
	}
	return nil
}

// Versions is the collection of every version (for queries over them, such as the backfill of
// a chain or a sweep that must find keys by content).
func (c *Chain[T]) Versions() *mongo.Collection { return c.versions }

// Heads is the collection of heads.
func (c *Chain[T]) Heads() *mongo.Collection { return c.heads }
