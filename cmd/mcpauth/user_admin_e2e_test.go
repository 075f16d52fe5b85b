package main

// End-to-end tests of account administration (user_update, user_delete, user_set_password): the
// real binary over streamable HTTP (and stdio for a session-bound password change), driven by
// mcp-go's client, with the test reading the server's database to check what deletion leaves.

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

type userUpdateResult struct {
	User    userView `json:"user"`
	Changed []string `json:"changed"`
}

type setPasswordResult struct {
	OK              bool `json:"ok"`
	SessionsRevoked int  `json:"sessions_revoked"`
}

// helpdeskPermissions is a custom role that may administer users (users:admin) and holds the
// viewer's permissions, so it may manage viewers and nobody with more.
var helpdeskPermissions = slices.Concat(viewerPermissions, []string{"users:admin", "users:read", "users:write"})

// adminScenario is the server and the identities the subtests share.
type adminScenario struct {
	st       *auditStore
	srv      *httpServer
	sec      *secrets
	password string
	ownerID  string
	owner    *conn // the bootstrap owner
	admin    *conn // built-in admin: users:read and users:write, not users:admin
	helpdesk *conn // the custom helpdesk role
	helpID   string
	viewer   *conn
	anon     *conn // no credential: logins and refreshes
}

// newUser creates a viewer with the scenario's password (as the owner).
func (sc *adminScenario) newUser(t *testing.T, email string) userView {
	t.Helper()
	return sc.owner.CreateUser(t, email, sc.password, "viewer")
}

// login returns a new connection logged in as email with password.
func (sc *adminScenario) login(t *testing.T, email, password string) (*conn, tokenResult) {
	t.Helper()
	c := dialHTTP(t, sc.srv)
	return c, c.Login(t, sc.sec, args{"email": email, "password": password})
}

// getUser is user_get as the owner.
func (sc *adminScenario) getUser(t *testing.T, id string) userView {
	t.Helper()
	return decode[userResult](t, sc.owner.Call(t, "user_get", args{"id": id})).User
}

// events is audit_query (as the owner) of the events of typ about userID.
func (sc *adminScenario) events(t *testing.T, typ, userID string) []auditEvent {
	t.Helper()
	return queryAll(t, sc.owner, args{"type": typ, "user_id": userID}, 50)
}

// wantOneEvent checks that exactly one event of typ about subject was recorded, by actor, and
// returns it.
func (sc *adminScenario) wantOneEvent(t *testing.T, typ, subject, actor string) auditEvent {
	t.Helper()
	got := sc.events(t, typ, subject)
	if len(got) != 1 || got[0].Subject != subject || got[0].Actor != actor || got[0].OrgID != "default" {
		t.Fatalf("%s events about %s: %s; want exactly one, by %s", typ, subject, dump(got), actor)
	}
	return got[0]
}

