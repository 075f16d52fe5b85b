package mongox_test

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/bduf/mcpauth/internal/mongotest"
	"github.com/bduf/mcpauth/internal/mongox"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

type doc struct {
	ID   string `bson:"_id"`
	Name string `bson:"name"`
}

type withNote struct {
	ID, Note string
}

// Reading by _ids one look-up each (for FerretDB) or by one $in gives the same answer: the
// documents that exist, the missing ids left out; Join sets what it finds on its items.
func TestShouldReadByIDsTheSameWayOneByOneOrByIn(t *testing.T) {
	ctx := context.Background()
	c := mongotest.Database(t).Collection("docs")
	for _, id := range []string{"a", "b", "c"} {
		if _, err := c.InsertOne(ctx, doc{ID: id, Name: "name of " + id}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name     string
		oneByOne bool
		ids      []string
		want     []string
	}{
		{"no ids read nothing", false, nil, nil},
		{"one id by $in", false, []string{"b"}, []string{"b"}},
		{"many ids by $in leave out the missing ones", false, []string{"c", "x", "a"}, []string{"a", "c"}},
		{"one id by look-up", true, []string{"b"}, []string{"b"}},
		{"many ids one by one leave out the missing ones", true, []string{"c", "x", "a"}, []string{"a", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := mongox.FindByIDs[doc](ctx, c, tc.ids, tc.oneByOne, "docs")
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, d := range got {
				if d.Name != "name of "+d.ID {
					t.Errorf("document %+v decoded wrong", d)
				}
				ids = append(ids, d.ID)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, tc.want) {
				t.Errorf("found %v, want %v", ids, tc.want)
			}

			items := make([]withNote, len(tc.ids))
			for i, id := range tc.ids {
				items[i].ID = id
			}
			joined, err := mongox.Join(ctx, c, tc.oneByOne, items, func(w withNote) string { return w.ID },
				func(w *withNote, d doc) { w.Note = d.Name }, "docs")
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range joined {
				want := ""
				if slices.Contains(tc.want, w.ID) {
					want = "name of " + w.ID
				}
				if w.Note != want {
					t.Errorf("joined %+v, want note %q", w, want)
				}
			}
		})
	}
}

// Without its database, a read by _ids fails either way: never an empty answer.
func TestShouldFailAReadByIDsWithoutTheDatabase(t *testing.T) {
	ctx := context.Background()
	db, lose := mongotest.LosableDatabase(t)
	c := db.Collection("docs")
	if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	lose()
	for _, oneByOne := range []bool{false, true} {
		if got, err := mongox.FindByIDs[doc](ctx, c, []string{"a", "b"}, oneByOne, "docs"); err == nil {
			t.Errorf("one by one %v: %v without an error", oneByOne, got)
		}
	}
}
