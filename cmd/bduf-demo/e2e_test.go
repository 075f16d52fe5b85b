package main

// End-to-end tests of the guarded orchestrator: the real bduf-demo binary, driven over stdio and
// streamable HTTP by mcp-go's client. Two of them run two processes: one on a data directory
// restarted with another audience, and two instances sharing one MongoDB-wire server and one
// redis-server.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/embedmongo"
	"github.com/bduf/mcpauth/internal/mcptest"
	"github.com/bduf/mcpauth/internal/redistest"
)

// binPath is the bduf-demo binary built by TestMain.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(mcptest.BuildMain(m, ".", &binPath))
}

type args = mcptest.Args

// demoTools are the orchestrator's own tools.
var demoTools = []string{"analyses_read", "projects_create", "projects_delete", "projects_list", "requirements_write", "tasks_write"}

type projectView struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	OrgID        string   `json:"org_id"`
	OwnerID      string   `json:"owner_id"`
	Requirements []string `json:"requirements"`
	Tasks        []string `json:"tasks"`
}

type projectResult struct {
	Project projectView `json:"project"`
}

type projectList struct {
	Projects []projectView `json:"projects"`
}

type analysis struct {
	ProjectID    string `json:"project_id"`
	Requirements int    `json:"requirements"`
	Tasks        int    `json:"tasks"`
}

type deleted struct {
	Deleted bool   `json:"deleted"`
	ID      string `json:"id"`
}

// wantTools checks that tools/list shows c's identity every tool of want and none of wantNot.
func wantTools(t *testing.T, c *mcptest.Conn, who string, want, wantNot []string) {
	t.Helper()
	names := c.ListTools(t)
	for _, name := range want {
		if !slices.Contains(names, name) {
			t.Errorf("%s: tools/list for %s lacks %s (has %v)", c.Kind, who, name, names)
		}
	}
	for _, name := range wantNot {
		if slices.Contains(names, name) {
			t.Errorf("%s: tools/list for %s shows %s, which it may not call (has %v)", c.Kind, who, name, names)
		}
	}
}

// transports are the ways a test reaches a bduf-demo of an instance.
var transports = []struct {
	name string
	dial func(t *testing.T, in *mcptest.Instance) *mcptest.Conn
}{
	{"stdio", func(t *testing.T, in *mcptest.Instance) *mcptest.Conn { return mcptest.DialStdio(t, binPath, in.Env()) }},
	{"streamable_http", func(t *testing.T, in *mcptest.Instance) *mcptest.Conn {
		return mcptest.DialHTTP(t, mcptest.StartHTTP(t, binPath, in.Env(), "http"))
	}},
}

func TestShouldLetEachRoleDoWhatItsPermissionsAllow(t *testing.T) {
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := mcptest.NewInstance(t)
			sec := &mcptest.Secrets{}
			sec.Add(in.OwnerPassword)
			c := tc.dial(t, in)
			runRoles(t, c, in, sec)
			sec.CheckNotIn(t, "bduf-demo stderr", c.Stderr.String())
		})
	}
}

