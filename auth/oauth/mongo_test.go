package oauth_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/auth/oauth/oauthtest"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

func TestShouldPassTheStoreConformanceSuiteOnMongo(t *testing.T) {
	oauthtest.Run(t, func(t *testing.T) oauth.Store {
		return newStore(t, mongotest.Database(t))
	})
}

// newStore returns a store on db with the embedded store's _id index already made (the server
// makes it every few seconds): until then a look-up by _id scans, and the unique _id index the
// redemptions race on is FerretDB's own either way.
func newStore(t *testing.T, db *mongo.Database) *oauth.MongoStore {
	t.Helper()
	ctx := context.Background()
	s, err := oauth.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatalf("new mongo store: %v", err)
	}
	if err := mongotest.IndexIDs(ctx); err != nil {
		t.Fatalf("index _id: %v", err)
	}
	return s
}

// A restart opens the store on collections it made before: nothing is lost or refused.
func TestShouldOpenTheStoreAgainOnTheSameDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := mongotest.Database(t)
	t0 := conformance.Now()
	first := newStore(t, db)
	conformance.MustOK(t, "create client", first.CreateClient(ctx, oauthtest.NewClient("cl_1", t0)))
	conformance.MustOK(t, "create code", first.CreateCode(ctx, oauthtest.NewCode("hash_a", "cl_1", t0)))
	conformance.MustOK(t, "redeem", first.RedeemCode(ctx, "hash_a", t0))

	again := newStore(t, db)
	_, err := again.GetClient(ctx, "cl_1")
	conformance.MustOK(t, "get the client after a restart", err)
	_, err = again.GetCode(ctx, "hash_a")
	conformance.MustOK(t, "get the code after a restart", err)
	conformance.MustErr(t, "redeem after a restart", again.RedeemCode(ctx, "hash_a", t0), storeerr.ErrAlreadyExists)
}

// commands records the filters of the commands a client sends while recording is on.
type commands struct {
	mu        sync.Mutex
	recording bool
	seen      []string // "<command> <filter>"
	filters   []bson.Raw
}

func (c *commands) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.recording {
			return
		}
		var filters []bson.Raw
		switch e.CommandName {
		case "find":
			filters = append(filters, e.Command.Lookup("filter").Document())
		case "delete":
			vals, _ := e.Command.Lookup("deletes").Array().Values()
			for _, v := range vals {
				filters = append(filters, v.Document().Lookup("q").Document())
			}
		case "insert":
			// Selects nothing.
		default:
			// Anything else (an update, an aggregate, findAndModify) is not an _id look-up.
			filters = append(filters, nil)
		}
		for _, f := range filters {
			c.seen = append(c.seen, e.CommandName+" "+f.String())
			c.filters = append(c.filters, f)
		}
	}}
}

func (c *commands) record(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recording = on
	if on {
		c.seen, c.filters = nil, nil
	}
}

// onlyIDEqualities fails t unless something was recorded and every recorded filter is exactly
// {_id: <string>}: the one filter FerretDB v1 answers without a scan.
func (c *commands) onlyIDEqualities(t *testing.T, what string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) == 0 {
		t.Errorf("%s: no look-up recorded", what)
	}
	for i, f := range c.filters {
		elems, err := f.Elements()
		ok := err == nil && len(elems) == 1 && elems[0].Key() == "_id"
		if ok {
			_, ok = elems[0].Value().StringValueOK()
		}
		if !ok {
			t.Errorf("%s: %s is not an _id equality", what, c.seen[i])
		}
	}
}

// Among many other clients and codes, every read and delete the store makes selects one _id:
// on FerretDB a look-up, never a scan.
func TestShouldLookUpClientsAndCodesOnlyByID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var cmds commands
	db := mongotest.MonitoredDatabase(t, cmds.monitor())
	s := newStore(t, db)
	t0 := conformance.Now()
	for i := range 20 {
		conformance.MustOK(t, "create client", s.CreateClient(ctx, oauthtest.NewClient(fmt.Sprintf("cl_other%02d", i), t0)))
		conformance.MustOK(t, "create code", s.CreateCode(ctx, oauthtest.NewCode(fmt.Sprintf("hash_other%02d", i), "cl_other00", t0)))
	}
	conformance.MustOK(t, "create client", s.CreateClient(ctx, oauthtest.NewClient("cl_1", t0)))
	conformance.MustOK(t, "create code", s.CreateCode(ctx, oauthtest.NewCode("hash_a", "cl_1", t0)))
	if err := mongotest.IndexIDs(ctx); err != nil {
		t.Fatalf("index _id: %v", err)
	}

	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"getting a client", func() error { _, err := s.GetClient(ctx, "cl_1"); return err }},
		{"getting an unknown client", func() error { return wantNotFound(s.GetClient(ctx, "cl_nope")) }},
		{"getting a code", func() error { _, err := s.GetCode(ctx, "hash_a"); return err }},
		{"getting an unknown code", func() error { return wantNotFound(s.GetCode(ctx, "hash_nope")) }},
		{"redeeming a code and reading it after", func() error {
			if err := s.RedeemCode(ctx, "hash_a", t0.Add(time.Second)); err != nil {
				return err
			}
			_, err := s.GetCode(ctx, "hash_a")
			return err
		}},
		{"deleting a client", func() error { return s.DeleteClient(ctx, "cl_1") }},
		{"deleting an unknown client", func() error {
			if err := s.DeleteClient(ctx, "cl_nope"); !errors.Is(err, storeerr.ErrNotFound) {
				return fmt.Errorf("delete unknown: %v, want not found", err)
			}
			return nil
		}},
	} {
		cmds.record(true)
		err := tc.run()
		cmds.record(false)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		cmds.onlyIDEqualities(t, tc.name)
	}
}

// wantNotFound turns a look-up's not found into success, and anything else into a failure.
func wantNotFound[T any](_ T, err error) error {
	if !errors.Is(err, storeerr.ErrNotFound) {
		return fmt.Errorf("got %v, want not found", err)
	}
	return nil
}