func TestShouldAdministerUsersEndToEnd(t *testing.T) {
	t.Parallel()
	// Login limits out of the way: the scenario logs in many times from one address.
	st := newAuditInstance(t, "MCPAUTH_RATE_LIMITS=login_id=1000/1m,login_addr=1000/1m")
	sc := &adminScenario{st: st, sec: &secrets{}, password: "e2e-Users-" + randomHex(8)}
	sc.sec.Add(st.in.OwnerPassword, sc.password)
	sc.srv = startHTTP(t, st.in, "http")
	sc.owner = dialHTTP(t, sc.srv)
	sc.ownerID = sc.owner.Login(t, sc.sec, st.in.Owner()).User.ID
	sc.anon = dialHTTP(t, sc.srv)
	decode[roleResult](t, sc.owner.Call(t, "role_create", args{"name": "helpdesk", "permissions": helpdeskPermissions}))
	sc.helpID = sc.owner.CreateUser(t, "helpdesk@example.com", sc.password, "helpdesk").ID
	sc.owner.CreateUser(t, "admin@example.com", sc.password, "admin")
	sc.helpdesk, _ = sc.login(t, "helpdesk@example.com", sc.password)
	sc.admin, _ = sc.login(t, "admin@example.com", sc.password)
	sc.viewer = viewerConn(t, sc.srv, sc.owner, "viewer@example.com")

	t.Run("update", func(t *testing.T) { runUpdate(t, sc) })
	t.Run("permissions", func(t *testing.T) { runAdminPermissions(t, sc) })
	t.Run("disable", func(t *testing.T) { runDisable(t, sc) })
	t.Run("set_password", func(t *testing.T) { runSetPassword(t, sc) })
	t.Run("delete", func(t *testing.T) { runDelete(t, sc) })
	t.Run("erase", func(t *testing.T) { runErase(t, sc) })

	// No password, token or key of the scenario reached the server's log or the audit trail.
	sc.sec.CheckNotIn(t, "server stderr", sc.srv.Stderr.String())
	trail, err := json.Marshal(st.stored(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	sc.sec.CheckNotIn(t, "the audit trail", string(trail))
}

func runUpdate(t *testing.T, sc *adminScenario) {
	alice := sc.newUser(t, "alice@example.com")
	decode[userResult](t, sc.owner.Call(t, "user_create", args{"email": "bob@example.com", "username": "bob",
		"password": sc.password, "roles": []string{"viewer"}}))

	// Email and username, normalized as at creation; user_get and the login see them.
	r := decode[userUpdateResult](t, sc.owner.Call(t, "user_update", args{"id": alice.ID,
		"fields": args{"email": " Alice.New@Example.COM", "username": "Alice.New"}}))
	if r.User.ID != alice.ID || r.User.Email != "alice.new@example.com" || r.User.Username != "alice.new" || r.User.Disabled ||
		!slices.Equal(r.User.Roles, []string{"viewer"}) || !slices.Equal(r.Changed, []string{"email", "username"}) {
		t.Fatalf("user_update: %+v", r)
	}
	want := sc.getUser(t, alice.ID)
	if want.Email != "alice.new@example.com" || want.Username != "alice.new" {
		t.Fatalf("user_get after user_update: %+v", want)
	}
	sc.login(t, "alice.new@example.com", sc.password)
	sc.anon.Call(t, "auth_login", args{"email": "alice@example.com", "password": sc.password}).WantError(t, "INVALID_CREDENTIALS")
	// The same values again: nothing changes.
	r = decode[userUpdateResult](t, sc.owner.Call(t, "user_update", args{"id": alice.ID, "fields": args{"email": "alice.new@example.com"}}))
	if len(r.Changed) != 0 || r.User.Email != "alice.new@example.com" {
		t.Fatalf("user_update to the same email: %+v", r)
	}

	// Another user's email or username: CONFLICT saying which, nothing more.
	e := sc.owner.Call(t, "user_update", args{"id": alice.ID, "fields": args{"email": "BOB@example.com", "username": "alice.other"}}).WantError(t, "CONFLICT")
	if e.Message != "email already in use" {
		t.Errorf("email collision message %q", e.Message)
	}
	e = sc.owner.Call(t, "user_update", args{"id": alice.ID, "fields": args{"username": "bob"}}).WantError(t, "CONFLICT")
	if e.Message != "username already in use" {
		t.Errorf("username collision message %q", e.Message)
	}

	// Bad requests, each naming the argument, and none changing anything.
	for _, tc := range []struct {
		name  string
		args  args
		field string
	}{
		{"an unknown field", args{"id": alice.ID, "fields": args{"email": "x@example.com", "role": "owner"}}, "fields.role"},
		{"a field that is not updatable", args{"id": alice.ID, "fields": args{"password": sc.password}}, "fields.password"},
		{"no fields", args{"id": alice.ID, "fields": args{}}, "fields"},
		{"fields missing", args{"id": alice.ID}, "fields"},
		{"fields not an object", args{"id": alice.ID, "fields": "email=x@example.com"}, "fields"},
		{"fields a list", args{"id": alice.ID, "fields": []string{"email"}}, "fields"},
		{"a malformed email", args{"id": alice.ID, "fields": args{"email": "not an email", "username": "alice.x"}}, "fields.email"},
		{"an email that is not a string", args{"id": alice.ID, "fields": args{"email": 42}}, "fields.email"},
		{"a null email", args{"id": alice.ID, "fields": args{"email": nil}}, "fields.email"},
		{"an email too long", args{"id": alice.ID, "fields": args{"email": strings.Repeat("a", 300) + "@example.com"}}, "fields.email"},
		{"a malformed username", args{"id": alice.ID, "fields": args{"username": "Alice New", "email": "x@example.com"}}, "fields.username"},
		{"an empty username", args{"id": alice.ID, "fields": args{"username": ""}}, "fields.username"},
		{"disabled not a boolean", args{"id": alice.ID, "fields": args{"disabled": "true"}}, "fields.disabled"},
		{"no id", args{"fields": args{"email": "x@example.com"}}, "id"},
		{"an id too long", args{"id": strings.Repeat("u", 65), "fields": args{"email": "x@example.com"}}, "id"},
		{"an unknown argument", args{"id": alice.ID, "fields": args{"email": "x@example.com"}, "force": true}, "force"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc.owner.Call(t, "user_update", tc.args).WantFieldError(t, tc.field)
		})
	}
	sc.owner.Call(t, "user_update", args{"id": "usr_doesnotexist", "fields": args{"email": "x@example.com"}}).WantError(t, "NOT_FOUND")
	if got := sc.getUser(t, alice.ID); got.Email != want.Email || got.Username != want.Username || got.Disabled {
		t.Fatalf("alice after refused updates: %+v, want %+v", got, want)
	}

	// The audit trail names the changed fields, never their values, with the owner as actor.
	ev := sc.wantOneEvent(t, "USER_UPDATED", alice.ID, sc.ownerID)
	if b, _ := json.Marshal(ev.Details); string(b) != `{"fields":["email","username"]}` {
		t.Errorf("USER_UPDATED details %s, want the changed field names only", b)
	}
}

func runAdminPermissions(t *testing.T, sc *adminScenario) {
	target := sc.newUser(t, "target@example.com")
	// The guard: a viewer's token lacks users:write and users:admin (403 insufficient_scope).
	sc.viewer.WantInsufficientScope(t, "user_update", args{"id": target.ID, "fields": args{"email": "t2@example.com"}}, "users:write")
	sc.viewer.WantInsufficientScope(t, "user_delete", args{"id": target.ID}, "users:admin")
	sc.admin.WantInsufficientScope(t, "user_delete", args{"id": target.ID}, "users:admin")
	// The tools: disabling and another user's password need users:admin, which the built-in
	// admin role lacks.
	for _, c := range []*conn{sc.viewer, sc.admin} {
		e := c.Call(t, "user_set_password", args{"id": target.ID, "new_password": "e2e-New-" + randomHex(8)}).WantError(t, "PERMISSION_DENIED")
		if !slices.Equal(e.RequiredPermissions, []string{"users:admin"}) {
			t.Errorf("user_set_password of another user without users:admin: %+v", e)
		}
	}
	e := sc.admin.Call(t, "user_update", args{"id": target.ID, "fields": args{"disabled": true}}).WantError(t, "PERMISSION_DENIED")
	if !slices.Equal(e.RequiredPermissions, []string{"users:admin"}) {
		t.Errorf("user_update disabled by an admin: %+v", e)
	}
	// An admin may change a viewer (it holds all a viewer holds), not the owner.
	decode[userUpdateResult](t, sc.admin.Call(t, "user_update", args{"id": target.ID, "fields": args{"username": "target"}}))
	e = sc.admin.Call(t, "user_update", args{"id": sc.ownerID, "fields": args{"username": "boss"}}).WantError(t, "PERMISSION_DENIED")
	if !slices.Contains(e.ExcessPermissions, "users:admin") || !slices.Equal(e.RequiredPermissions, e.ExcessPermissions) {
		t.Errorf("an admin changing the owner: %+v", e)
	}
	// The helpdesk holds users:admin but not what the owner or an admin holds: it cannot
	// disable, delete or reset them.
	for _, tc := range []struct {
		tool string
		args args
	}{
		{"user_update", args{"id": sc.ownerID, "fields": args{"disabled": true}}},
		{"user_delete", args{"id": sc.ownerID}},
		{"user_delete", args{"id": sc.ownerID, "erase": true}},
		{"user_set_password", args{"id": sc.ownerID, "new_password": "e2e-New-" + randomHex(8)}},
	} {
		e := sc.helpdesk.Call(t, tc.tool, tc.args).WantError(t, "PERMISSION_DENIED")
		if !slices.Contains(e.ExcessPermissions, "audit:read") {
			t.Errorf("%s of the owner by the helpdesk: %+v", tc.tool, e)
		}
	}
	if w := decode[whoamiResult](t, sc.owner.Call(t, "auth_whoami", nil)); w.User.ID != sc.ownerID || w.User.Disabled {
		t.Fatalf("the owner after refused attempts: %+v", w)
	}
	// Nobody disables or deletes itself, whatever it may do to others.
	for _, who := range []struct {
		c  *conn
		id string
	}{{sc.owner, sc.ownerID}, {sc.helpdesk, sc.helpID}} {
		who.c.Call(t, "user_update", args{"id": who.id, "fields": args{"disabled": true}}).WantFieldError(t, "fields.disabled")
		who.c.Call(t, "user_delete", args{"id": who.id}).WantFieldError(t, "id")
		who.c.Call(t, "user_delete", args{"id": who.id, "erase": true}).WantFieldError(t, "id")
	}
	// Users of another organization do not exist for the caller.
	sc.owner.Call(t, "user_delete", args{"id": "usr_doesnotexist"}).WantError(t, "NOT_FOUND")
	sc.owner.Call(t, "user_delete", args{"id": target.ID, "erase": "yes"}).WantFieldError(t, "erase")
	if got := sc.getUser(t, target.ID); got.Disabled || got.Username != "target" {
		t.Fatalf("target after refused attempts: %+v", got)
	}
}

func runDisable(t *testing.T, sc *adminScenario) {
	carol := sc.newUser(t, "carol@example.com")
	first, firstTok := sc.login(t, "carol@example.com", sc.password)
	second, _ := sc.login(t, "carol@example.com", sc.password)
	key := createKey(t, first, sc.sec, "carol's script", []string{"projects:read"}, nil)
	keyConn := dialHTTP(t, sc.srv)
	keyConn.SetBearer(key.Key)
	if w := decode[whoamiResult](t, keyConn.Call(t, "auth_whoami", nil)); w.User.ID != carol.ID || w.AuthMethod != "api_key" {
		t.Fatalf("whoami with carol's key: %+v", w)
	}
	wrongPassword := args{"email": "carol@example.com", "password": "e2e-Wrong-" + randomHex(8)}
	wrong := errorBody(t, sc.anon.Call(t, "auth_login", wrongPassword), "INVALID_CREDENTIALS")

	r := decode[userUpdateResult](t, sc.helpdesk.Call(t, "user_update", args{"id": carol.ID, "fields": args{"disabled": true}}))
	if !r.User.Disabled || !slices.Equal(r.Changed, []string{"disabled"}) {
		t.Fatalf("user_update disabled: %+v", r)
	}
	// Every credential of carol is dead at once: the live access tokens of both sessions (401
	// over HTTP), the API key, the refresh token; the right password says ACCOUNT_DISABLED, a
	// wrong one what it always says.
	for name, c := range map[string]*conn{"first session": first, "second session": second, "api key": keyConn} {
		t.Run(name, func(t *testing.T) { c.WantUnauthorized(t, "auth_whoami", nil, "") })
	}
	sc.anon.Call(t, "auth_refresh", args{"refresh_token": firstTok.RefreshToken}).WantError(t, "TOKEN_REVOKED")
	sc.anon.Call(t, "auth_login", args{"email": "carol@example.com", "password": sc.password}).WantError(t, "ACCOUNT_DISABLED")
	wantSameAnswer(t, "a wrong password of a disabled account", errorBody(t, sc.anon.Call(t, "auth_login", wrongPassword), "INVALID_CREDENTIALS"), wrong)
	if got := sc.getUser(t, carol.ID); !got.Disabled {
		t.Fatalf("user_get of a disabled user: %+v", got)
	}
	// Disabling again changes nothing.
	if r := decode[userUpdateResult](t, sc.helpdesk.Call(t, "user_update", args{"id": carol.ID, "fields": args{"disabled": true}})); len(r.Changed) != 0 {
		t.Fatalf("disabling again: %+v", r)
	}
	ev := sc.wantOneEvent(t, "USER_DISABLED", carol.ID, sc.helpID)
	if ev.Details["sessions_revoked"] != float64(2) || ev.Details["api_keys_revoked"] != float64(1) || ev.Severity != "warning" {
		t.Errorf("USER_DISABLED event: %s", ev)
	}

	// Enabled again: carol logs in; the old sessions and the key stay dead.
	r = decode[userUpdateResult](t, sc.helpdesk.Call(t, "user_update", args{"id": carol.ID, "fields": args{"disabled": false}}))
	if r.User.Disabled || !slices.Equal(r.Changed, []string{"disabled"}) {
		t.Fatalf("user_update enable: %+v", r)
	}
	again, _ := sc.login(t, "carol@example.com", sc.password)
	if w := decode[whoamiResult](t, again.Call(t, "auth_whoami", nil)); w.User.ID != carol.ID || w.User.Disabled {
		t.Fatalf("whoami after re-enabling: %+v", w)
	}
	first.WantUnauthorized(t, "auth_whoami", nil, "")
	keyConn.WantUnauthorized(t, "auth_whoami", nil, "")
	if k := findKey(t, decode[apiKeyListResult](t, again.Call(t, "apikey_list", nil)), key.ID); !k.Revoked || k.Active {
		t.Errorf("carol's key after disable and enable: %+v", k)
	}
	ev = sc.wantOneEvent(t, "USER_UPDATED", carol.ID, sc.helpID)
	if b, _ := json.Marshal(ev.Details); string(b) != `{"disabled":false,"fields":["disabled"]}` {
		t.Errorf("USER_UPDATED details of the re-enable: %s", b)
	}
	if revoked := sc.events(t, "API_KEY_REVOKED", carol.ID); len(revoked) != 1 || revoked[0].Actor != sc.helpID {
		t.Errorf("API_KEY_REVOKED events of carol: %s", dump(revoked))
	}
}

func runSetPassword(t *testing.T, sc *adminScenario) {
	frank := sc.newUser(t, "frank@example.com")
	current, _ := sc.login(t, "frank@example.com", sc.password)
	other, otherTok := sc.login(t, "frank@example.com", sc.password)
	next, reset := "e2e-Next-"+randomHex(8), "e2e-Reset-"+randomHex(8)
	sc.sec.Add(next, reset)

	// Refused changes change nothing.
	current.Call(t, "user_set_password", args{"current_password": "e2e-Wrong-" + randomHex(8), "new_password": next}).WantError(t, "INVALID_CREDENTIALS")
	current.Call(t, "user_set_password", args{"new_password": next}).WantFieldError(t, "current_password")
	current.Call(t, "user_set_password", args{"current_password": sc.password}).WantFieldError(t, "new_password")
	current.Call(t, "user_set_password", args{"current_password": sc.password, "new_password": "password1"}).WantFieldError(t, "new_password")
	current.Call(t, "user_set_password", args{"current_password": sc.password, "new_password": "short"}).WantFieldError(t, "new_password")
	current.Call(t, "user_set_password", args{"current_password": sc.password, "new_password": strings.Repeat("x", 73)}).WantFieldError(t, "new_password")
	current.Call(t, "user_set_password", args{"current_password": sc.password, "new_password": next, "password": next}).WantFieldError(t, "password")
	decode[whoamiResult](t, other.Call(t, "auth_whoami", nil))
	sc.login(t, "frank@example.com", sc.password)

	// The change: the current session stays, the others end.
	p := decode[setPasswordResult](t, current.Call(t, "user_set_password", args{"current_password": sc.password, "new_password": next}))
	if !p.OK || p.SessionsRevoked != 2 {
		t.Fatalf("user_set_password: %+v, want ok and the 2 other sessions revoked", p)
	}
	decode[whoamiResult](t, current.Call(t, "auth_whoami", nil))
	other.WantUnauthorized(t, "auth_whoami", nil, "")
	sc.anon.Call(t, "auth_refresh", args{"refresh_token": otherTok.RefreshToken}).WantError(t, "TOKEN_REVOKED")
	sc.anon.Call(t, "auth_login", args{"email": "frank@example.com", "password": sc.password}).WantError(t, "INVALID_CREDENTIALS")
	sc.login(t, "frank@example.com", next)
	ev := sc.wantOneEvent(t, "USER_UPDATED", frank.ID, frank.ID)
	if b, _ := json.Marshal(ev.Details); string(b) != `{"by":"self","fields":["password"],"sessions_revoked":2}` {
		t.Errorf("USER_UPDATED details of a password change: %s", b)
	}
	// Failed logins are recorded asynchronously (nothing waits on them): wait for the second.
	failed := sc.events(t, "AUTH_FAILED", frank.ID)
	for deadline := time.Now().Add(10 * time.Second); len(failed) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // polling for the condition, bounded by the deadline
		failed = sc.events(t, "AUTH_FAILED", frank.ID)
	}
	if len(failed) != 2 || failed[1].Details["during"] != "password_change" {
		t.Errorf("AUTH_FAILED events of frank (the wrong current password, then the old password at login): %s", dump(failed))
	}

	// Even an owner changes its own password only with the current one.
	sc.owner.Call(t, "user_set_password", args{"id": sc.ownerID, "new_password": reset}).WantFieldError(t, "current_password")

	// An administrator's reset: every session of frank ends.
	sc.helpdesk.Call(t, "user_set_password", args{"id": frank.ID, "current_password": next, "new_password": reset}).WantFieldError(t, "current_password")
	sc.helpdesk.Call(t, "user_set_password", args{"id": "usr_doesnotexist", "new_password": reset}).WantError(t, "NOT_FOUND")
	p = decode[setPasswordResult](t, sc.helpdesk.Call(t, "user_set_password", args{"id": frank.ID, "new_password": reset}))
	if !p.OK || p.SessionsRevoked != 2 {
		t.Fatalf("user_set_password reset: %+v, want ok and frank's 2 sessions revoked", p)
	}
	current.WantUnauthorized(t, "auth_whoami", nil, "")
	sc.anon.Call(t, "auth_login", args{"email": "frank@example.com", "password": next}).WantError(t, "INVALID_CREDENTIALS")
	sc.login(t, "frank@example.com", reset)
	resets := sc.events(t, "USER_UPDATED", frank.ID)
	if len(resets) != 2 || resets[0].Actor != sc.helpID || resets[0].Details["by"] != "admin" {
		t.Errorf("USER_UPDATED events of frank: %s", dump(resets))
	}
}