func runRoles(t *testing.T, c *mcptest.Conn, in *mcptest.Instance, sec *mcptest.Secrets) {
	// Anonymous: none of the orchestrator's tools is shown or callable.
	wantTools(t, c, "an anonymous caller", []string{"auth_login"}, demoTools)
	c.WantUnauthorized(t, "projects_list", nil, "UNAUTHENTICATED")
	c.WantUnauthorized(t, "projects_delete", args{"project_id": 42}, "UNAUTHENTICATED") // the guard comes before the arguments

	// The owner sets up a project and two colleagues.
	owner := c.Login(t, sec, in.Owner()).User
	wantTools(t, c, "the owner", append(slices.Clone(demoTools), "role_assign", "user_create"), nil)
	password := "e2e-Demo-" + mcptest.RandomHex(8)
	sec.Add(password)
	c.CreateUser(t, "viewer@example.com", password, "viewer")
	c.CreateUser(t, "contributor@example.com", password, "contributor")
	p := mcptest.Decode[projectResult](t, c.Call(t, "projects_create", args{"name": "Apollo"})).Project
	if !strings.HasPrefix(p.ID, "prj_") || p.Name != "Apollo" || p.OrgID != "default" || p.OwnerID != owner.ID {
		t.Fatalf("projects_create: %+v", p)
	}
	if got := mcptest.Decode[projectResult](t, c.Call(t, "requirements_write", args{"project_id": p.ID, "text": "must fly"})).Project; !slices.Equal(got.Requirements, []string{"must fly"}) {
		t.Fatalf("requirements_write: %+v", got)
	}
	// With valid credentials, argument errors reach the caller.
	c.Call(t, "projects_create", nil).WantFieldError(t, "name")
	c.Call(t, "requirements_write", args{"project_id": p.ID}).WantFieldError(t, "text")

	// A viewer lists projects and reads analyses, and neither sees nor may call the rest.
	c.Login(t, sec, args{"email": "viewer@example.com", "password": password})
	wantTools(t, c, "a viewer", []string{"projects_list", "analyses_read"},
		[]string{"projects_delete", "projects_create", "requirements_write", "tasks_write"})
	if l := mcptest.Decode[projectList](t, c.Call(t, "projects_list", nil)); len(l.Projects) != 1 || l.Projects[0].ID != p.ID {
		t.Fatalf("the viewer's projects_list: %+v", l)
	}
	if a := mcptest.Decode[analysis](t, c.Call(t, "analyses_read", args{"project_id": p.ID})); a.ProjectID != p.ID || a.Requirements != 1 || a.Tasks != 0 {
		t.Fatalf("the viewer's analyses_read: %+v", a)
	}
	// PERMISSION_DENIED over stdio, 403 insufficient_scope over HTTP.
	c.WantInsufficientScope(t, "projects_delete", args{"project_id": p.ID}, "projects:delete")
	c.WantInsufficientScope(t, "projects_delete", nil, "projects:delete")
	c.WantInsufficientScope(t, "projects_create", args{"name": "Gemini"}, "projects:write")
	c.WantInsufficientScope(t, "tasks_write", args{"project_id": p.ID, "text": "sneak in"}, "tasks:write")

	// A contributor writes tasks, but may not delete.
	c.Login(t, sec, args{"email": "contributor@example.com", "password": password})
	wantTools(t, c, "a contributor", []string{"tasks_write", "requirements_write", "projects_create", "projects_list"}, []string{"projects_delete"})
	got := mcptest.Decode[projectResult](t, c.Call(t, "tasks_write", args{"project_id": p.ID, "text": "wire the engines"})).Project
	if got.ID != p.ID || !slices.Equal(got.Tasks, []string{"wire the engines"}) || !slices.Equal(got.Requirements, []string{"must fly"}) {
		t.Fatalf("tasks_write: %+v", got)
	}
	c.Call(t, "tasks_write", args{"project_id": "prj_doesnotexist", "text": "x"}).WantError(t, "NOT_FOUND")
	c.Call(t, "tasks_write", args{"project_id": p.ID}).WantFieldError(t, "text")
	if a := mcptest.Decode[analysis](t, c.Call(t, "analyses_read", args{"project_id": p.ID})); a.Requirements != 1 || a.Tasks != 1 {
		t.Fatalf("analyses_read after tasks_write: %+v", a)
	}
	c.WantInsufficientScope(t, "projects_delete", args{"project_id": p.ID}, "projects:delete")

	// The owner deletes.
	c.Login(t, sec, in.Owner())
	if d := mcptest.Decode[deleted](t, c.Call(t, "projects_delete", args{"project_id": p.ID})); !d.Deleted || d.ID != p.ID {
		t.Fatalf("projects_delete: %+v", d)
	}
	if l := mcptest.Decode[projectList](t, c.Call(t, "projects_list", nil)); len(l.Projects) != 0 {
		t.Fatalf("projects_list after projects_delete: %+v", l)
	}
	c.Call(t, "projects_delete", args{"project_id": p.ID}).WantError(t, "NOT_FOUND")
}

