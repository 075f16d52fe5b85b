package main

// End-to-end attack tests: each test plays one attack against the real binary (embedded store,
// streamable HTTP) and checks its outcome as the victim or the operator would: the escalated
// account does not exist, the role is still there, the foreign events are not shown, the key is
// dead, the owner still gets in.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/internal/mcptest"
)

// Shapes of results the other e2e tests do not read.

// authTimeResult is the auth_time of auth_validate's result: when the session's login happened.
type authTimeResult struct {
	AuthTime *time.Time `json:"auth_time"`
}

// logoutResult is auth_logout's result.
type logoutResult struct {
	Revoked        int  `json:"revoked"`
	APIKeysRevoked *int `json:"api_keys_revoked"`
}

// passwordChangeResult is user_set_password's result with the keys it revoked.
type passwordChangeResult struct {
	OK             bool `json:"ok"`
	APIKeysRevoked *int `json:"api_keys_revoked"`
}

// scopedVerifyResult is audit_verify's result with the part of the trail it walked.
type scopedVerifyResult struct {
	verifyResult
	Scope string `json:"scope"`
}

// freshPassword returns a new password for a test's users, recorded in sec.
func freshPassword(sec *secrets) string {
	p := "e2e-Attack-" + randomHex(8)
	sec.Add(p)
	return p
}

// noLoginLimits keeps the login rate limits out of the way of tests that log in often.
const noLoginLimits = "MCPAUTH_RATE_LIMITS=login_id=1000/1m,login_addr=1000/1m"

// permsOf is the sorted union of lists, without duplicates (as apikey_create returns them).
func permsOf(lists ...[]string) []string {
	out := slices.Concat(lists...)
	slices.Sort(out)
	return slices.Compact(out)
}

// canLogin logs email in with password (without adopting the token) and fails t if it cannot.
func canLogin(t *testing.T, c *conn, sec *secrets, email, password string) tokenResult {
	t.Helper()
	tok := decode[tokenResult](t, c.Call(t, "auth_login", args{"email": email, "password": password}))
	sec.Add(tok.AccessToken, tok.RefreshToken)
	return tok
}

// listsUser reports whether owner's user_list shows an account with email.
func listsUser(t *testing.T, owner *conn, email string) bool {
	t.Helper()
	users := decode[userListResult](t, owner.Call(t, "user_list", args{"filter": email})).Users
	return slices.ContainsFunc(users, func(u userView) bool { return u.Email == email })
}

// wantNoAccount checks that email has no account: owner's user_list does not show it and a
// login as it (with the password the attacker chose) fails.
func wantNoAccount(t *testing.T, owner, anon *conn, email, password string) {
	t.Helper()
	if listsUser(t, owner, email) {
		t.Errorf("user_list shows %s: the refused user_create made the account", email)
	}
	anon.Call(t, "auth_login", args{"email": email, "password": password}).WantError(t, "INVALID_CREDENTIALS")
}

// findRole returns the role named name as role_list (as c) shows it.
func findRole(t *testing.T, c *conn, name string) (roleView, bool) {
	t.Helper()
	for _, r := range decode[roleListResult](t, c.Call(t, "role_list", nil)).Roles {
		if r.Name == name {
			return r, true
		}
	}
	return roleView{}, false
}

// rolesOfUser is the user's roles as user_get (as owner) shows them.
func rolesOfUser(t *testing.T, owner *conn, id string) []string {
	t.Helper()
	return decode[userResult](t, owner.Call(t, "user_get", args{"id": id})).User.Roles
}

// awaitEvents polls audit_query (as c, with a) until match accepts the events it shows, newest
// first, and returns them; t fails if that does not happen within auditWait.
func awaitEvents(t *testing.T, c *conn, a args, what string, match func([]auditEvent) bool) []auditEvent {
	t.Helper()
	deadline := time.Now().Add(auditWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		got := queryAll(t, c, a, 500)
		if match(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit_query %v: %s not seen within %s; it shows:\n%s", a, what, auditWait, dump(got))
		}
		<-tick.C
	}
}

// countEvents is how many of events keep accepts.
func countEvents(events []auditEvent, keep func(auditEvent) bool) int {
	n := 0
	for _, e := range events {
		if keep(e) {
			n++
		}
	}
	return n
}

// failedBecause accepts AUTH_FAILED events about subject with the given reason.
func failedBecause(subject, reason string) func(auditEvent) bool {
	return func(e auditEvent) bool {
		return e.Type == audit.AuthFailed && e.Subject == subject && e.Details["reason"] == reason
	}
}

// attackServer starts what most attacks need: a fresh instance served over streamable HTTP
// with env added, its bootstrap owner logged in, and an anonymous client.
func attackServer(t *testing.T, env ...string) (in *instance, sec *secrets, srv *httpServer, owner, anon *conn) {
	t.Helper()
	in = newInstance(t)
	in.Extra = append(in.Extra, env...)
	sec = &secrets{}
	sec.Add(in.OwnerPassword)
	srv = startHTTP(t, in, "http")
	owner = dialHTTP(t, srv)
	owner.Login(t, sec, in.Owner())
	return in, sec, srv, owner, dialHTTP(t, srv)
}

// narrowKeyAttack is one call an owner's API key, narrowed to what passes the guard, must not
// make with the owner's other permissions.
type narrowKeyAttack struct {
	name     string   // the attack
	key      []string // the narrowed key's permissions: enough for the guard, not for the call
	tool     string
	args     args
	excess   []string // excess_permissions lists these and none of key's
	exact    bool     // excess_permissions is exactly excess
	required []string // instead: required_permissions is exactly this
	// unchanged checks the victim's state after the refusal; done the outcome of the same call
	// made with a key carrying all the owner holds (the positive control).
	unchanged func(t *testing.T)
	done      func(t *testing.T, r mcptest.Result)
}