func runDelete(t *testing.T, sc *adminScenario) {
	dave := sc.newUser(t, "dave@example.com")
	dc, daveTok := sc.login(t, "dave@example.com", sc.password)
	key := createKey(t, dc, sc.sec, "dave's script", []string{"projects:read"}, nil)
	unknown := errorBody(t, sc.anon.Call(t, "auth_login", args{"email": "nobody@example.com", "password": sc.password}), "INVALID_CREDENTIALS")

	if d := decode[deletedResult](t, sc.helpdesk.Call(t, "user_delete", args{"id": dave.ID})); !d.Deleted {
		t.Fatalf("user_delete: %+v", d)
	}
	sc.owner.Call(t, "user_get", args{"id": dave.ID}).WantError(t, "NOT_FOUND")
	sc.helpdesk.Call(t, "user_delete", args{"id": dave.ID}).WantError(t, "NOT_FOUND")
	sc.owner.Call(t, "user_update", args{"id": dave.ID, "fields": args{"disabled": false}}).WantError(t, "NOT_FOUND")
	list := decode[userListResult](t, sc.owner.Call(t, "user_list", args{"filter": "dave"}))
	if len(list.Users) != 0 {
		t.Fatalf("user_list after deletion: %+v", list)
	}
	dc.WantUnauthorized(t, "auth_whoami", nil, "")
	keyConn := dialHTTP(t, sc.srv)
	keyConn.SetBearer(key.Key)
	keyConn.WantUnauthorized(t, "auth_whoami", nil, "")
	sc.anon.Call(t, "auth_refresh", args{"refresh_token": daveTok.RefreshToken}).WantError(t, "TOKEN_REVOKED")
	// A deleted account logs in like an account that never was.
	wantSameAnswer(t, "login of a deleted account", errorBody(t, sc.anon.Call(t, "auth_login", args{"email": "dave@example.com", "password": sc.password}), "INVALID_CREDENTIALS"), unknown)

	sc.wantOneEvent(t, "USER_DELETED", dave.ID, sc.helpID)
	if revoked := sc.events(t, "ROLE_REVOKED", dave.ID); len(revoked) != 1 || revoked[0].Details["role"] != "viewer" || revoked[0].Actor != sc.helpID {
		t.Errorf("ROLE_REVOKED events of dave: %s", dump(revoked))
	}
	// Without erase, the record of dave's session stays (revoked).
	if n, err := sc.st.db.Collection("sessions").CountDocuments(auditCtx(t), bson.D{{Key: "user_id", Value: dave.ID}}); err != nil || n != 1 {
		t.Errorf("dave's sessions after deletion without erase: %d, %v", n, err)
	}

	// The email is free again: a new account with a new id and nothing of the old one.
	again := sc.owner.CreateUser(t, "dave@example.com", sc.password)
	if again.ID == dave.ID || len(again.Roles) != 0 {
		t.Fatalf("a new account with a deleted account's email: %+v", again)
	}
	sc.login(t, "dave@example.com", sc.password)
	dc.WantUnauthorized(t, "auth_whoami", nil, "")
}