func TestShouldRefuseHTTPWithoutATokenAndTokensForAnotherAudience(t *testing.T) {
	t.Parallel()
	in := mcptest.NewInstance(t)
	srv := mcptest.StartHTTP(t, binPath, in.Env("MCPAUTH_AUDIENCE=urn:bduf:a"), "http")
	prm := srv.URL + "/.well-known/oauth-protected-resource"

	// No token: 401 with a challenge pointing at the protected-resource metadata.
	r := mcptest.Post(t, srv.URL+"/mcp", "", mcptest.ToolsCallJSON(1, "projects_list", nil))
	r.Challenge().Want(t, http.StatusUnauthorized, "", prm+"/mcp") // no token sent: no error code (RFC 6750 §3.1)
	for _, url := range []string{prm, prm + "/mcp"} {
		md := mcptest.GetResourceMetadata(t, url)
		if md.Resource != "urn:bduf:a" || !slices.Equal(md.BearerMethodsSupported, []string{"header"}) ||
			!slices.Contains(md.ScopesSupported, "projects:delete") || !slices.Contains(md.ScopesSupported, "tasks:write") {
			t.Errorf("GET %s: %+v", url, md)
		}
	}
	// The same through an MCP client: tools/list without the orchestrator's tools, a call refused.
	c := mcptest.DialHTTP(t, srv)
	wantTools(t, c, "an anonymous caller", []string{"auth_login"}, demoTools)
	c.WantUnauthorized(t, "projects_list", nil, "")

	tok := c.Login(t, nil, in.Owner())
	mcptest.Decode[projectList](t, c.Call(t, "projects_list", nil))
	if r := mcptest.Post(t, srv.URL+"/mcp", tok.AccessToken, mcptest.ToolsCallJSON(2, "projects_list", nil)); r.Status == http.StatusUnauthorized {
		t.Fatalf("a raw POST with the owner's token: 401 %s", r.Header.Get("WWW-Authenticate"))
	}
	_ = c.Client.Close()
	srv.StopCleanly(t)

	// The same installation serving another resource: the token is not for it.
	srv = mcptest.StartHTTP(t, binPath, in.Env("MCPAUTH_AUDIENCE=urn:bduf:b"), "http")
	r = mcptest.Post(t, srv.URL+"/mcp", tok.AccessToken, mcptest.ToolsCallJSON(3, "projects_list", nil))
	ch := r.Challenge()
	ch.Want(t, http.StatusUnauthorized, "invalid_token", srv.URL+"/.well-known/oauth-protected-resource/mcp")
	// The client shows the user why: the JSON-RPC error names the code and the check that failed.
	if rf := ch.WantRefusal(t, mcptest.RPCUnauthorized, "TOKEN_INVALID"); string(rf.ID) != "3" || !strings.Contains(rf.Error.Message, "wrong audience") {
		t.Errorf("401 for another audience: %s, want the request's id 3 and the reason", ch.Body)
	}
	c = mcptest.DialHTTP(t, srv)
	c.SetBearer(tok.AccessToken)
	c.WantUnauthorized(t, "projects_list", nil, "TOKEN_INVALID")
	c.WantUnauthorized(t, "auth_whoami", nil, "TOKEN_INVALID")
	c.WantUnauthorized(t, "auth_validate", args{"token": tok.AccessToken}, "TOKEN_INVALID") // never taken for no token
	c.SetBearer("")
	c.Call(t, "auth_validate", args{"token": tok.AccessToken}).WantError(t, "TOKEN_INVALID")
	// A token for this audience works (the refusal was the audience, not the restart).
	c.Login(t, nil, in.Owner())
	mcptest.Decode[projectList](t, c.Call(t, "projects_list", nil))
	if md := mcptest.GetResourceMetadata(t, srv.URL+"/.well-known/oauth-protected-resource/mcp"); md.Resource != "urn:bduf:b" {
		t.Errorf("metadata after the restart: %+v", md)
	}
}

