package mongox

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// A Chain keeps documents that change atomically and are read in a few _id look-ups, on a
// server whose updates are not atomic and which filters in the database only an _id equality
// (FerretDB v1 on SQLite; MongoDB too, where it costs the same).
//
// Each document, by key, has versions: the versions collection holds one document per version
// with the whole body; a change reads the latest version and inserts the next one with the
// change applied. The insert is the atomic step (a unique _id, atomic on FerretDB and MongoDB
// alike): of concurrent changes exactly one writes a version, the others read it and try again
// on top of it, so no change is lost and none applied twice.
//
// The heads collection holds, per key, a copy of a recent version: a hint, written after each
// change (a plain replace, which FerretDB does not make atomic, so it may lag: a slow replace
// can even put an older version back). A read takes the head, then looks for the versions after
// it: usually there are none, so the head is current; a lagging head costs one look-up per
// version it lags. Correctness never depends on the head.
//
// With keep = 0 versions are never removed (_id <key>/<version>): a read is two look-ups (the
// head, the version after it), for bodies that change rarely (a subject's roles). With keep = C,
// for bodies that change often (a user's sessions), versions come in generations of C
// (_id <key>/<generation>/<version>), and writing version v of generation g removes version v
// of generation g-2, so a key keeps about 2C versions. The first version of each generation,
// its anchor, is never removed (one body per C changes stays: space, not time). A read finds the
// latest generation through the anchors after the head's, then the latest version in it:
// three look-ups (head, next anchor, next version). A version is only ever removed two
// generations behind the latest, which a read does not walk; and a change checks, after its
// insert, that no later generation has begun: if one has, its base was stale (read before
// the generation began, and its own version may have been one removed and written again), so it
// removes what it wrote and tries again. Removing versions without that would let a change
// whose read lagged build on an old version and lose the changes after it.
type Chain[T any] struct {
	versions, heads *mongo.Collection
	what            string
	gen             int64 // versions per generation; 0: one unbounded generation, never pruned
}

// Version is a version of a chain's document as stored: Body's fields are the document's.
type Version[T any] struct {
	ID         string `bson:"_id"`
	Generation int64  `bson:"generation,omitempty"`
	Version    int64  `bson:"version"`
	Body       T      `bson:",inline"`
}

// NewChain returns the chain of documents in versions and heads; what names them in errors;
// keep is the size of a generation (0: versions are kept forever).
func NewChain[T any](versions, heads *mongo.Collection, what string, keep int) *Chain[T] {
	return &Chain[T]{versions: versions, heads: heads, what: what, gen: int64(keep)}
}

// VersionID is the _id of version v of key in a chain that keeps every version.
func VersionID(key string, v int64) string { return key + fmt.Sprintf("/%010d", v) }

func (c *Chain[T]) id(key string, g, v int64) string {
	if c.gen == 0 {
		return VersionID(key, v)
	}
	return key + fmt.Sprintf("/%08d/%06d", g, v)
}

// ErrUnchanged, returned by an edit, ends a change without writing: the document stays as it is
// and Change returns nil.
var ErrUnchanged = errors.New("unchanged")

// maxChainRetries bounds how often a change is tried again on top of concurrent ones.
const maxChainRetries = 100

var errNone = errors.New("none")

func (c *Chain[T]) find(ctx context.Context, coll *mongo.Collection, id string) (Version[T], bool, error) {
	v, err := FindOne[Version[T]](ctx, coll, ByID(id), c.what, errNone)
	if errors.Is(err, errNone) {
		return v, false, nil
	}
	return v, err == nil, err
}

// Latest returns the latest version of key (version 0 with a zero body when it has none).
func (c *Chain[T]) Latest(ctx context.Context, key string) (Version[T], error) {
	cur := Version[T]{Generation: 1}
	if c.gen == 0 {
		cur.Generation = 0
	}
	head, ok, err := c.find(ctx, c.heads, key)
	if err != nil {
		return Version[T]{}, err
	}
	if ok {
		cur = head
	}
	if c.gen > 0 {
		for { // the latest generation: anchors are never removed
			anchor, ok, err := c.find(ctx, c.versions, c.id(key, cur.Generation+1, 1))
			if err != nil {
				return Version[T]{}, err
			}
			if !ok {
				break
			}
			cur = anchor
		}
	}
	for c.gen == 0 || cur.Version < c.gen {
		next, ok, err := c.find(ctx, c.versions, c.id(key, cur.Generation, cur.Version+1))
		if err != nil {
			return Version[T]{}, err
		}
		if !ok {
			break
		}
		cur = next
	}
	cur.ID = c.id(key, cur.Generation, cur.Version)
	return cur, nil
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
		next := Version[T]{Generation: cur.Generation, Version: cur.Version + 1, Body: cur.Body}
		if c.gen > 0 && next.Version > c.gen {
			next.Generation, next.Version = next.Generation+1, 1
		}
		next.ID = c.id(key, next.Generation, next.Version)
		_, err = c.versions.InsertOne(ctx, next)
		if mongo.IsDuplicateKeyError(err) {
			continue // a concurrent change wrote this version: try again on top of it
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", c.what, err)
		}
		if c.gen > 0 {
			_, later, err := c.find(ctx, c.versions, c.id(key, next.Generation+1, 1))
			if err != nil || later {
				// Built on a stale read (or not known not to be): take it back and try again.
				// Readers never walk this generation again, so what it held meanwhile is unseen.
				if _, derr := c.versions.DeleteOne(ctx, ByID(next.ID)); derr != nil && err == nil {
					err = derr
				}
				if err != nil {
					return fmt.Errorf("write %s: %w", c.what, err)
				}
				continue
			}
		}
		head := next
		head.ID = key
		// Only a hint: if the replace fails, reads find the version written above by looking
		// past the head, so its error changes nothing.
		_, _ = c.heads.ReplaceOne(ctx, ByID(key), head, options.Replace().SetUpsert(true))
		if c.gen > 0 && next.Version > 1 && next.Generation > 2 {
			// Best effort too: a version left behind is only space.
			_, _ = c.versions.DeleteOne(ctx, ByID(c.id(key, next.Generation-2, next.Version)))
		}
		return nil
	}
	return fmt.Errorf("write %s: %d concurrent changes in a row", c.what, maxChainRetries)
}

// Begin writes body as the first version of key, for a backfill: false if key has a version
// already (nothing is written then).
func (c *Chain[T]) Begin(ctx context.Context, key string, body T) (bool, error) {
	first := Version[T]{ID: c.id(key, 1, 1), Version: 1, Body: body}
	if c.gen > 0 {
		first.Generation = 1
	}
	_, err := c.versions.InsertOne(ctx, first)
	if mongo.IsDuplicateKeyError(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("write %s: %w", c.what, err)
	}
	return true, nil
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