func TestShouldNotLetANarrowedAPIKeyUseItsOwnersOtherPermissions(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.Extra = append(in.Extra, noLoginLimits)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	owner := dialHTTP(t, srv)
	ownerID := owner.Login(t, sec, in.Owner()).User.ID
	anon := dialHTTP(t, srv)
	kc := dialHTTP(t, srv) // the calls made with the keys
	password := freshPassword(sec)
	newPassword := freshPassword(sec)

	ownerPerms := permsOf(decode[permissionListResult](t, owner.Call(t, "permission_list", nil)).Permissions)
	assignee := owner.CreateUser(t, "assignee@example.com", password)
	secondOwner := owner.CreateUser(t, "owner2@example.com", password, "owner")
	admin := owner.CreateUser(t, "admin@example.com", password, "admin")
	doomed := owner.CreateUser(t, "doomed@example.com", password, "viewer")
	reset := owner.CreateUser(t, "reset@example.com", password, "viewer")
	viewer := owner.CreateUser(t, "viewer@example.com", password, "viewer")
	doomedRole := []string{"projects:read", "projects:write"}
	decode[roleResult](t, owner.Call(t, "role_create", args{"name": "doomed", "permissions": doomedRole}))

	for _, tc := range []narrowKeyAttack{
		{
			name: "mint an owner", key: []string{"users:write"}, tool: "user_create",
			args:   args{"email": "minted-owner@example.com", "password": password, "roles": []string{"owner"}},
			excess: []string{"projects:read", "projects:admin", "users:admin", "roles:*"},
			unchanged: func(t *testing.T) {
				wantNoAccount(t, owner, anon, "minted-owner@example.com", password)
			},
			done: func(t *testing.T, r mcptest.Result) {
				if u := decode[userResult](t, r).User; !slices.Equal(u.Roles, []string{"owner"}) {
					t.Fatalf("user_create with the full key: %+v", u)
				}
				canLogin(t, anon, sec, "minted-owner@example.com", password)
			},
		},
		{
			name: "mint an admin", key: []string{"users:write"}, tool: "user_create",
			args:   args{"email": "minted-admin@example.com", "password": password, "roles": []string{"admin"}},
			excess: []string{"projects:read", "users:read", "audit:read"},
			unchanged: func(t *testing.T) {
				wantNoAccount(t, owner, anon, "minted-admin@example.com", password)
			},
			done: func(t *testing.T, r mcptest.Result) {
				if u := decode[userResult](t, r).User; !slices.Equal(u.Roles, []string{"admin"}) {
					t.Fatalf("user_create with the full key: %+v", u)
				}
				canLogin(t, anon, sec, "minted-admin@example.com", password)
			},
		},
		{
			name: "create a role with a permission the key lacks", key: []string{"roles:write"}, tool: "role_create",
			args:   args{"name": "key-made", "permissions": []string{"projects:read"}},
			excess: []string{"projects:read"}, exact: true,
			unchanged: func(t *testing.T) {
				if r, ok := findRole(t, owner, "key-made"); ok {
					t.Fatalf("role_list shows the refused role: %+v", r)
				}
			},
			done: func(t *testing.T, r mcptest.Result) {
				decode[roleResult](t, r)
				if r, ok := findRole(t, owner, "key-made"); !ok || !slices.Equal(r.Permissions, []string{"projects:read"}) {
					t.Fatalf("role_list after role_create with the full key: %+v, %v", r, ok)
				}
			},
		},
		{
			name: "assign the admin role", key: []string{"roles:assign"}, tool: "role_assign",
			args:   args{"user_id": assignee.ID, "role": "admin"},
			excess: []string{"projects:read", "users:write"},
			unchanged: func(t *testing.T) {
				if roles := rolesOfUser(t, owner, assignee.ID); len(roles) != 0 {
					t.Fatalf("the target holds %v after the refused role_assign", roles)
				}
			},
			done: func(t *testing.T, r mcptest.Result) {
				decode[okResult](t, r)
				if roles := rolesOfUser(t, owner, assignee.ID); !slices.Equal(roles, []string{"admin"}) {
					t.Fatalf("the target holds %v after role_assign with the full key", roles)
				}
			},
		},
		{
			name: "revoke an owner's role", key: []string{"roles:assign"}, tool: "role_revoke",
			args:   args{"user_id": secondOwner.ID, "role": "owner"},
			excess: []string{"users:admin", "roles:*"},
			unchanged: func(t *testing.T) {
				if roles := rolesOfUser(t, owner, secondOwner.ID); !slices.Equal(roles, []string{"owner"}) {
					t.Fatalf("the owner holds %v after the refused role_revoke", roles)
				}
			},
			done: func(t *testing.T, r mcptest.Result) {
				decode[okResult](t, r)
				if roles := rolesOfUser(t, owner, secondOwner.ID); len(roles) != 0 {
					t.Fatalf("the owner holds %v after role_revoke with the full key", roles)
				}
			},
		},
		{
			name: "delete a role holding what the key lacks", key: []string{"roles:delete"}, tool: "role_delete",
			args:   args{"id": "doomed"},
			excess: doomedRole,
			unchanged: func(t *testing.T) {
				if r, ok := findRole(t, owner, "doomed"); !ok || !slices.Equal(r.Permissions, doomedRole) {
					t.Fatalf("role_list after the refused role_delete: %+v, %v", r, ok)
				}
			},
			done: func(t *testing.T, r mcptest.Result) {
				if d := decode[deletedResult](t, r); !d.Deleted {
					t.Fatalf("role_delete with the full key: %+v", d)
				}
				if r, ok := findRole(t, owner, "doomed"); ok {
					t.Fatalf("role_list after role_delete with the full key: %+v", r)
				}
			},
		},
		{
			name: "rename an admin", key: []string{"users:write"}, tool: "user_update",
			args:   args{"id": admin.ID, "fields": args{"username": "renamed.admin"}},
			excess: []string{"projects:read", "audit:read"},
			unchanged: func(t *testing.T) {
				if u := decode[userResult](t, owner.Call(t, "user_get", args{"id": admin.ID})).User; u.Username != admin.Username {
					t.Fatalf("the admin after the refused user_update: %+v, want username %q", u, admin.Username)
				}
			},
			done: func(t *testing.T, r mcptest.Result) {
				if u := decode[userUpdateResult](t, r); u.User.Username != "renamed.admin" {
					t.Fatalf("user_update with the full key: %+v", u)
				}
			},
		},
		{
			name: "delete a viewer", key: []string{"users:admin"}, tool: "user_delete",
			args:   args{"id": doomed.ID},
			excess: []string{"projects:read", "tasks:read"},
			unchanged: func(t *testing.T) {
				canLogin(t, anon, sec, "doomed@example.com", password)
			},
			done: func(t *testing.T, r mcptest.Result) {
				if d := decode[deletedResult](t, r); !d.Deleted {
					t.Fatalf("user_delete with the full key: %+v", d)
				}
				anon.Call(t, "auth_login", args{"email": "doomed@example.com", "password": password}).WantError(t, "INVALID_CREDENTIALS")
			},
		},
		{
			name: "reset a viewer's password", key: []string{"users:admin"}, tool: "user_set_password",
			args:   args{"id": reset.ID, "new_password": newPassword},
			excess: []string{"projects:read", "tasks:read"},
			unchanged: func(t *testing.T) {
				canLogin(t, anon, sec, "reset@example.com", password)
				anon.Call(t, "auth_login", args{"email": "reset@example.com", "password": newPassword}).WantError(t, "INVALID_CREDENTIALS")
			},
			done: func(t *testing.T, r mcptest.Result) {
				if ok := decode[okResult](t, r); !ok.OK {
					t.Fatalf("user_set_password with the full key: %+v", ok)
				}
				canLogin(t, anon, sec, "reset@example.com", newPassword)
			},
		},
		{
			name: "check another user's permission", key: []string{"projects:read"}, tool: "permission_check",
			args:     args{"resource": "projects", "action": "read", "user_id": viewer.ID},
			required: []string{"users:read"},
			unchanged: func(t *testing.T) { // oneself: still answered
				if c := decode[checkResult](t, kc.Call(t, "permission_check", args{"resource": "projects", "action": "read"})); !c.Allowed || c.UserID != ownerID {
					t.Fatalf("permission_check of oneself with the narrowed key: %+v", c)
				}
			},
			done: func(t *testing.T, r mcptest.Result) {
				if c := decode[checkResult](t, r); !c.Allowed || c.UserID != viewer.ID {
					t.Fatalf("permission_check of the viewer with the full key: %+v", c)
				}
			},
		},
		{
			name: "list another user's permissions", key: []string{"projects:read"}, tool: "permission_list",
			args:     args{"user_id": viewer.ID},
			required: []string{"users:read"},
			unchanged: func(t *testing.T) { // oneself: still answered
				if l := decode[permissionListResult](t, kc.Call(t, "permission_list", nil)); l.UserID != ownerID {
					t.Fatalf("permission_list of oneself with the narrowed key: %+v", l)
				}
			},
			done: func(t *testing.T, r mcptest.Result) {
				if l := decode[permissionListResult](t, r); l.UserID != viewer.ID || !slices.Equal(l.Permissions, viewerPermissions) {
					t.Fatalf("permission_list of the viewer with the full key: %+v", l)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			narrow := createKey(t, owner, sec, "narrow: "+tc.name, tc.key, nil)
			kc.SetBearer(narrow.Key)
			e := kc.Call(t, tc.tool, tc.args).WantError(t, "PERMISSION_DENIED")
			switch {
			case tc.required != nil:
				if !slices.Equal(e.RequiredPermissions, tc.required) {
					t.Errorf("%s with a %v key: required_permissions %v, want %v", tc.tool, tc.key, e.RequiredPermissions, tc.required)
				}
			case tc.exact:
				if !slices.Equal(e.ExcessPermissions, tc.excess) {
					t.Errorf("%s with a %v key: excess_permissions %v, want %v", tc.tool, tc.key, e.ExcessPermissions, tc.excess)
				}
			default:
				wantExcess(t, tc.tool+" with a narrowed key", e, tc.excess, tc.key)
			}
			tc.unchanged(t)

			full := createKey(t, owner, sec, "full: "+tc.name, ownerPerms, nil)
			kc.SetBearer(full.Key)
			tc.done(t, kc.Call(t, tc.tool, tc.args))
		})
	}
	if roles := rolesOfUser(t, owner, ownerID); !slices.Equal(roles, []string{"owner"}) {
		t.Errorf("the bootstrap owner holds %v after the attacks", roles)
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldNotLetAConditionalGrantBeHandedOutWithoutItsConditions(t *testing.T) {
	t.Parallel()
	_, sec, srv, owner, anon := attackServer(t, noLoginLimits)
	password := freshPassword(sec)
	opsPerms := []string{"projects:read", "roles:assign", "roles:write"}
	// The client connects from 127.0.0.1 and now: both conditions hold for every call here.
	now := time.Now().UTC()
	for _, tc := range []struct {
		name       string
		conditions args
	}{
		{"source-cidrs", args{"source_cidrs": []string{"127.0.0.0/8"}}},
		// Hours around now rather than 00:00-23:59, whose last minute is outside the window.
		{"time-window", args{"time_window": args{"start": now.Add(-3 * time.Hour).Format("15:04"), "end": now.Add(3 * time.Hour).Format("15:04")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, free, creator := "ops-"+tc.name, "ops-free-"+tc.name, "creator-"+tc.name
			decode[roleResult](t, owner.Call(t, "role_create", args{"name": ops, "permissions": opsPerms, "conditions": tc.conditions}))
			decode[roleResult](t, owner.Call(t, "role_create", args{"name": creator, "permissions": []string{"users:write"}}))
			// U holds ops only: nothing unconditionally. W holds ops and, unconditionally, users:write.
			u := owner.CreateUser(t, "u-"+tc.name+"@example.com", password)
			w := owner.CreateUser(t, "w-"+tc.name+"@example.com", password)
			target := owner.CreateUser(t, "target-"+tc.name+"@example.com", password)
			decode[okResult](t, owner.Call(t, "role_assign", args{"user_id": u.ID, "role": ops}))
			decode[okResult](t, owner.Call(t, "role_assign", args{"user_id": w.ID, "role": ops}))
			decode[okResult](t, owner.Call(t, "role_assign", args{"user_id": w.ID, "role": creator}))
			uc := dialHTTP(t, srv)
			uc.Login(t, sec, args{"email": u.Email, "password": password})
			wc := dialHTTP(t, srv)
			wc.Login(t, sec, args{"email": w.Email, "password": password})

			// The guard lets U call role_create (its conditional roles:write holds here); the tool
			// refuses, naming what U does not hold unconditionally.
			e := uc.Call(t, "role_create", args{"name": free, "permissions": opsPerms}).WantError(t, "PERMISSION_DENIED")
			wantExcess(t, "role_create copying a conditional role without its conditions", e, opsPerms, nil)
			if r, ok := findRole(t, owner, free); ok {
				t.Fatalf("role_list shows %+v: the conditions were stripped", r)
			}
			e = uc.Call(t, "role_assign", args{"user_id": target.ID, "role": ops}).WantError(t, "PERMISSION_DENIED")
			wantExcess(t, "role_assign of a role held only conditionally", e, opsPerms, nil)
			if roles := rolesOfUser(t, owner, target.ID); len(roles) != 0 {
				t.Fatalf("the target holds %v after the refused role_assign", roles)
			}

			// W may create users; not users holding what W holds only under conditions.
			minted := "minted-" + tc.name + "@example.com"
			e = wc.Call(t, "user_create", args{"email": minted, "password": password, "roles": []string{ops}}).WantError(t, "PERMISSION_DENIED")
			wantExcess(t, "user_create with a role held only conditionally", e, opsPerms, []string{"users:write"})
			wantNoAccount(t, owner, anon, minted, password)
			// Positive control: what W holds unconditionally, it hands out.
			made := decode[userResult](t, wc.Call(t, "user_create", args{"email": "made-" + tc.name + "@example.com", "password": password,
				"roles": []string{creator}})).User
			if !slices.Equal(made.Roles, []string{creator}) {
				t.Fatalf("user_create with an unconditionally held role: %+v", made)
			}
		})
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldNotLetARoleDeleterDeleteARoleItDoesNotHold(t *testing.T) {
	t.Parallel()
	_, sec, srv, owner, _ := attackServer(t)
	password := freshPassword(sec)
	auditors := []string{"audit:read", "users:read"}
	decode[roleResult](t, owner.Call(t, "role_create", args{"name": "deleter", "permissions": []string{"roles:delete"}}))
	decode[roleResult](t, owner.Call(t, "role_create", args{"name": "auditors", "permissions": auditors}))
	decode[roleResult](t, owner.Call(t, "role_create", args{"name": "scratch", "permissions": []string{"roles:delete"}}))
	holder := owner.CreateUser(t, "holder@example.com", password)
	decode[okResult](t, owner.Call(t, "role_assign", args{"user_id": holder.ID, "role": "auditors"}))
	deleter := owner.CreateUser(t, "deleter@example.com", password)
	decode[okResult](t, owner.Call(t, "role_assign", args{"user_id": deleter.ID, "role": "deleter"}))
	dc := dialHTTP(t, srv)
	dc.Login(t, sec, args{"email": "deleter@example.com", "password": password})

	e := dc.Call(t, "role_delete", args{"id": "auditors"}).WantError(t, "PERMISSION_DENIED")
	wantExcess(t, "role_delete of a role holding audit:read", e, auditors, []string{"roles:delete"})
	if r, ok := findRole(t, owner, "auditors"); !ok || !slices.Equal(r.Permissions, auditors) {
		t.Fatalf("role_list after the refused role_delete: %+v, %v", r, ok)
	}
	if l := decode[permissionListResult](t, owner.Call(t, "permission_list", args{"user_id": holder.ID})); !slices.Contains(l.Permissions, "audit:read") {
		t.Fatalf("the auditors' holder lost audit:read: %+v", l)
	}
	// Positive control: a role within what the deleter holds, it deletes.
	if d := decode[deletedResult](t, dc.Call(t, "role_delete", args{"id": "scratch"})); !d.Deleted {
		t.Fatalf("role_delete of a role within the caller's permissions: %+v", d)
	}
	if r, ok := findRole(t, owner, "scratch"); ok {
		t.Fatalf("role_list after role_delete: %+v", r)
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldNotShowAnOrganizationAnotherOrganizationsAuditTrail(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	password := freshPassword(sec)

	// First start: the default organization's owner logs in; somebody fails to log in as an
	// account that does not exist (an event of no organization).
	srv := startHTTP(t, in, "http")
	c := dialHTTP(t, srv)
	ownerID := c.Login(t, sec, in.Owner()).User.ID
	c.Call(t, "auth_login", args{"email": "ghost@example.com", "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	_ = c.Client.Close()
	srv.StopCleanly(t)
	logs := []string{srv.Stderr.String()}

	// globex's admin and owner, made with the CLI on the stopped server's data directory.
	cliUser := func(email, role string) userView {
		t.Helper()
		code, stdout, stderr := runBinary(t, in.Env(), password+"\n", startTimeout,
			"user", "create", "--org", "globex", "--email", email, "--role", role)
		logs = append(logs, stdout, stderr)
		var u userView
		if code != 0 || json.Unmarshal([]byte(stdout), &u) != nil || u.OrgID != "globex" || !slices.Equal(u.Roles, []string{role}) {
			t.Fatalf("mcpauth user create --org globex --role %s: exit %d, stdout %q, stderr:\n%s", role, code, stdout, stderr)
		}
		return u
	}
	gAdmin := cliUser("g@globex.example", "admin")
	gOwner := cliUser("o@globex.example", "owner")

	srv = startHTTP(t, in, "http")
	owner := dialHTTP(t, srv)
	owner.Login(t, sec, in.Owner())
	ga := dialHTTP(t, srv)
	ga.Login(t, sec, args{"email": gAdmin.Email, "password": password})
	gowner := dialHTTP(t, srv)
	gowner.Login(t, sec, args{"email": gOwner.Email, "password": password})

	loginOf := func(id string) func(auditEvent) bool {
		return func(e auditEvent) bool { return e.Type == audit.AuthSuccess && e.Subject == id }
	}
	ghost := func(e auditEvent) bool {
		return e.Type == audit.AuthFailed && e.Subject == "" && e.Details["identifier"] == "ghost@example.com"
	}
	globexLogins := func(es []auditEvent) bool {
		return slices.ContainsFunc(es, loginOf(gAdmin.ID)) && slices.ContainsFunc(es, loginOf(gOwner.ID))
	}

	// globex's admin and owner see globex's events (they read the trail at all), and nothing else:
	// not the events of the first start, all stored when it stopped (a clean stop drains).
	for _, who := range []struct {
		name string
		c    *conn
	}{{"globex's admin", ga}, {"globex's owner", gowner}} {
		if d := decode[checkResult](t, who.c.Call(t, "permission_check", args{"resource": "audit", "action": "read_all"})); d.Allowed {
			t.Errorf("%s holds audit:read_all: %+v", who.name, d)
		}
		awaitEvents(t, who.c, nil, "globex's logins", globexLogins)
		for _, q := range []args{{}, {"type": audit.AuthSuccess}, {"user_id": ownerID}} {
			q["limit"] = 500
			r := who.c.Call(t, "audit_query", q)
			if _, byUser := q["user_id"]; byUser && r.IsError {
				r.WantError(t, "NOT_FOUND") // the default organization's owner is nobody globex knows
				continue
			}
			page := decode[auditPage](t, r)
			if page.NextCursor != "" {
				t.Fatalf("%s: audit_query %v: more than one page", who.name, q)
			}
			var foreign []auditEvent
			for _, e := range page.Events {
				if e.OrgID != "globex" {
					foreign = append(foreign, e)
				}
			}
			if len(foreign) > 0 {
				t.Errorf("%s: audit_query %v shows %d events of other organizations or none, e.g.:\n%s", who.name, q, len(foreign), dump(foreign[:min(3, len(foreign))]))
			}
			if slices.ContainsFunc(page.Events, loginOf(ownerID)) {
				t.Errorf("%s: audit_query %v shows the default organization's owner's login", who.name, q)
			}
			if slices.ContainsFunc(page.Events, ghost) {
				t.Errorf("%s: audit_query %v shows the failed login of an unknown account (no organization)", who.name, q)
			}
		}
	}

	// audit_verify walks the caller's part of the trail: the deployment's first, then globex's
	// (which, walked later, would count more if it counted everything).
	ov := decode[scopedVerifyResult](t, owner.Call(t, "audit_verify", nil))
	gv := decode[scopedVerifyResult](t, ga.Call(t, "audit_verify", nil))
	if !ov.OK || ov.Scope != "deployment" {
		t.Errorf("the bootstrap owner's audit_verify: %+v, want ok with scope deployment", ov)
	}
	if !gv.OK || gv.Scope != "organization" || gv.Checked <= 0 || gv.Checked >= ov.Checked {
		t.Errorf("globex's admin's audit_verify: %+v, want ok with scope organization over fewer events than the deployment's %d", gv, ov.Checked)
	}
	// The deployment view: the bootstrap owner holds audit:read_all and sees every organization's
	// events, and those of none.
	if d := decode[checkResult](t, owner.Call(t, "permission_check", args{"resource": "audit", "action": "read_all"})); !d.Allowed {
		t.Errorf("the bootstrap owner does not hold audit:read_all: %+v", d)
	}
	all := awaitEvents(t, owner, nil, "globex's logins and the failed login of nobody", func(es []auditEvent) bool {
		return globexLogins(es) && slices.ContainsFunc(es, ghost) && slices.ContainsFunc(es, loginOf(ownerID))
	})
	if e := all[slices.IndexFunc(all, loginOf(gAdmin.ID))]; e.OrgID != "globex" {
		t.Errorf("globex's admin's login is recorded in organization %q: %s", e.OrgID, e)
	}

	for _, log := range append(logs, srv.Stderr.String()) {
		sec.CheckNotIn(t, "server or CLI output", log)
	}
}

// mfaUser creates a viewer, logs it in on a conn of its own and turns TOTP on for it. It
// returns the conn, the user, the enrollment and the recovery codes; step is the time step whose
// code was spent confirming.
func mfaUser(t *testing.T, srv *httpServer, owner *conn, sec *secrets, email, password string) (*conn, userView, mfaEnrollment, []string, int64) {
	t.Helper()
	u := owner.CreateUser(t, email, password, "viewer")
	c := dialHTTP(t, srv)
	c.Login(t, sec, args{"email": email, "password": password})
	en := enrollMFA(t, c, email) // a fresh login: no step-up needed
	sec.Add(en.Secret, en.OTPAuthURL)
	step := totpStep(time.Now())
	conf := decode[mfaConfirmed](t, c.Call(t, "mfa_confirm", args{"code": totpCode(t, en.Secret, step)}))
	if !conf.Enabled || len(conf.RecoveryCodes) != 10 {
		t.Fatalf("mfa_confirm: %+v", conf)
	}
	sec.Add(conf.RecoveryCodes...)
	return c, u, en, conf.RecoveryCodes, step
}

func TestShouldCountTOTPGuessesAsFailedLogins(t *testing.T) {
	t.Parallel()
	_, sec, srv, owner, _ := attackServer(t, noLoginLimits) // the default lockout: 5 failures in 15 minutes
	password := freshPassword(sec)
	c, u, en, recovery, step := mfaUser(t, srv, owner, sec, "guessed@example.com", password)

	wrong := wrongCode(t, en.Secret)
	for range 5 {
		c.Call(t, "mfa_verify", args{"code": wrong}).WantError(t, "INVALID_MFA_CODE")
	}
	// Locked: even the right code is refused now.
	right := totpCode(t, en.Secret, max(step+1, totpStep(time.Now())))
	c.Call(t, "mfa_verify", args{"code": right}).WantError(t, "ACCOUNT_LOCKED")
	awaitEvents(t, owner, args{"user_id": u.ID}, "5 AUTH_FAILED INVALID_MFA and an ACCOUNT_LOCKED", func(es []auditEvent) bool {
		return countEvents(es, failedBecause(u.ID, audit.ReasonInvalidMFA)) >= 5 &&
			slices.ContainsFunc(es, func(e auditEvent) bool { return e.Type == audit.AccountLocked && e.Subject == u.ID })
	})
	// The unlock's event is durable before the answer, so every earlier one is stored by then.
	if r := decode[struct{ Unlocked bool }](t, owner.Call(t, "user_unlock", args{"id": u.ID})); !r.Unlocked {
		t.Fatalf("user_unlock: %+v", r)
	}
	events := queryAll(t, owner, args{"user_id": u.ID}, 500)
	if n := countEvents(events, failedBecause(u.ID, audit.ReasonInvalidMFA)); n != 5 {
		t.Errorf("%d AUTH_FAILED events with reason INVALID_MFA, want 5 (one per wrong code):\n%s", n, dump(events))
	}
	// Positive control: unlocked, a right code is accepted.
	if v := decode[struct{ Verified bool }](t, c.Call(t, "mfa_verify", args{"code": recovery[0]})); !v.Verified {
		t.Fatalf("mfa_verify after user_unlock: %+v", v)
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldNotLetAStolenTokenTurnMFAOffWithoutThePassword(t *testing.T) {
	t.Parallel()
	_, sec, srv, owner, anon := attackServer(t, noLoginLimits)
	password := freshPassword(sec)
	login := args{"email": "mfa-off@example.com", "password": password}
	c, _, _, recovery, _ := mfaUser(t, srv, owner, sec, "mfa-off@example.com", password)

	// Each attempt with a recovery code of its own, so a spent code cannot explain a refusal.
	c.Call(t, "mfa_disable", args{"code": recovery[0]}).WantFieldError(t, "password")
	c.Call(t, "mfa_disable", args{"code": recovery[1], "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	anon.Call(t, "auth_login", login).WantError(t, "MFA_REQUIRED") // still on
	if d := decode[struct{ Disabled bool }](t, c.Call(t, "mfa_disable", args{"code": recovery[2], "password": password})); !d.Disabled {
		t.Fatalf("mfa_disable with the password: %+v", d)
	}
	canLogin(t, anon, sec, "mfa-off@example.com", password) // off: no mfa_code needed
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

// enrollMFAWith calls mfa_enroll with a and returns the enrollment (enrollMFA checks the
// result's whole shape; this reads only the secret).
func enrollMFAWith(t *testing.T, c *conn, a args) mfaEnrollment {
	t.Helper()
	res := c.CallResult(t, "mfa_enroll", a)
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var en mfaEnrollment
	if res.IsError || json.Unmarshal(b, &en) != nil || en.Secret == "" {
		t.Fatalf("mfa_enroll: %s", b)
	}
	return en
}

// callForError calls a tool expected to fail (mfa_enroll succeeds with a QR code beside the text,
// which Call's shape check refuses) and returns the error result; a success fails t.
func callForError(t *testing.T, c *conn, tool string, a args) mcptest.Result {
	t.Helper()
	res := c.CallResult(t, tool, a)
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError {
		t.Fatalf("%s: want an error, got success %s", tool, b)
	}
	return mcptest.Result{Tool: tool, IsError: true, Raw: b}
}

// wantStepUp checks a refusal for want of a recent login: PERMISSION_DENIED with
// step_up_required true.
func wantStepUp(t *testing.T, what string, r mcptest.Result) {
	t.Helper()
	if body := errorBody(t, r, "PERMISSION_DENIED"); body["step_up_required"] != true {
		t.Errorf("%s: %v, want step_up_required true", what, body)
	}
}

func TestShouldNotLetAStaleAccessTokenMintKeysEnrollMFAOrChangeTheEmail(t *testing.T) {
	t.Parallel()
	_, sec, srv, owner, anon := attackServer(t, "MCPAUTH_STEP_UP_MAX_AGE=0", noLoginLimits) // never fresh
	password := freshPassword(sec)
	victim := owner.CreateUser(t, "victim@example.com", password, "admin") // may change its own email
	c := dialHTTP(t, srv)                                                  // the attacker, holding the victim's token
	before := time.Now().Truncate(time.Second)
	tok := c.Login(t, sec, args{"email": victim.Email, "password": password})
	after := time.Now()

	// The token says when its session logged in; a refresh does not make it younger.
	at := decode[authTimeResult](t, anon.Call(t, "auth_validate", args{"token": tok.AccessToken})).AuthTime
	if at == nil || at.Before(before) || at.After(after) {
		t.Fatalf("auth_validate auth_time %v, want the login's time (%s..%s)", at, before, after)
	}
	refreshed := c.Refresh(t, sec, tok.RefreshToken)
	if rat := decode[authTimeResult](t, anon.Call(t, "auth_validate", args{"token": refreshed.AccessToken})).AuthTime; rat == nil || !rat.Equal(*at) {
		t.Errorf("auth_time after a refresh %v, want the login's %v", rat, at)
	}

	// With the token alone: refused, nothing made.
	for _, tc := range []struct {
		tool string
		args args
	}{
		{"apikey_create", args{"name": "persistence", "permissions": []string{"projects:read"}}},
		{"mfa_enroll", args{"method": "totp"}},
		{"user_update", args{"id": victim.ID, "fields": args{"email": "attacker@example.com"}}},
	} {
		t.Run(tc.tool, func(t *testing.T) {
			wantStepUp(t, tc.tool+" without the password", callForError(t, c, tc.tool, tc.args))
		})
	}
	if l := decode[apiKeyListResult](t, c.Call(t, "apikey_list", nil)); len(l.Keys) != 0 {
		t.Errorf("apikey_list after refused apikey_create: %+v", l)
	}
	canLogin(t, anon, sec, victim.Email, password) // no second factor appeared
	if u := decode[userResult](t, owner.Call(t, "user_get", args{"id": victim.ID})).User; u.Email != victim.Email {
		t.Errorf("the victim's email after the refused user_update: %q", u.Email)
	}

	// A wrong password is a failed login.
	c.Call(t, "apikey_create", args{"name": "guess", "permissions": []string{"projects:read"}, "password": "wrong-Password-42"}).
		WantError(t, "INVALID_CREDENTIALS")
	awaitEvents(t, owner, args{"type": audit.AuthFailed, "user_id": victim.ID}, "AUTH_FAILED INVALID_PASSWORD of the victim",
		func(es []auditEvent) bool {
			return countEvents(es, failedBecause(victim.ID, audit.ReasonInvalidPassword)) == 1
		})
	// ... and counts for the lockout: five of them lock the account.
	guessed := owner.CreateUser(t, "guessed@example.com", password, "viewer")
	gc := dialHTTP(t, srv)
	gc.Login(t, sec, args{"email": guessed.Email, "password": password})
	for range 5 {
		gc.Call(t, "apikey_create", args{"name": "guess", "permissions": []string{"projects:read"}, "password": "wrong-Password-42"}).
			WantError(t, "INVALID_CREDENTIALS")
	}
	anon.Call(t, "auth_login", args{"email": guessed.Email, "password": password}).WantError(t, "INVALID_CREDENTIALS")
	awaitEvents(t, owner, args{"type": audit.AuthFailed, "user_id": guessed.ID}, "5 AUTH_FAILED INVALID_PASSWORD",
		func(es []auditEvent) bool {
			return countEvents(es, failedBecause(guessed.ID, audit.ReasonInvalidPassword)) >= 5
		})

	// With the password: allowed.
	createKey(t, c, sec, "with the password", []string{"projects:read"}, args{"password": password})
	en := enrollMFAWith(t, c, args{"method": "totp", "password": password})
	sec.Add(en.Secret, en.OTPAuthURL)
	step := totpStep(time.Now())
	wantStepUp(t, "mfa_confirm without the password", callForError(t, c, "mfa_confirm", args{"code": totpCode(t, en.Secret, step)}))
	conf := decode[mfaConfirmed](t, c.Call(t, "mfa_confirm", args{"code": totpCode(t, en.Secret, step+1), "password": password}))
	if !conf.Enabled || len(conf.RecoveryCodes) != 10 {
		t.Fatalf("mfa_confirm with the password: %+v", conf)
	}
	sec.Add(conf.RecoveryCodes...)

	// MFA on: the password alone is not enough; with the second factor it is.
	newEmail := "victim.new@example.com"
	update := args{"id": victim.ID, "fields": args{"email": newEmail}, "password": password}
	c.Call(t, "user_update", update).WantError(t, "MFA_REQUIRED")
	update["mfa_code"] = conf.RecoveryCodes[0]
	if u := decode[userUpdateResult](t, c.Call(t, "user_update", update)); u.User.Email != newEmail {
		t.Fatalf("user_update with password and mfa_code: %+v", u)
	}
	keyArgs := args{"name": "with both factors", "permissions": []string{"projects:read"}, "password": password}
	c.Call(t, "apikey_create", keyArgs).WantError(t, "MFA_REQUIRED")
	keyArgs["mfa_code"] = conf.RecoveryCodes[1]
	createKey(t, c, sec, "with both factors", []string{"projects:read"}, keyArgs)
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldNotMintAPIKeysThatNeverExpireByDefault(t *testing.T) {
	t.Parallel()
	in := newInstance(t) // the default step-up age (5m) and key lifetime (90 days)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	c := dialHTTP(t, srv)
	c.Login(t, sec, in.Owner())

	// A fresh login needs no password to make a key (the positive control of step-up).
	k := createKey(t, c, sec, "default lifetime", []string{"users:read"}, nil)
	want := time.Now().Add(2160 * time.Hour)
	if k.ExpiresAt == nil || k.ExpiresAt.Sub(want).Abs() > time.Hour {
		t.Errorf("apikey_create without expires_at: expires_at %v, want about %s", k.ExpiresAt, want.Format(time.RFC3339))
	}
	forever := createKey(t, c, sec, "no expiry", []string{"users:read"}, args{"expires_at": "never"})
	if forever.ExpiresAt != nil {
		t.Errorf(`apikey_create with expires_at "never": expires_at %v, want none`, forever.ExpiresAt)
	}
	l := wantKeyListHidesSecrets(t, c, k, forever)
	if got := findKey(t, l, k.ID); got.ExpiresAt == nil || !got.ExpiresAt.Equal(*k.ExpiresAt) {
		t.Errorf("apikey_list: %+v, want expires_at %v", got, k.ExpiresAt)
	}
	if got := findKey(t, l, forever.ID); got.ExpiresAt != nil {
		t.Errorf("apikey_list: %+v, want no expires_at", got)
	}
	// Who the key is says the same: no expiry (not the year 1), and the default key's own.
	for _, tc := range []struct {
		key  apiKeyView
		want *time.Time
	}{{forever, nil}, {k, k.ExpiresAt}} {
		kc := dialHTTP(t, srv)
		kc.SetBearer(tc.key.Key)
		var who struct {
			ExpiresAt *time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal(kc.Call(t, "auth_whoami", nil).Raw, &who); err != nil {
			t.Fatal(err)
		}
		if (who.ExpiresAt == nil) != (tc.want == nil) || (who.ExpiresAt != nil && !who.ExpiresAt.Equal(*tc.want)) {
			t.Errorf("auth_whoami with key %q: expires_at %v, want %v", tc.key.Name, who.ExpiresAt, tc.want)
		}
	}
	enrollMFA(t, c, in.OwnerEmail) // nor to start MFA enrollment
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldNotLetAKeyMintedFromAStolenSessionSurviveRevokingEverything(t *testing.T) {
	t.Parallel()
	_, sec, srv, owner, anon := attackServer(t, noLoginLimits)
	password := freshPassword(sec)
	u := owner.CreateUser(t, "victim@example.com", password, "viewer")
	login := args{"email": u.Email, "password": password}
	c := dialHTTP(t, srv)
	c.Login(t, sec, login)
	keyConn := func(k apiKeyView) *conn {
		kc := dialHTTP(t, srv)
		kc.SetBearer(k.Key)
		if w := decode[whoamiResult](t, kc.Call(t, "auth_whoami", nil)); w.User.ID != u.ID || w.AuthMethod != "api_key" {
			t.Fatalf("auth_whoami with the key: %+v", w)
		}
		return kc
	}
	wantDead := func(k apiKeyView, kc *conn) {
		t.Helper()
		kc.WantUnauthorized(t, "auth_whoami", nil, "")
		anon.Call(t, "auth_validate", args{"token": k.Key}).WantError(t, "TOKEN_INVALID")
	}

	// Ending every session leaves the keys alone unless asked.
	k1 := createKey(t, c, sec, "planted", []string{"projects:read"}, nil)
	k1c := keyConn(k1)
	if r := decode[logoutResult](t, c.Call(t, "auth_logout", args{"all_sessions": true})); r.Revoked < 1 {
		t.Fatalf("auth_logout all_sessions: %+v", r)
	}
	decode[whoamiResult](t, k1c.Call(t, "auth_whoami", nil))

	// all_sessions with revoke_api_keys: every key of the user dies too.
	c.Login(t, sec, login)
	k2 := createKey(t, c, sec, "planted again", []string{"projects:read"}, nil)
	k2c := keyConn(k2)
	r := decode[logoutResult](t, c.Call(t, "auth_logout", args{"all_sessions": true, "revoke_api_keys": true}))
	if r.Revoked < 1 || r.APIKeysRevoked == nil || *r.APIKeysRevoked != 2 {
		t.Fatalf("auth_logout all_sessions revoke_api_keys: %+v, want 2 keys revoked", r)
	}
	wantDead(k1, k1c)
	wantDead(k2, k2c)

	// So does a password change with revoke_api_keys.
	c.Login(t, sec, login)
	k3 := createKey(t, c, sec, "planted once more", []string{"projects:read"}, nil)
	k3c := keyConn(k3)
	newPassword := freshPassword(sec)
	pr := decode[passwordChangeResult](t, c.Call(t, "user_set_password", args{"current_password": password, "new_password": newPassword,
		"revoke_api_keys": true}))
	if !pr.OK || pr.APIKeysRevoked == nil || *pr.APIKeysRevoked != 1 {
		t.Fatalf("user_set_password revoke_api_keys: %+v, want 1 key revoked", pr)
	}
	wantDead(k3, k3c)
	canLogin(t, anon, sec, u.Email, newPassword)
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldNotLetAStrangerLockTheOwnerOutFromAnotherAddress(t *testing.T) {
	t.Parallel()
	in := newInstance(t) // the default lockout: 5 failures in 15 minutes
	in.Extra = append(in.Extra, noLoginLimits)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	stranger := mcptest.DialHTTPFrom(t, srv, "127.0.0.2")
	wrong := args{"email": in.OwnerEmail, "password": "wrong-Password-42"}
	for range 5 {
		stranger.Call(t, "auth_login", wrong).WantError(t, "INVALID_CREDENTIALS")
	}
	// Locked from the stranger's address: there even the right password is refused.
	stranger.Call(t, "auth_login", in.Owner()).WantError(t, "INVALID_CREDENTIALS")
	// The owner, from its own address, gets in.
	owner := dialHTTP(t, srv)
	ownerID := owner.Login(t, sec, in.Owner()).User.ID
	stranger.Call(t, "auth_login", in.Owner()).WantError(t, "INVALID_CREDENTIALS")
	// The failures were the stranger's address's (the test's second address works).
	awaitEvents(t, owner, args{"type": audit.AuthFailed, "user_id": ownerID}, "5 failed logins from 127.0.0.2", func(es []auditEvent) bool {
		return countEvents(es, func(e auditEvent) bool {
			return failedBecause(ownerID, audit.ReasonInvalidPassword)(e) && e.ClientAddr == "127.0.0.2"
		}) >= 5
	})
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldLetTheOperatorLiftAPermanentLockWhileTheServerRuns(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	// No soft lock before 100 failures; 6 consecutive ones, from any address, lock for good.
	in.Extra = append(in.Extra, "MCPAUTH_LOCKOUT=100/15m/1m/1h/6", noLoginLimits)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	here := dialHTTP(t, srv)
	there := mcptest.DialHTTPFrom(t, srv, "127.0.0.2")
	wrong := args{"email": in.OwnerEmail, "password": "wrong-Password-42"}
	for i := range 6 {
		[]*conn{here, there}[i%2].Call(t, "auth_login", wrong).WantError(t, "INVALID_CREDENTIALS")
	}
	here.Call(t, "auth_login", in.Owner()).WantError(t, "INVALID_CREDENTIALS")
	there.Call(t, "auth_login", in.Owner()).WantError(t, "INVALID_CREDENTIALS")

	code, stdout, stderr := runBinary(t, in.Env(), "", startTimeout, "user", "unlock", "--email", in.OwnerEmail)
	if code != 0 || !strings.Contains(strings.ToLower(stdout+stderr), "unlocked") {
		t.Fatalf("mcpauth user unlock: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	owner := dialHTTP(t, srv)
	ownerID := owner.Login(t, sec, in.Owner()).User.ID
	awaitEvents(t, owner, args{"type": audit.AccountUnlocked, "user_id": ownerID}, "ACCOUNT_UNLOCKED of the owner",
		func(es []auditEvent) bool { return len(es) >= 1 })
	sec.CheckNotIn(t, "CLI output", stdout+stderr)
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

func TestShouldRecordExactlyOneDenialForACallTheHTTPGuardRefuses(t *testing.T) {
	t.Parallel()
	_, sec, srv, owner, anon := attackServer(t)
	password := freshPassword(sec)
	viewer := owner.CreateUser(t, "viewer@example.com", password, "viewer")
	tok := canLogin(t, anon, sec, viewer.Email, password)

	mcpURL := srv.URL + "/mcp"
	initResp := mcptest.Post(t, mcpURL, tok.AccessToken, mcptest.InitializeJSON)
	if initResp.Status != http.StatusOK {
		t.Fatalf("initialize: %d %s", initResp.Status, initResp.Body)
	}
	requestID := "e2e-" + randomHex(8)
	r := mcptest.Post(t, mcpURL, tok.AccessToken,
		mcptest.ToolsCallJSON(2, "user_create", args{"email": "sneaky@example.com", "password": password}),
		"Mcp-Session-Id", initResp.Header.Get("Mcp-Session-Id"), "Mcp-Protocol-Version", "2025-06-18", "X-Request-Id", requestID)
	ch := r.Challenge()
	ch.Want(t, http.StatusForbidden, "insufficient_scope", srv.URL+"/.well-known/oauth-protected-resource/mcp")
	if ch.Params["scope"] != "users:write" {
		t.Errorf("403 scope=%q, want users:write", ch.Params["scope"])
	}

	ofRequest := func(es []auditEvent) []auditEvent {
		var out []auditEvent
		for _, e := range es {
			if e.RequestID == requestID {
				out = append(out, e)
			}
		}
		return out
	}
	awaitEvents(t, owner, nil, "an event of request "+requestID, func(es []auditEvent) bool { return len(ofRequest(es)) > 0 })
	// A user's creation is durable before its answer: every event recorded before it is stored then.
	owner.CreateUser(t, "marker@example.com", password, "viewer")
	got := ofRequest(queryAll(t, owner, nil, 500))
	if len(got) != 1 {
		t.Fatalf("events of the refused request: %d, want exactly one AUTHZ_DENIED:\n%s", len(got), dump(got))
	}
	e := got[0]
	if e.Type != audit.AuthzDenied || e.Subject != viewer.ID || e.tool() != "user_create" ||
		fmt.Sprint(e.Details["required_permissions"]) != "[users:write]" {
		t.Errorf("the refused request's event: %s, want AUTHZ_DENIED of the viewer, tool user_create, required_permissions [users:write]", e)
	}
	wantNoAccount(t, owner, anon, "sneaky@example.com", password)
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}
