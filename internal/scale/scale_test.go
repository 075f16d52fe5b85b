package scale_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/internal/benchratio"
	"github.com/bduf/mcpauth/internal/mongotest"
	"github.com/bduf/mcpauth/rbac"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

// population is a store seeded with n users: each with its name records, a session (and the
// user's session set), an API key (and the user's key set), a role assignment (its subject's
// first version and head), as the stores write them.
type population struct {
	users    *auth.MongoStore
	sessions *session.MongoStore
	keys     *apikey.Keys
	keyStore *apikey.MongoStore
	authz    *rbac.Authorizer
	lastID   string
	lastMail string
	lastSess string
	n        int
}

func seed(b *testing.B, n int) *population {
	b.Helper()
	ctx := context.Background()
	db := mongotest.Database(b)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var users, names, sessions, subjects, heads, sets, setHeads, keys, keySets, keySetHeads []any
	for i := range n {
		id, email, sid := fmt.Sprintf("usr_%06d", i), fmt.Sprintf("user%06d@example.com", i), fmt.Sprintf("ses_%06d", i)
		users = append(users, auth.User{ID: id, Email: email, OrgID: "acme", CreatedAt: now, UpdatedAt: now})
		names = append(names, bson.D{{Key: "_id", Value: "email:" + email}, {Key: "user_id", Value: id}, {Key: "at", Value: now}})
		sessions = append(sessions, session.Session{ID: sid, UserID: id, OrgID: "acme", CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour)})
		subject := bson.D{{Key: "org_id", Value: "acme"}, {Key: "user_id", Value: id}, {Key: "version", Value: 1},
			{Key: "assignments", Value: bson.A{rbac.Assignment{UserID: id, OrgID: "acme", Role: rbac.BuiltinRoles()[i%4], CreatedAt: now}}},
			{Key: "grants", Value: bson.A{}}}
		subjects = append(subjects, append(bson.D{{Key: "_id", Value: "acme/" + id + "/0000000001"}}, subject...))
		heads = append(heads, append(bson.D{{Key: "_id", Value: "acme/" + id}}, subject...))
		set := bson.D{{Key: "version", Value: 1}, {Key: "user_id", Value: id}, {Key: "sessions", Value: bson.A{sid}}}
		sets = append(sets, append(bson.D{{Key: "_id", Value: id + "/0000000001"}}, set...))
		setHeads = append(setHeads, append(bson.D{{Key: "_id", Value: id}}, set...))
		kid := fmt.Sprintf("key_%06d", i)
		keys = append(keys, apikey.Key{ID: kid, UserID: id, OrgID: "acme", Name: "ci", SecretHash: "x", Permissions: []string{"projects:read"}, CreatedAt: now})
		// A key set's entry as apikey stores it: "<created ms> <expires ms, 0: never> - <id>".
		keySet := bson.D{{Key: "version", Value: 1}, {Key: "user_id", Value: id}, {Key: "keys", Value: bson.A{fmt.Sprintf("%d 0 - %s", now.UnixMilli(), kid)}}}
		keySets = append(keySets, append(bson.D{{Key: "_id", Value: id + "/0000000001"}}, keySet...))
		keySetHeads = append(keySetHeads, append(bson.D{{Key: "_id", Value: id}}, keySet...))
	}
	for coll, docs := range map[string][]any{"users": users, "user_names": names, "sessions": sessions,
		"rbac_subjects": subjects, "rbac_subject_heads": heads,
		"user_sessions": sets, "user_session_heads": append(setHeads, bson.D{{Key: "_id", Value: "meta:user-sessions-v1"}}),
		"api_keys": keys, "api_key_sets": keySets, "api_key_set_heads": append(keySetHeads, bson.D{{Key: "_id", Value: "meta/backfilled-v1"}})} {
		if _, err := db.Collection(coll).InsertMany(ctx, docs); err != nil {
			b.Fatalf("seed %s: %v", coll, err)
		}
	}
	return open(b, db, n)
}