func runErase(t *testing.T, sc *adminScenario) {
	erin := sc.newUser(t, "erin@example.com")
	ec, _ := sc.login(t, "erin@example.com", sc.password)
	// A second session, refreshed once: a spent refresh token and its replacement.
	_, tok := sc.login(t, "erin@example.com", sc.password)
	tok = decode[tokenResult](t, sc.anon.Call(t, "auth_refresh", args{"refresh_token": tok.RefreshToken}))
	sc.sec.Add(tok.AccessToken, tok.RefreshToken)
	key := createKey(t, ec, sc.sec, "erin's script", []string{"projects:read"}, nil)
	decode[revokeResult](t, ec.Call(t, "apikey_revoke", args{"id": key.ID}))
	createKey(t, ec, sc.sec, "erin's other script", []string{"projects:read"}, nil)
	en := enrollMFA(t, ec, "erin@example.com")
	sc.sec.Add(en.Secret, en.OTPAuthURL)
	conf := decode[mfaConfirmed](t, ec.Call(t, "mfa_confirm", args{"code": totpCode(t, en.Secret, totpStep(time.Now()))}))
	sc.sec.Add(conf.RecoveryCodes...)
	if v := decode[struct{ Verified bool }](t, ec.Call(t, "mfa_verify", args{"code": conf.RecoveryCodes[0]})); !v.Verified {
		t.Fatalf("mfa_verify with a recovery code: %+v", v)
	}
	// Erin's id and email, and the ids of records that point at erin's records without naming
	// erin (refresh-token spends by token hash, key revocations by key id).
	needles := []string{erin.ID, "erin@example.com"}
	for _, coll := range []string{"refresh_tokens", "api_keys"} {
		var docs []struct {
			ID string `bson:"_id"`
		}
		cur, err := sc.st.db.Collection(coll).Find(auditCtx(t), bson.D{{Key: "user_id", Value: erin.ID}})
		if err != nil || cur.All(auditCtx(t), &docs) != nil {
			t.Fatalf("read %s: %v", coll, err)
		}
		for _, d := range docs {
			needles = append(needles, d.ID)
		}
	}
	mentions := func() []string { return mentionsOutsideAudit(t, sc, needles...) }
	// Before: every kind of record mentions erin, so the check after the erase proves something.
	before := map[string]bool{}
	for _, m := range mentions() {
		before[m[:strings.Index(m, ":")]] = true
	}
	for _, coll := range []string{"users", "sessions", "refresh_tokens", "refresh_token_spends", "api_keys", "api_key_revocations",
		"mfa", "mfa_totp_steps", "mfa_recovery_spent", "rbac_subjects", "rbac_subject_heads", "user_names"} {
		if !before[coll] {
			t.Fatalf("before the erase no record of %s mentions erin (%v): the check below would prove less than it says", coll, before)
		}
	}

	if d := decode[deletedResult](t, sc.owner.Call(t, "user_delete", args{"id": erin.ID, "erase": true})); !d.Deleted {
		t.Fatalf("user_delete erase: %+v", d)
	}
	sc.owner.Call(t, "user_get", args{"id": erin.ID}).WantError(t, "NOT_FOUND")
	ec.WantUnauthorized(t, "auth_whoami", nil, "")
	// The refresh token's record is gone, not only revoked.
	sc.anon.Call(t, "auth_refresh", args{"refresh_token": tok.RefreshToken}).WantError(t, "TOKEN_INVALID")
	// Nothing outside the audit trail mentions erin any more.
	if m := mentions(); len(m) > 0 {
		t.Errorf("after user_delete with erase, records still mention erin:\n%s", strings.Join(m, "\n"))
	}
	ev := sc.wantOneEvent(t, "USER_DELETED", erin.ID, sc.ownerID)
	if ev.Details["erase"] != true || ev.Details["sessions_revoked"] != float64(2) || ev.Details["api_keys_revoked"] != float64(1) {
		t.Errorf("USER_DELETED event: %s", ev)
	}
}

