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
// _id <key>/<version>, with the whole body; a change reads the latest version N and inserts N+1
// with the change applied. The insert is the atomic step (a unique _id, atomic on FerretDB and
// MongoDB alike): of concurrent changes exactly one writes N+1, the others read it and try again
// on top of it, so no change is lost and none applied twice.
//
// The heads collection holds, per key, a copy of a recent version: a hint, written after each
// change (a plain replace, which FerretDB does not make atomic, so it may lag: a slow replace can
// even put an older version back). A read takes the head, then looks for the versions after it:
// usually there is none, so the head is current (two look-ups); a lagging head costs one look-up
// per version it lags. Correctness never depends on the head.
//
// With keep = 0 versions are kept forever (for bodies that change rarely: a subject's roles).
// With keep = K (for bodies that change often: a user's sessions), writing version N replaces
// version N-K by a tombstone: the body's Tombstone (a Tombstoner keeps what erasing needs to find
// it, such as the user id) or an empty one. A tombstone keeps its _id taken, which is what makes
// pruning safe: a change whose read lagged (it took an old version for the latest) tries to
// insert a version that exists, as a tombstone or not, and tries again; were old versions
// deleted instead, its insert would succeed and silently drop every change after its base (it
// did, with eight writers, in the directory's conformance test). A read walks past tombstones;
// the latest version is never one. So a key costs K versions plus one small document per change.
type Chain[T any] struct {
	versions, heads *mongo.Collection
	what            string
	keep            int64
}

// A Tombstoner is a body that says what its versions' tombstones keep (the fields erasing
// filters on).
type Tombstoner[T any] interface {
	Tombstone() T
}

// Version is a version of a chain's document as stored: Body's fields are the document's.
type Version[T any] struct {
	ID        string `bson:"_id"`
	Version   int64  `bson:"version"`
	Tombstone bool   `bson:"tombstone,omitempty"`
	Body      T      `bson:",inline"`
}

// NewChain returns the chain of documents in versions and heads; what names them in errors;
// keep is how many versions of a key stay whole (0: all).
func NewChain[T any](versions, heads *mongo.Collection, what string, keep int) *Chain[T] {
	return &Chain[T]{versions: versions, heads: heads, what: what, keep: int64(keep)}
}

func versionID(key string, v int64) string { return key + fmt.Sprintf("/%010d", v) }

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
	for range maxChainRetries {
		var cur Version[T]
		head, ok, err := c.find(ctx, c.heads, key)
		if err != nil {
			return Version[T]{}, err
		}
		if ok {
			cur = head
		}
		for {
			next, ok, err := c.find(ctx, c.versions, versionID(key, cur.Version+1))
			if err != nil {
				return Version[T]{}, err
			}
			if !ok {
				break
			}
			cur = next
		}
		if !cur.Tombstone { // a tombstone last: versions written and pruned while walking
			cur.ID = versionID(key, cur.Version)
			return cur, nil
		}
	}
	return Version[T]{}, fmt.Errorf("read %s: %d changes in a row while reading", c.what, maxChainRetries)
}

// Change applies edit to the latest body of key and writes the result as the next version;
// edit returns an error to refuse the change (nothing is written, Change returns it) or
// ErrUnchanged to write nothing. Edit may run more than once (once per concurrent change it
// loses to), each time on a freshly read body, so it must not keep state across calls except
// what it recomputes.
//
// The first attempt takes the head for the latest version without looking past it (one look-up
// instead of two): the head is usually current, and when it lags the insert of the version
// after it finds that version taken, and the next attempt reads the latest through Latest. An
// edit that refuses or changes nothing on the head alone is asked again on the latest, so no
// answer rests on a stale body.
func (c *Chain[T]) Change(ctx context.Context, key string, edit func(body *T) error) error {
	for attempt := range maxChainRetries {
		cur, err := c.base(ctx, key, attempt == 0)
		if err != nil {
			return err
		}
		if err := edit(&cur.Body); err != nil {
			if attempt == 0 {
				continue // an answer from the head alone may be stale: only the latest decides
			}
			if errors.Is(err, ErrUnchanged) {
				return nil
			}
			return err
		}
		next := Version[T]{ID: versionID(key, cur.Version+1), Version: cur.Version + 1, Body: cur.Body}
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
		// past the head, so its error changes nothing.
		_, _ = c.heads.ReplaceOne(ctx, ByID(key), head, options.Replace().SetUpsert(true))
		if c.keep > 0 && next.Version > c.keep {
			c.bury(ctx, key, next.Version-c.keep, next.Body)
		}
		return nil
	}
	return fmt.Errorf("write %s: %d concurrent changes in a row", c.what, maxChainRetries)
}

// base is the version a change builds on: the latest, or with headOnly the head (version 0 when
// there is none), which a change may take for the latest because its insert checks it.
func (c *Chain[T]) base(ctx context.Context, key string, headOnly bool) (Version[T], error) {
	if !headOnly {
		return c.Latest(ctx, key)
	}
	head, ok, err := c.find(ctx, c.heads, key)
	if err != nil || !ok {
		return Version[T]{}, err
	}
	head.ID = versionID(key, head.Version)
	return head, nil
}

// bury replaces version v of key by its tombstone (best effort: a version left whole is only
// space).
func (c *Chain[T]) bury(ctx context.Context, key string, v int64, body T) {
	var rest T
	if t, ok := any(body).(Tombstoner[T]); ok {
		rest = t.Tombstone()
	}
	_, _ = c.versions.ReplaceOne(ctx, ByID(versionID(key, v)), Version[T]{ID: versionID(key, v), Version: v, Tombstone: true, Body: rest})
}

// Begin writes body as the first version of key, for a backfill: false if key has a version
// already (nothing is written then).
func (c *Chain[T]) Begin(ctx context.Context, key string, body T) (bool, error) {
	_, err := c.versions.InsertOne(ctx, Version[T]{ID: versionID(key, 1), Version: 1, Body: body})
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