func open(b *testing.B, db *mongo.Database, n int) *population {
	b.Helper()
	ctx := context.Background()
	users, err := auth.NewMongoStore(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	sessions, err := session.NewMongoStore(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	keyStore, err := apikey.NewMongoStore(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	rbacStore, err := rbac.NewMongoStore(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	if err := mongotest.IndexIDs(ctx); err != nil {
		b.Fatal(err)
	}
	return &population{users: users, sessions: sessions, keyStore: keyStore,
		keys:   apikey.NewKeys(keyStore, session.NewLocalRevocations(time.Now), time.Now, time.Hour),
		authz:  rbac.NewAuthorizer(rbac.Config{Store: rbacStore, CacheLimit: -1}), // every decision cold
		lastID: fmt.Sprintf("usr_%06d", n-1), lastMail: fmt.Sprintf("user%06d@example.com", n-1), lastSess: fmt.Sprintf("ses_%06d", n-1), n: n}
}

// BenchmarkScale: each hot look-up for the last user seeded (a scan would reach it last), at 10,
// 1,000 and 100,000 users, and its ratio 100,000/10 (flat is 1). user_list's first page reads the
// organization's directory (auth/directory.go): 10 users at the smallest size, 50 at the others.
func BenchmarkScale(b *testing.B) {
	ctx := context.Background()
	sizes := []int{10, 1_000, 100_000}
	pops := map[int]*population{}
	for _, n := range sizes {
		pops[n] = seed(b, n)
	}
	miss := apikey.WellFormed()
	ops := []struct {
		name string
		do   func(p *population) error
	}{
		{"login-lookup", func(p *population) error { _, err := p.users.GetUserByEmail(ctx, p.lastMail); return err }},
		{"user-by-id", func(p *population) error { _, err := p.users.GetUser(ctx, p.lastID); return err }},
		{"cold-authorization", func(p *population) error {
			if d := p.authz.Authorize(ctx, rbac.Request{Subject: p.lastID, OrgID: "acme", Resource: "projects", Action: "read"}); !d.Allowed {
				return fmt.Errorf("denied: %s", d.Reason)
			}
			return nil
		}},
		{"apikey-miss", func(p *population) error {
			if _, err := p.keys.Check(ctx, miss); err == nil {
				return fmt.Errorf("an unknown key was accepted")
			}
			return nil
		}},
		{"session-read", func(p *population) error { _, err := p.sessions.GetSession(ctx, p.lastSess); return err }},
		{"user-sessions", func(p *population) error {
			sessions, err := p.sessions.ListUserSessions(ctx, p.lastID)
			if err == nil && len(sessions) != 1 {
				err = fmt.Errorf("the user has %d sessions listed, want 1", len(sessions))
			}
			return err
		}},
		{"user-api-keys", func(p *population) error {
			keys, err := p.keyStore.ListAPIKeys(ctx, p.lastID)
			if err == nil && len(keys) != 1 {
				err = fmt.Errorf("the user has %d keys listed, want 1", len(keys))
			}
			return err
		}},
		{"user-list-first-page", func(p *population) error {
			users, _, err := p.users.ListUsers(ctx, auth.UserQuery{OrgID: "acme", Limit: 50})
			if err == nil && len(users) != min(50, p.n) {
				err = fmt.Errorf("the first page holds %d users", len(users))
			}
			return err
		}},
	}
	ratios := map[string][2]*benchratio.Samples{}
	for _, op := range ops {
		var first, last *benchratio.Samples
		for _, n := range sizes {
			p := pops[n]
			s := benchratio.Run(b, fmt.Sprintf("%s/users=%d", op.name, n), func(b *testing.B) {
				for b.Loop() {
					if err := op.do(p); err != nil {
						b.Fatal(err)
					}
				}
			})
			if first == nil {
				first = s
			}
			last = s
		}
		ratios[op.name+"-100k/10"] = [2]*benchratio.Samples{last, first}
	}
	benchratio.Report(b, ratios)
}