// mentionsOutsideAudit returns every stored document, outside the audit trail's collections,
// that mentions any of needles (as collection: document).
func mentionsOutsideAudit(t *testing.T, sc *adminScenario, needles ...string) []string {
	t.Helper()
	ctx := auditCtx(t)
	names, err := sc.st.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatalf("list collections: %v", err)
	}
	var out []string
	for _, name := range names {
		if strings.HasPrefix(name, "audit_") {
			continue
		}
		cur, err := sc.st.db.Collection(name).Find(ctx, bson.D{})
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		for _, d := range docs {
			if s := d.String(); slices.ContainsFunc(needles, func(n string) bool { return strings.Contains(s, n) }) {
				out = append(out, name+": "+s)
			}
		}
	}
	return out
}

// A stdio session bound by auth_login stays bound through its own password change; the
// process's other sessions end.
func TestShouldKeepTheStdioSessionThroughItsOwnPasswordChange(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	next := "e2e-Stdio-" + randomHex(8)
	sec.Add(in.OwnerPassword, next)
	c := dialStdio(t, in)
	earlier := c.Login(t, sec, in.Owner())
	current := c.Login(t, sec, in.Owner()) // binds the stdio session to a second login

	p := decode[setPasswordResult](t, c.Call(t, "user_set_password", args{"current_password": in.OwnerPassword, "new_password": next}))
	if !p.OK || p.SessionsRevoked != 1 {
		t.Fatalf("user_set_password over stdio: %+v", p)
	}
	if w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil)); w.User.ID != current.User.ID || w.SessionID != current.SessionID {
		t.Fatalf("whoami after the change: %+v", w)
	}
	c.Call(t, "auth_validate", args{"token": earlier.AccessToken}).WantError(t, "TOKEN_REVOKED")
	c.Call(t, "auth_refresh", args{"refresh_token": earlier.RefreshToken}).WantError(t, "TOKEN_REVOKED")
	c.Call(t, "auth_login", args{"email": in.OwnerEmail, "password": in.OwnerPassword}).WantError(t, "INVALID_CREDENTIALS")
	c.Login(t, sec, args{"email": in.OwnerEmail, "password": next})
	sec.CheckNotIn(t, "server stderr", c.Stderr.String())
}
