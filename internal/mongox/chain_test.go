package mongox_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/internal/mongotest"
	"github.com/bduf/mcpauth/internal/mongox"
)

type counter struct {
	Key   string   `bson:"key"`
	Marks []string `bson:"marks"`
}

func (c counter) Tombstone() counter { return counter{Key: c.Key} }

func newChain(t *testing.T, keep int) (*mongox.Chain[counter], context.Context) {
	t.Helper()
	ctx := context.Background()
	db := mongotest.Database(t)
	for _, c := range []string{"versions", "heads"} {
		if err := db.CreateCollection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := mongotest.IndexIDs(ctx); err != nil {
		t.Fatal(err)
	}
	return mongox.NewChain[counter](db.Collection("versions"), db.Collection("heads"), "counter", keep), ctx
}

// addMark appends mark to the body of key "k".
func addMark(t *testing.T, ctx context.Context, c *mongox.Chain[counter], mark string) {
	t.Helper()
	if err := c.Change(ctx, "k", func(b *counter) error { b.Key = "k"; b.Marks = append(b.Marks, mark); return nil }); err != nil {
		t.Fatal(err)
	}
}

// headOf returns key "k"'s head as stored, for putHead to put back later: a slow replace of the
// head overtaken by later ones.
func headOf(t *testing.T, ctx context.Context, c *mongox.Chain[counter]) bson.Raw {
	t.Helper()
	var head bson.Raw
	if err := c.Heads().FindOne(ctx, bson.D{{Key: "_id", Value: "k"}}).Decode(&head); err != nil {
		t.Fatal(err)
	}
	return head
}

func putHead(t *testing.T, ctx context.Context, c *mongox.Chain[counter], head bson.Raw) {
	t.Helper()
	if _, err := c.Heads().ReplaceOne(ctx, bson.D{{Key: "_id", Value: "k"}}, head, options.Replace()); err != nil {
		t.Fatal(err)
	}
}

// Every change of many concurrent writers lands exactly once, whether versions are kept or
// pruned (keeping few, so that pruning runs throughout), and a pruned chain keeps exactly keep
// versions whole and a tombstone of each other one.
func TestShouldLandEveryConcurrentChangeOnceAndPruneToTombstones(t *testing.T) {
	const writers, each = 8, 25
	for _, keep := range []int{0, 4} {
		t.Run(fmt.Sprintf("keep=%d", keep), func(t *testing.T) {
			c, ctx := newChain(t, keep)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						mark := fmt.Sprintf("%d/%d", w, i)
						err := c.Change(ctx, "k", func(b *counter) error {
							b.Key = "k"
							b.Marks = append(b.Marks, mark)
							return nil
						})
						if err != nil {
							t.Errorf("change %s: %v", mark, err)
						}
					}
				})
			}
			wg.Wait()
			v, err := c.Latest(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, m := range v.Body.Marks {
				seen[m]++
			}
			if len(v.Body.Marks) != writers*each || len(seen) != writers*each {
				t.Fatalf("latest holds %d marks (%d distinct), want each of %d once", len(v.Body.Marks), len(seen), writers*each)
			}
			whole, err := c.Versions().CountDocuments(ctx, bson.D{{Key: "tombstone", Value: bson.D{{Key: "$ne", Value: true}}}})
			if err != nil {
				t.Fatal(err)
			}
			buried, err := c.Versions().CountDocuments(ctx, bson.D{{Key: "tombstone", Value: true}, {Key: "key", Value: "k"}})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case keep == 0 && (whole != writers*each || buried != 0):
				t.Errorf("%d versions whole and %d buried, want all %d whole", whole, buried, writers*each)
			case keep > 0 && (whole != int64(keep) || buried != int64(writers*each-keep)):
				t.Errorf("%d versions whole and %d tombstones (keeping the key), want %d and %d", whole, buried, keep, writers*each-keep)
			}
		})
	}
}

// A head put back to an old version (a slow replace overtaken by later ones) costs look-ups,
// never a change: reads and writes walk past the tombstones to the latest.
func TestShouldFindTheLatestPastAHeadThatLagsBehindTombstones(t *testing.T) {
	c, ctx := newChain(t, 4)
	addMark(t, ctx, c, "first")
	stale := headOf(t, ctx, c)
	for i := range 30 {
		addMark(t, ctx, c, fmt.Sprint(i))
	}
	putHead(t, ctx, c, stale)
	addMark(t, ctx, c, "after")
	v, err := c.Latest(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Body.Marks) != 32 || v.Body.Marks[0] != "first" || v.Body.Marks[31] != "after" {
		t.Fatalf("after a stale head the latest holds %v, want first, 0..29, after", v.Body.Marks)
	}
}

// An edit that refuses writes nothing and its error comes back; ErrUnchanged is no error.
func TestShouldWriteNothingForARefusedOrUnchangedEdit(t *testing.T) {
	c, ctx := newChain(t, 4)
	refused := errors.New("refused")
	if err := c.Change(ctx, "k", func(*counter) error { return refused }); !errors.Is(err, refused) {
		t.Fatalf("a refused edit: %v, want its error", err)
	}
	if err := c.Change(ctx, "k", func(*counter) error { return mongox.ErrUnchanged }); err != nil {
		t.Fatalf("an unchanged edit: %v", err)
	}
	if n, _ := c.Versions().CountDocuments(ctx, bson.D{}); n != 0 {
		t.Errorf("%d versions written by edits that wrote nothing", n)
	}
	v, err := c.Latest(ctx, "k")
	if err != nil || v.Version != 0 {
		t.Errorf("latest of a key never written: version %d, %v; want 0", v.Version, err)
	}
}

// A change takes the head for the latest version on its first attempt, so an edit that
// decides from the body (refuses, or finds nothing to do) is asked again on the latest
// when the head lags: its answer never rests on a stale body.
func TestShouldAskAnEditAgainOnTheLatestWhenTheHeadLags(t *testing.T) {
	c, ctx := newChain(t, 0)
	drop := func(mark string) func(*counter) error {
		return func(b *counter) error {
			if i := slices.Index(b.Marks, mark); i >= 0 {
				b.Marks = slices.Delete(b.Marks, i, i+1)
				return nil
			}
			return errors.New("not found")
		}
	}
	addMark(t, ctx, c, "first")
	stale := headOf(t, ctx, c)
	addMark(t, ctx, c, "second")
	putHead(t, ctx, c, stale)
	// A refusal: on the stale head "second" is absent, on the latest it is there to drop.
	if err := c.Change(ctx, "k", drop("second")); err != nil {
		t.Fatalf("an edit refusing on a stale head: %v, want it asked again on the latest", err)
	}
	// Nothing to do: on the stale head "third" is there already, on the latest it is not.
	addMark(t, ctx, c, "third")
	stale = headOf(t, ctx, c)
	if err := c.Change(ctx, "k", drop("third")); err != nil {
		t.Fatal(err)
	}
	putHead(t, ctx, c, stale)
	if err := c.Change(ctx, "k", func(b *counter) error {
		if slices.Contains(b.Marks, "third") {
			return mongox.ErrUnchanged
		}
		b.Marks = append(b.Marks, "third")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	v, err := c.Latest(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(v.Body.Marks); got != "[first third]" {
		t.Errorf("latest holds %s, want [first third]", got)
	}
}
