package main

// End-to-end tests of the RBAC tools (role_*, permission_*) and of the guard in front of them,
// over stdio and streamable HTTP.

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// viewerPermissions is the built-in viewer role's scope table.
var viewerPermissions = []string{"analyses:read", "projects:read", "requirements:read", "sessions:read", "tasks:read"}

func TestShouldManageRolesAndPermissionsEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name string
		dial func(t *testing.T, in *instance) *conn
	}{
		{"stdio", func(t *testing.T, in *instance) *conn { return dialStdio(t, in) }},
		{"streamable_http", func(t *testing.T, in *instance) *conn { return dialHTTP(t, startHTTP(t, in, "http")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t)
			sec := &secrets{}
			sec.Add(in.OwnerPassword)
			c := tc.dial(t, in)
			runRBACScenario(t, c, in, sec)
			sec.CheckNotIn(t, "server stderr", c.Stderr.String())
		})
	}
}

// runRBACScenario switches identities by logging in (over stdio the login binds the session,
// over HTTP it sets the bearer token), so each identity's token carries its permissions as of
// that login.
func runRBACScenario(t *testing.T, c *conn, in *instance, sec *secrets) {
	password := "e2e-Rbac-" + randomHex(8)
	sec.Add(password)
	as := func(email string) tokenResult {
		t.Helper()
		return c.Login(t, sec, args{"email": email, "password": password})
	}
	owner := c.Login(t, sec, in.Owner()).User
	admin := c.CreateUser(t, "admin@example.com", password, "admin")
	viewer := c.CreateUser(t, "viewer@example.com", password, "viewer")
	delegate := c.CreateUser(t, "delegate@example.com", password, "viewer")
	target := c.CreateUser(t, "target@example.com", password)
	if len(target.Roles) != 0 {
		t.Fatalf("user_create without roles: %+v", target)
	}

	// The owner creates a custom role: permissions sorted and de-duplicated.
	releaseManager := []string{"projects:read", "projects:write", "tasks:delete", "tasks:write"}
	r := decode[roleResult](t, c.Call(t, "role_create", args{"name": "release-manager",
		"permissions": []string{"tasks:write", "projects:write", "projects:read", "tasks:delete", "tasks:write"}, "description": "ships releases"})).Role
	if r.ID != "release-manager" || r.Name != r.ID || r.OrgID != "default" || r.BuiltIn || r.Description != "ships releases" ||
		!slices.Equal(r.Permissions, releaseManager) || r.CreatedAt.IsZero() {
		t.Fatalf("role_create: %+v", r)
	}
	// Not even the owner may grant a wildcard wider than what it holds (tasks:* would cover
	// actions the owner does not have).
	e := c.Call(t, "role_create", args{"name": "tasks-all", "permissions": []string{"tasks:*", "projects:read"}}).WantError(t, "PERMISSION_DENIED")
	if !slices.Equal(e.ExcessPermissions, []string{"tasks:*"}) {
		t.Errorf("role_create with tasks:*: excess_permissions %v, want [tasks:*]", e.ExcessPermissions)
	}
	c.Call(t, "role_create", args{"name": "release-manager", "permissions": []string{"tasks:read"}}).WantError(t, "CONFLICT")
	c.Call(t, "role_create", args{"name": "owner", "permissions": []string{"tasks:read"}}).WantError(t, "CONFLICT")
	c.Call(t, "role_create", args{"name": "Release Manager", "permissions": []string{"tasks:read"}}).WantFieldError(t, "name")
	c.Call(t, "role_create", args{"permissions": []string{"tasks:read"}}).WantFieldError(t, "name")
	c.Call(t, "role_create", args{"name": "broken", "permissions": []string{"projects:"}}).WantFieldError(t, "permissions")
	c.Call(t, "role_create", args{"name": "broken", "permissions": []string{"tasks:read", "*s:read"}}).WantFieldError(t, "permissions")
	c.Call(t, "role_create", args{"name": "broken", "permissions": []string{}}).WantFieldError(t, "permissions")
	c.Call(t, "role_create", args{"name": "broken", "permissions": "tasks:read"}).WantFieldError(t, "permissions")
	c.Call(t, "role_create", args{"name": "broken", "permissions": []string{"tasks:read"}, "superuser": true}).WantFieldError(t, "superuser")
	c.Call(t, "role_create", args{"name": "broken", "permissions": []string{"tasks:read"}, "org_id": "elsewhere"}).WantError(t, "PERMISSION_DENIED")

	// role_list shows the built-in roles and the custom one.
	roles := decode[roleListResult](t, c.Call(t, "role_list", nil)).Roles
	var names []string
	for _, role := range roles {
		names = append(names, role.Name)
		switch role.Name {
		case "owner", "admin", "contributor", "viewer":
			if !role.BuiltIn {
				t.Errorf("role_list: %s is not marked built_in", role.Name)
			}
		case "release-manager":
			if role.BuiltIn || !slices.Equal(role.Permissions, releaseManager) {
				t.Errorf("role_list: %+v", role)
			}
		}
		if role.Name == "owner" && !slices.Contains(role.Permissions, "roles:*") {
			t.Errorf("role_list: the owner role lacks roles:*: %v", role.Permissions)
		}
		if role.Name == "viewer" && !slices.Equal(role.Permissions, viewerPermissions) {
			t.Errorf("role_list: viewer has %v, want %v", role.Permissions, viewerPermissions)
		}
	}
	if !slices.Equal(names, []string{"owner", "admin", "contributor", "viewer", "release-manager"}) {
		t.Fatalf("role_list: %v", names)
	}

	// Assigning it.
	assign := args{"user_id": target.ID, "role": "release-manager"}
	if ok := decode[okResult](t, c.Call(t, "role_assign", assign)); !ok.OK {
		t.Fatalf("role_assign: %+v", ok)
	}
	c.Call(t, "role_assign", assign).WantError(t, "CONFLICT")
	c.Call(t, "role_assign", args{"user_id": target.ID, "role": "no-such-role"}).WantFieldError(t, "role")
	c.Call(t, "role_assign", args{"user_id": "usr_doesnotexist", "role": "viewer"}).WantError(t, "NOT_FOUND")
	c.Call(t, "role_assign", args{"user_id": target.ID}).WantFieldError(t, "role")
	c.Call(t, "role_assign", args{"user_id": target.ID, "role": "viewer", "org_id": "elsewhere"}).WantError(t, "PERMISSION_DENIED")
	if u := decode[userResult](t, c.Call(t, "user_get", args{"id": target.ID})).User; !slices.Equal(u.Roles, []string{"release-manager"}) {
		t.Fatalf("user_get after role_assign: %+v", u)
	}

	// permission_check and permission_list reflect it.
	check := decode[checkResult](t, c.Call(t, "permission_check", args{"resource": "tasks", "action": "write", "user_id": target.ID}))
	if !check.Allowed || check.UserID != target.ID || check.OrgID != "default" || !slices.Equal(check.GrantedPermissions, []string{"tasks:write"}) ||
		!slices.Equal(check.RequiredPermissions, []string{"tasks:write"}) || check.Reason == "" {
		t.Fatalf("permission_check tasks:write for the target: %+v", check)
	}
	check = decode[checkResult](t, c.Call(t, "permission_check", args{"resource": "projects", "action": "delete", "user_id": target.ID}))
	if check.Allowed || len(check.GrantedPermissions) != 0 || !slices.Equal(check.RequiredPermissions, []string{"projects:delete"}) || check.Reason == "" {
		t.Fatalf("permission_check projects:delete for the target: %+v", check)
	}
	if pl := decode[permissionListResult](t, c.Call(t, "permission_list", args{"user_id": target.ID})); !slices.Equal(pl.Permissions, releaseManager) || pl.UserID != target.ID {
		t.Fatalf("permission_list for the target: %+v", pl)
	}
	c.Call(t, "permission_check", args{"resource": "tasks:x", "action": "write"}).WantFieldError(t, "resource")
	c.Call(t, "permission_check", args{"resource": "tasks"}).WantFieldError(t, "action")
	c.Call(t, "permission_check", args{"resource": "tasks", "action": "write", "user_id": "usr_doesnotexist"}).WantError(t, "NOT_FOUND")

	// The target's own view: its token carries the role's permissions.
	as("target@example.com")
	if w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil)); !slices.Equal(w.Scopes, releaseManager) {
		t.Fatalf("auth_whoami of the target: scopes %v, want %v", w.Scopes, releaseManager)
	}
	if check := decode[checkResult](t, c.Call(t, "permission_check", args{"resource": "tasks", "action": "delete"})); !check.Allowed || check.UserID != target.ID {
		t.Fatalf("the target's permission_check tasks:delete: %+v", check)
	}
	if pl := decode[permissionListResult](t, c.Call(t, "permission_list", nil)); !slices.Equal(pl.Permissions, releaseManager) {
		t.Fatalf("the target's permission_list: %+v", pl)
	}
	wantTools(t, "the target", c.ListTools(t), authenticatedTools, adminTools)

	// The owner revokes the role, then deletes it.
	c.Login(t, sec, in.Owner())
	if ok := decode[okResult](t, c.Call(t, "role_revoke", assign)); !ok.OK {
		t.Fatalf("role_revoke: %+v", ok)
	}
	c.Call(t, "role_revoke", assign).WantError(t, "NOT_FOUND")
	if check := decode[checkResult](t, c.Call(t, "permission_check", args{"resource": "tasks", "action": "write", "user_id": target.ID})); check.Allowed {
		t.Fatalf("permission_check after role_revoke: %+v", check)
	}
	if pl := decode[permissionListResult](t, c.Call(t, "permission_list", args{"user_id": target.ID})); len(pl.Permissions) != 0 {
		t.Fatalf("permission_list after role_revoke: %+v", pl)
	}
	c.Call(t, "role_assign", assign) // assigned again: deleting the role must take this with it
	if d := decode[deletedResult](t, c.Call(t, "role_delete", args{"id": "release-manager"})); !d.Deleted {
		t.Fatalf("role_delete: %+v", d)
	}
	c.Call(t, "role_delete", args{"id": "release-manager"}).WantError(t, "NOT_FOUND")
	c.Call(t, "role_delete", args{"id": "owner"}).WantFieldError(t, "id")
	c.Call(t, "role_delete", nil).WantFieldError(t, "id")
	for _, role := range decode[roleListResult](t, c.Call(t, "role_list", nil)).Roles {
		if role.Name == "release-manager" {
			t.Fatalf("role_list after role_delete still has %+v", role)
		}
	}
	if pl := decode[permissionListResult](t, c.Call(t, "permission_list", args{"user_id": target.ID})); len(pl.Permissions) != 0 {
		t.Fatalf("permission_list after role_delete: %+v", pl)
	}
	if u := decode[userResult](t, c.Call(t, "user_get", args{"id": target.ID})).User; len(u.Roles) != 0 {
		t.Fatalf("user_get after role_delete: %+v", u)
	}

	// An admin holds neither users:admin nor roles:*: the role tools that change anything are
	// not for it, and it cannot hand out more than it holds.
	as("admin@example.com")
	wantTools(t, "an admin", c.ListTools(t), []string{"user_create", "user_get", "user_list", "role_list"},
		[]string{"role_create", "role_delete", "role_assign", "role_revoke"})
	c.WantInsufficientScope(t, "role_create", args{"name": "sneaky", "permissions": []string{"projects:read"}}, "users:admin", "roles:write")
	c.WantInsufficientScope(t, "role_assign", args{"user_id": admin.ID, "role": "owner"}, "users:admin", "roles:assign")
	c.WantInsufficientScope(t, "role_revoke", args{"user_id": owner.ID, "role": "owner"}, "users:admin", "roles:assign")
	c.WantInsufficientScope(t, "role_delete", args{"id": "viewer"}, "users:admin", "roles:delete")
	decode[roleListResult](t, c.Call(t, "role_list", nil)) // users:read
	e = c.Call(t, "user_create", args{"email": "made-owner@example.com", "password": password, "roles": []string{"owner"}}).WantError(t, "PERMISSION_DENIED")
	wantExcess(t, "an admin creating an owner", e, []string{"projects:admin", "users:admin", "roles:*"}, []string{"projects:read", "users:write"})
	if u := c.CreateUser(t, "contributor@example.com", password, "contributor"); !slices.Equal(u.Roles, []string{"contributor"}) {
		t.Fatalf("an admin creating a contributor: %+v", u)
	}

	// A user whose custom role holds roles:assign may assign only roles within its own permissions.
	c.Login(t, sec, in.Owner())
	decode[roleResult](t, c.Call(t, "role_create", args{"name": "role-assigner", "permissions": []string{"roles:assign"}}))
	decode[okResult](t, c.Call(t, "role_assign", args{"user_id": delegate.ID, "role": "role-assigner"}))
	as("delegate@example.com")
	wantTools(t, "the delegate", c.ListTools(t), []string{"role_assign", "role_revoke"}, []string{"role_create", "role_delete", "user_list"})
	e = c.Call(t, "role_assign", args{"user_id": target.ID, "role": "owner"}).WantError(t, "PERMISSION_DENIED")
	wantExcess(t, "the delegate assigning owner", e, []string{"projects:admin", "users:admin", "roles:*"}, []string{"projects:read", "tasks:read"})
	e = c.Call(t, "role_assign", args{"user_id": delegate.ID, "role": "admin"}).WantError(t, "PERMISSION_DENIED")
	wantExcess(t, "the delegate assigning itself admin", e, []string{"projects:write", "users:write"}, []string{"projects:read"})
	e = c.Call(t, "role_revoke", args{"user_id": owner.ID, "role": "owner"}).WantError(t, "PERMISSION_DENIED")
	wantExcess(t, "the delegate revoking owner", e, []string{"roles:*"}, nil)
	decode[okResult](t, c.Call(t, "role_assign", args{"user_id": target.ID, "role": "viewer"})) // within its own permissions
	c.WantInsufficientScope(t, "role_create", args{"name": "mine", "permissions": []string{"tasks:read"}}, "users:admin", "roles:write")
	c.Login(t, sec, in.Owner())
	if u := decode[userResult](t, c.Call(t, "user_get", args{"id": owner.ID})).User; !slices.Equal(u.Roles, []string{"owner"}) {
		t.Fatalf("the owner after the delegate's attempts: %+v", u)
	}
	if u := decode[userResult](t, c.Call(t, "user_get", args{"id": target.ID})).User; !slices.Equal(u.Roles, []string{"viewer"}) {
		t.Fatalf("the target after the delegate's assignment: %+v", u)
	}

	// A viewer checks its own permissions, not anybody else's (that needs users:read).
	as("viewer@example.com")
	check = decode[checkResult](t, c.Call(t, "permission_check", args{"resource": "projects", "action": "read"}))
	if !check.Allowed || check.UserID != viewer.ID || !slices.Equal(check.GrantedPermissions, []string{"projects:read"}) {
		t.Fatalf("the viewer's permission_check projects:read: %+v", check)
	}
	if check := decode[checkResult](t, c.Call(t, "permission_check", args{"resource": "projects", "action": "delete", "user_id": viewer.ID})); check.Allowed {
		t.Fatalf("the viewer's permission_check projects:delete: %+v", check)
	}
	if pl := decode[permissionListResult](t, c.Call(t, "permission_list", nil)); !slices.Equal(pl.Permissions, viewerPermissions) {
		t.Fatalf("the viewer's permission_list: %+v", pl)
	}
	for _, tool := range []string{"permission_check", "permission_list"} {
		a := args{"user_id": owner.ID}
		if tool == "permission_check" {
			a["resource"], a["action"] = "projects", "read"
		}
		e := c.Call(t, tool, a).WantError(t, "PERMISSION_DENIED")
		if !slices.Equal(e.RequiredPermissions, []string{"users:read"}) {
			t.Errorf("the viewer's %s about the owner: required_permissions %v, want [users:read]", tool, e.RequiredPermissions)
		}
	}
	c.Call(t, "permission_list", args{"org_id": "elsewhere"}).WantError(t, "PERMISSION_DENIED")
	c.WantInsufficientScope(t, "role_list", nil, "users:read", "roles:read")
	c.WantInsufficientScope(t, "role_assign", args{"user_id": viewer.ID, "role": "viewer"}, "users:admin", "roles:assign")
}