func TestShouldDenyTheNextCallAfterARoleIsRevoked(t *testing.T) {
	t.Run("streamable_http", func(t *testing.T) {
		t.Parallel()
		in := mcptest.NewInstance(t)
		srv := mcptest.StartHTTP(t, binPath, in.Env(), "http")
		owner := mcptest.DialHTTP(t, srv)
		owner.Login(t, nil, in.Owner())
		password := "e2e-Dev-" + mcptest.RandomHex(8)
		dev := owner.CreateUser(t, "dev@example.com", password, "contributor")
		p := mcptest.Decode[projectResult](t, owner.Call(t, "projects_create", args{"name": "Apollo"})).Project

		user := mcptest.DialHTTP(t, srv)
		user.Login(t, nil, args{"email": "dev@example.com", "password": password})
		write := args{"project_id": p.ID, "text": "wire the engines"}
		mcptest.Decode[projectResult](t, user.Call(t, "tasks_write", write))
		mcptest.Decode[projectList](t, user.Call(t, "projects_list", nil))
		wantTools(t, user, "a contributor", []string{"tasks_write", "projects_list"}, nil)

		mcptest.Decode[struct{ OK bool }](t, owner.Call(t, "role_revoke", args{"user_id": dev.ID, "role": "contributor"}))

		// The token still carries the scopes (the HTTP guard lets the call through); the live
		// check denies it.
		if w := mcptest.Decode[mcptest.Whoami](t, user.Call(t, "auth_whoami", nil)); !slices.Contains(w.Scopes, "tasks:write") {
			t.Fatalf("the user's token lost tasks:write: %v", w.Scopes)
		}
		e := user.Call(t, "tasks_write", write).WantError(t, "PERMISSION_DENIED")
		if !slices.Equal(e.RequiredPermissions, []string{"tasks:write"}) {
			t.Errorf("tasks_write after the revoke: required_permissions %v", e.RequiredPermissions)
		}
		user.Call(t, "projects_list", nil).WantError(t, "PERMISSION_DENIED")
		wantTools(t, user, "a user without roles", nil, demoTools)
	})
	t.Run("stdio", func(t *testing.T) {
		t.Parallel()
		in := mcptest.NewInstance(t)
		setup := mcptest.DialStdio(t, binPath, in.Env())
		setup.Login(t, nil, in.Owner())
		password := "e2e-Dev-" + mcptest.RandomHex(8)
		dev := setup.CreateUser(t, "dev@example.com", password, "contributor")
		tok := setup.Login(t, nil, args{"email": "dev@example.com", "password": password})
		setup.CloseStdio(t)

		// The user's process: its credential is MCPAUTH_TOKEN.
		c := mcptest.DialStdio(t, binPath, in.Env("MCPAUTH_TOKEN="+tok.AccessToken))
		mcptest.Decode[projectResult](t, c.Call(t, "projects_create", args{"name": "Apollo"}))
		mcptest.Decode[projectList](t, c.Call(t, "projects_list", nil))
		// The owner logs in in the same process (a login wins over MCPAUTH_TOKEN), revokes the
		// role and logs out: the calls are the user's again.
		c.Login(t, nil, in.Owner())
		mcptest.Decode[struct{ OK bool }](t, c.Call(t, "role_revoke", args{"user_id": dev.ID, "role": "contributor"}))
		mcptest.Decode[struct{ Revoked int }](t, c.Call(t, "auth_logout", nil))
		w := mcptest.Decode[mcptest.Whoami](t, c.Call(t, "auth_whoami", nil))
		if w.User.ID != dev.ID || w.AuthMethod != "env_token" || !slices.Contains(w.Scopes, "projects:write") {
			t.Fatalf("auth_whoami after the owner's logout: %+v", w)
		}
		e := c.Call(t, "projects_create", args{"name": "Gemini"}).WantError(t, "PERMISSION_DENIED")
		if !slices.Equal(e.RequiredPermissions, []string{"projects:write"}) {
			t.Errorf("projects_create after the revoke: required_permissions %v", e.RequiredPermissions)
		}
		c.Call(t, "projects_list", nil).WantError(t, "PERMISSION_DENIED")
	})
}

// sharedMongo returns a MongoDB-wire server and a fresh database for processes to share: a
// real MongoDB with MCPAUTH_TEST_MONGO_URI, else a FerretDB run in the test process.
func sharedMongo(t *testing.T) (uri, db string) {
	t.Helper()
	db = "bduf_e2e_" + mcptest.RandomHex(6)
	if uri = os.Getenv(mcptest.EnvTestMongoURI); uri != "" {
		t.Cleanup(func() { mcptest.DropDatabase(t, uri, db) })
		return uri, db
	}
	srv, err := embedmongo.Start(t.TempDir(), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatalf("embedded MongoDB-wire server: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), embedmongo.StopTimeout)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop the embedded store: %v", err)
		}
	})
	return srv.URI(), db
}

// Propagation bounds of the two-instance test.
const (
	propagationDeadline = time.Second           // a role change made on one instance holds on the other within this
	pollEvery           = 20 * time.Millisecond // how often the other instance is asked meanwhile
)

// untilDecided calls tool on c until allowed reports the wanted outcome, and fails t unless it
// happened on a call sent within propagationDeadline of since. It returns how long it took.
func untilDecided(t *testing.T, c *mcptest.Conn, tool string, wantAllowed bool, since time.Time) time.Duration {
	t.Helper()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	deadline := since.Add(propagationDeadline)
	for {
		sent := time.Now()
		r := c.Call(t, tool, nil)
		allowed := !r.IsError
		if !allowed {
			r.WantError(t, "PERMISSION_DENIED") // a denial, never another error
		}
		if allowed == wantAllowed {
			return sent.Sub(since)
		}
		if sent.After(deadline) {
			t.Fatalf("%s on the other instance: still allowed=%v %s after the change (deadline %s)",
				tool, allowed, sent.Sub(since).Round(time.Millisecond), propagationDeadline)
		}
		<-tick.C
	}
}

func TestShouldPropagateRoleChangesBetweenInstancesThroughRedis(t *testing.T) {
	t.Parallel()
	redisAddr := redistest.Start(t) // fails, never skips, without redis-server
	uri, db := sharedMongo(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	inA := &mcptest.Instance{
		DataDir: t.TempDir(), MongoURI: uri, MongoDB: db,
		OwnerEmail: "owner@example.com", OwnerPassword: "e2e-Owner-" + mcptest.RandomHex(8), Bootstrap: true,
		Extra: []string{"MCPAUTH_MASTER_KEY=" + base64.StdEncoding.EncodeToString(key), "MCPAUTH_REDIS_URL=redis://" + redisAddr},
	}
	inB := *inA
	inB.DataDir = t.TempDir()
	a := mcptest.StartHTTP(t, binPath, inA.Env(), "http")
	b := mcptest.StartHTTP(t, binPath, inB.Env(), "http") // after A: A has bootstrapped the owner
	if strings.Contains(b.Stderr.String(), "created owner") {
		t.Fatalf("B bootstrapped an owner of its own: it does not share A's store:\n%s", b.Stderr)
	}

	ownerA := mcptest.DialHTTP(t, a)
	ownerA.Login(t, nil, inA.Owner())
	password := "e2e-Dev-" + mcptest.RandomHex(8)
	dev := ownerA.CreateUser(t, "dev@example.com", password, "contributor")
	devLogin := args{"email": "dev@example.com", "password": password}

	// The user works on B (logged in there: the store and the signing keys are shared).
	userB := mcptest.DialHTTP(t, b)
	userB.Login(t, nil, devLogin)
	for range 2 { // the second answer comes from B's decision cache
		mcptest.Decode[projectList](t, userB.Call(t, "projects_list", nil))
	}

	// Revoked on A: denied on B within a second of the revoke's reply.
	revoke := args{"user_id": dev.ID, "role": "contributor"}
	mcptest.Decode[struct{ OK bool }](t, ownerA.Call(t, "role_revoke", revoke))
	took := untilDecided(t, userB, "projects_list", false, time.Now())
	t.Logf("revoked on A, denied on B after %s", took.Round(time.Millisecond))

	// And the other way: the user on A is denied (cached), the owner assigns the role on B, and
	// A allows within a second.
	userA := mcptest.DialHTTP(t, a)
	userA.SetBearer(userB.Bearer())
	for range 2 {
		userA.Call(t, "projects_list", nil).WantError(t, "PERMISSION_DENIED")
	}
	ownerB := mcptest.DialHTTP(t, b)
	ownerB.SetBearer(ownerA.Bearer())
	mcptest.Decode[struct{ OK bool }](t, ownerB.Call(t, "role_assign", revoke))
	took = untilDecided(t, userA, "projects_list", true, time.Now())
	t.Logf("assigned on B, allowed on A after %s", took.Round(time.Millisecond))
}