// wantExcess checks a no-escalation denial: excess_permissions lists (at least) the
// permissions in want and none of those in held.
func wantExcess(t *testing.T, what string, e mcptest.APIError, want, held []string) {
	t.Helper()
	for _, p := range want {
		if !slices.Contains(e.ExcessPermissions, p) {
			t.Errorf("%s: excess_permissions %v lacks %s", what, e.ExcessPermissions, p)
		}
	}
	for _, p := range held {
		if slices.Contains(e.ExcessPermissions, p) {
			t.Errorf("%s: excess_permissions %v has %s, which the caller holds", what, e.ExcessPermissions, p)
		}
	}
}

func TestShouldChallengeHTTPCallsWithoutAValidToken(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv := startHTTP(t, in, "http")
	mcpURL := srv.URL + "/mcp"
	prm := srv.URL + "/.well-known/oauth-protected-resource"

	// initialize, ping and tools/list may come without a token.
	initResp := mcptest.Post(t, mcpURL, "", mcptest.InitializeJSON)
	session := initResp.Header.Get("Mcp-Session-Id")
	if initResp.Status != http.StatusOK {
		t.Fatalf("anonymous initialize: %d %s", initResp.Status, initResp.Body)
	}
	sessionHeader := []string{"Mcp-Session-Id", session, "Mcp-Protocol-Version", "2025-06-18"}
	if r := mcptest.Post(t, mcpURL, "", `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, sessionHeader...); r.Status != http.StatusOK ||
		!strings.Contains(string(r.Body), "auth_login") || strings.Contains(string(r.Body), "user_list") {
		t.Fatalf("anonymous tools/list: %d %s", r.Status, r.Body)
	}
	// So may a call of a public tool.
	if r := mcptest.Post(t, mcpURL, "", mcptest.ToolsCallJSON(3, "auth_validate", args{"token": "garbage"}), sessionHeader...); r.Status != http.StatusOK ||
		!strings.Contains(string(r.Body), "TOKEN_INVALID") {
		t.Fatalf("anonymous auth_validate: %d %s", r.Status, r.Body)
	}

	// A guarded call without a valid token: 401 and a challenge pointing at the metadata.
	for _, tc := range []struct{ name, bearer, body string }{
		{"no token", "", mcptest.ToolsCallJSON(4, "auth_whoami", nil)},
		{"a garbage token", "garbage", mcptest.ToolsCallJSON(5, "auth_whoami", nil)},
		{"a forged JWT", "eyJhbGciOiJFZERTQSJ9.e30.AAAA", mcptest.ToolsCallJSON(6, "user_list", nil)},
		{"no token, guarded call in a batch", "", `[{"jsonrpc":"2.0","id":7,"method":"tools/list"},` + mcptest.ToolsCallJSON(8, "user_list", nil) + `]`},
		{"no token, an unmapped tool", "", mcptest.ToolsCallJSON(9, "no_such_tool", nil)},
		{"no token, another method", "", `{"jsonrpc":"2.0","id":10,"method":"logging/setLevel","params":{"level":"debug"}}`},
	} {
		r := mcptest.Post(t, mcpURL, tc.bearer, tc.body, sessionHeader...)
		ch := r.Challenge()
		t.Run(tc.name, func(t *testing.T) { ch.Want(t, http.StatusUnauthorized, mcptest.ChallengeError(tc.bearer), prm+"/mcp") })
		if tc.bearer != "" && ch.Params["error_description"] == "" {
			t.Errorf("%s: 401 without error_description: %s", tc.name, ch.Header)
		}
	}
	// What the server does not offer (mcpauth has no resources) is "method not found" for
	// anyone, token or not: the guard answers before the server, and says nothing of it.
	for _, bearer := range []string{"", "garbage"} {
		r := mcptest.Post(t, mcpURL, bearer, `{"jsonrpc":"2.0","id":12,"method":"resources/list"}`, sessionHeader...)
		if !strings.Contains(string(r.Body), `"code":-32601`) || !strings.Contains(string(r.Body), `"id":12`) {
			t.Errorf("resources/list with bearer %q: %d %s, want JSON-RPC method not found", bearer, r.Status, r.Body)
		}
	}
	// SSE's message endpoint challenges the same way, pointing at its own metadata URL.
	r := mcptest.Post(t, srv.URL+"/message?sessionId=x", "", mcptest.ToolsCallJSON(11, "auth_whoami", nil))
	r.Challenge().Want(t, http.StatusUnauthorized, "", prm+"/message")

	// A valid token that lacks the tool's scope: 403 insufficient_scope naming the scope.
	c := dialHTTP(t, srv)
	c.Login(t, nil, in.Owner())
	password := "e2e-Viewer-" + randomHex(8)
	c.CreateUser(t, "viewer@example.com", password, "viewer")
	viewer := c.Login(t, nil, args{"email": "viewer@example.com", "password": password})
	r = mcptest.Post(t, mcpURL, viewer.AccessToken, mcptest.ToolsCallJSON(12, "role_create", args{"name": "x", "permissions": []string{"tasks:read"}}), sessionHeader...)
	ch := r.Challenge()
	ch.Want(t, http.StatusForbidden, "insufficient_scope", prm+"/mcp")
	if ch.Params["scope"] != "users:admin roles:write" {
		t.Errorf("403 scope=%q, want %q", ch.Params["scope"], "users:admin roles:write")
	}

	// The protected-resource metadata (RFC 9728), at the root and in the path form.
	for _, url := range []string{prm, prm + "/mcp"} {
		md := mcptest.GetResourceMetadata(t, url)
		if md.Resource != "urn:mcpauth:mcp" || !slices.Equal(md.AuthorizationServers, []string{"urn:mcpauth"}) ||
			!slices.Equal(md.BearerMethodsSupported, []string{"header"}) {
			t.Errorf("GET %s: %+v", url, md)
		}
		for _, scope := range []string{"users:read", "users:write", "roles:assign", "roles:write"} {
			if !slices.Contains(md.ScopesSupported, scope) {
				t.Errorf("GET %s: scopes_supported %v lacks %s", url, md.ScopesSupported, scope)
			}
		}
	}
}
