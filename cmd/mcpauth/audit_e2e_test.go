package main

// End-to-end tests of the audit trail: the real mcpauth binary against a MongoDB-wire server the
// test shares (MCPAUTH_MONGO_URI, a database of its own), so that the test reads audit_events
// directly, and tampers with it, besides asking the server through audit_query and
// audit_verify, and the command line through mcpauth audit verify.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/audit"
)

var quietLogger = slog.New(slog.DiscardHandler)

// auditWait bounds how long a test waits for the asynchronous writer to store events.
const auditWait = 30 * time.Second

// auditEvent is an event as audit_query shows it and as audit_events stores it.
type auditEvent struct {
	ID         string         `json:"id" bson:"_id"`
	Instance   string         `json:"instance" bson:"instance"`
	Seq        int64          `json:"seq" bson:"seq"`
	Type       string         `json:"type" bson:"type"`
	Severity   string         `json:"severity" bson:"severity"`
	Time       time.Time      `json:"time" bson:"time"`
	Subject    string         `json:"subject,omitempty" bson:"subject,omitempty"`
	Actor      string         `json:"actor,omitempty" bson:"actor,omitempty"`
	OrgID      string         `json:"org_id,omitempty" bson:"org_id,omitempty"`
	ClientAddr string         `json:"client_addr,omitempty" bson:"client_addr,omitempty"`
	Transport  string         `json:"transport,omitempty" bson:"transport,omitempty"`
	RequestID  string         `json:"request_id,omitempty" bson:"request_id,omitempty"`
	SessionID  string         `json:"session_id,omitempty" bson:"session_id,omitempty"`
	Details    map[string]any `json:"details,omitempty" bson:"details,omitempty"`
	PrevHash   string         `json:"prev_hash" bson:"prev_hash"`
	Hash       string         `json:"hash" bson:"hash"`
}

func (e auditEvent) String() string {
	return fmt.Sprintf("#%d %s %s %s subject=%s actor=%s %s/%s %v", e.Seq, e.Time.Format("15:04:05.000"), e.ID,
		e.Type, e.Subject, e.Actor, e.Transport, e.ClientAddr, e.Details)
}

// tool is the tool a decision event is about.
func (e auditEvent) tool() string { s, _ := e.Details["tool"].(string); return s }

// canonical is the event as JSON (BSON arrays and JSON arrays alike), to compare events read
// from MongoDB with events read from audit_query.
func (e auditEvent) canonical(t *testing.T) string {
	t.Helper()
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type auditPage struct {
	Events     []auditEvent `json:"events"`
	NextCursor string       `json:"next_cursor"`
}

type badLink struct {
	Instance string `json:"instance"`
	Seq      int64  `json:"seq"`
	EventID  string `json:"event_id"`
	Problem  string `json:"problem"`
}

type verifyResult struct {
	OK       bool     `json:"ok"`
	Checked  int64    `json:"checked"`
	Chains   int      `json:"chains"`
	FirstBad *badLink `json:"first_bad"`
}

func eventTypes(events []auditEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

func eventIDs(events []auditEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

func dump(events []auditEvent) string {
	var b strings.Builder
	for _, e := range events {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}

func reversed[T any](s []T) []T {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// auditStore is an installation whose processes use a MongoDB database the test reads too.
type auditStore struct {
	in *instance
	db *mongo.Database // the test's own client, straight to the server
}

// newAuditInstance returns an installation on a fresh database of a MongoDB-wire server of the
// test's (sharedStore: a FerretDB of its own, or MCPAUTH_TEST_MONGO_URI), passed to its
// processes as MCPAUTH_MONGO_URI and MCPAUTH_MONGO_DB, with the test's own client on that
// database.
func newAuditInstance(t *testing.T, extraEnv ...string) *auditStore {
	t.Helper()
	uri, db := sharedStore(t)
	in := &instance{
		DataDir: t.TempDir(), MongoURI: uri, MongoDB: db,
		OwnerEmail: "owner@example.com", OwnerPassword: "e2e-Owner-" + randomHex(8), Bootstrap: true,
		Extra: extraEnv,
	}
	return &auditStore{in: in, db: connectDB(t, uri, db)}
}

// connectDB connects the test to database name of uri.
func connectDB(t *testing.T, uri, name string) *mongo.Database {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatalf("connect to %s: %v", uri, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Disconnect(ctx)
	})
	return c.Database(name)
}

func (s *auditStore) coll() *mongo.Collection { return s.db.Collection("audit_events") }

func auditCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), auditWait)
	t.Cleanup(cancel)
	return ctx
}

// stored returns the stored events matching filter (nil: all) in chain order.
func (s *auditStore) stored(t *testing.T, filter bson.D) []auditEvent {
	t.Helper()
	if filter == nil {
		filter = bson.D{}
	}
	ctx := auditCtx(t)
	cur, err := s.coll().Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "instance", Value: 1}, {Key: "seq", Value: 1}}))
	if err != nil {
		t.Fatalf("read audit_events: %v", err)
	}
	var out []auditEvent
	if err := cur.All(ctx, &out); err != nil {
		t.Fatalf("read audit_events: %v", err)
	}
	return out
}

// waitStored polls audit_events until filter (nil: all) matches n events and returns them in
// chain order. More than n is a failure: an event stored twice, or one nobody expected.
func (s *auditStore) waitStored(t *testing.T, filter bson.D, n int) []auditEvent {
	t.Helper()
	if filter == nil {
		filter = bson.D{}
	}
	deadline := time.Now().Add(auditWait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := s.coll().CountDocuments(auditCtx(t), filter)
		if err != nil {
			t.Fatalf("count audit_events: %v", err)
		}
		if got >= int64(n) {
			events := s.stored(t, filter)
			if len(events) != n {
				t.Fatalf("audit_events %v: %d events, want %d:\n%s", filter, len(events), n, dump(events))
			}
			return events
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit_events %v: %d events after %s, want %d:\n%s", filter, got, auditWait, n, dump(s.stored(t, filter)))
		}
		<-tick.C
	}
}

// instanceOf returns the audit chain of a data directory.
func instanceOf(t *testing.T, dataDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "instance.id"))
	if err != nil {
		t.Fatalf("instance id: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// wantOneUnbrokenChain checks that events (in chain order) are positions 1..n of one chain,
// each once.
func wantOneUnbrokenChain(t *testing.T, events []auditEvent, instance string) {
	t.Helper()
	ids := map[string]bool{}
	for i, e := range events {
		if e.Instance != instance || e.Seq != int64(i+1) || ids[e.ID] {
			t.Fatalf("event %d is %s of chain %s, want position %d of chain %s, each id once:\n%s", i, e, e.Instance, i+1, instance, dump(events))
		}
		ids[e.ID] = true
	}
}

// queryPage calls audit_query.
func queryPage(t *testing.T, c *conn, a args) auditPage {
	t.Helper()
	return decode[auditPage](t, c.Call(t, "audit_query", a))
}

// queryAll pages through audit_query, limit events a page, and returns every event, newest
// first. Each page but the last must be full.
func queryAll(t *testing.T, c *conn, a args, limit int) []auditEvent {
	t.Helper()
	var all []auditEvent
	cursor := ""
	for range 1000 {
		q := args{"limit": limit}
		for k, v := range a {
			q[k] = v
		}
		if cursor != "" {
			q["cursor"] = cursor
		}
		p := queryPage(t, c, q)
		if len(p.Events) > limit || (p.NextCursor != "" && len(p.Events) != limit) {
			t.Fatalf("audit_query %v: a page of %d events with next_cursor %q", q, len(p.Events), p.NextCursor)
		}
		all = append(all, p.Events...)
		if p.NextCursor == "" {
			return all
		}
		cursor = p.NextCursor
	}
	t.Fatal("audit_query: more than 1000 pages")
	return nil
}

// wantNewestFirst checks that events are in audit_query's order (time, then id, descending)
// with no event twice.
func wantNewestFirst(t *testing.T, what string, events []auditEvent) {
	t.Helper()
	seen := map[string]bool{}
	for i, e := range events {
		if seen[e.ID] {
			t.Fatalf("%s: event %s listed twice:\n%s", what, e.ID, dump(events))
		}
		seen[e.ID] = true
		if i > 0 {
			p := events[i-1]
			if e.Time.After(p.Time) || (e.Time.Equal(p.Time) && e.ID >= p.ID) {
				t.Fatalf("%s: %s listed after %s: not newest first:\n%s", what, e, p, dump(events))
			}
		}
	}
}

// wantSameEvents checks that audit_query showed exactly the stored events, in that order and
// with every field as stored.
func wantSameEvents(t *testing.T, what string, got, want []auditEvent) {
	t.Helper()
	if !slices.Equal(eventIDs(got), eventIDs(want)) {
		t.Fatalf("%s: audit_query shows\n%swant\n%s", what, dump(got), dump(want))
	}
	for i := range got {
		if g, w := got[i].canonical(t), want[i].canonical(t); g != w {
			t.Fatalf("%s: audit_query shows event %d as\n%s\nstored as\n%s", what, i, g, w)
		}
	}
}

// withoutOwnQuery drops, from the head of a newest-first list, the decision events of the
// audit_query calls that made the list: the guard records each call's AUTHZ_GRANTED before the
// call reads the trail, asynchronously, so whether it is already stored is a race.
func withoutOwnQuery(events []auditEvent) []auditEvent {
	for len(events) > 0 && events[0].Type == audit.AuthzGranted && events[0].tool() == "audit_query" {
		events = events[1:]
	}
	return events
}

// wantEvent is an expected event: its type, subject ("*": any) and some of its details.
type wantEvent struct {
	typ      string
	subject  string
	severity string // "" : info
	details  map[string]any
}

func wantEvents(t *testing.T, got []auditEvent, want []wantEvent) {
	t.Helper()
	wantTypes := make([]string, len(want))
	for i, w := range want {
		wantTypes[i] = w.typ
	}
	if !slices.Equal(eventTypes(got), wantTypes) {
		t.Fatalf("event types\n%v\nwant\n%v\nevents:\n%s", eventTypes(got), wantTypes, dump(got))
	}
	for i, w := range want {
		e := got[i]
		sev := w.severity
		if sev == "" {
			sev = string(audit.Info)
		}
		if (w.subject != "*" && e.Subject != w.subject) || e.Severity != sev {
			t.Errorf("event %d: %s severity %s, want subject %q severity %s", i, e, e.Severity, w.subject, sev)
		}
		for k, v := range w.details {
			if fmt.Sprint(e.Details[k]) != fmt.Sprint(v) {
				t.Errorf("event %d: %s: details[%s] = %v, want %v", i, e, k, e.Details[k], v)
			}
		}
	}
}

func TestShouldRecordALoginScenarioAsExactlyTheExpectedEventsInOrder(t *testing.T) {
	t.Parallel()
	st := newAuditInstance(t) // AUTHZ_GRANTED sampled at 1 (the default): every decision is kept
	in := st.in
	srv := startHTTP(t, in, "http")
	instance := instanceOf(t, in.DataDir)
	c := dialHTTP(t, srv)

	tok := c.Login(t, nil, in.Owner())
	owner := tok.User.ID
	c.Call(t, "auth_login", args{"email": in.OwnerEmail, "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	c.Call(t, "auth_login", args{"email": "ghost@example.com", "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	refreshed := c.Refresh(t, nil, tok.RefreshToken)
	c.Call(t, "auth_refresh", args{"refresh_token": tok.RefreshToken}).WantError(t, "TOKEN_REVOKED") // reuse: the session ends
	c.Login(t, nil, in.Owner())
	password := "e2e-Audit-" + randomHex(8)
	admin := c.CreateUser(t, "admin@example.com", password, "admin").ID
	ac := dialHTTP(t, srv)
	ac.Login(t, nil, args{"email": "admin@example.com", "password": password})
	decode[userListResult](t, ac.Call(t, "user_list", nil)) // granted
	decode[okResult](t, c.Call(t, "role_revoke", args{"user_id": admin, "role": "admin"}))
	// The admin's token still carries users:read, so the HTTP guard lets the call through; the
	// guard's middleware checks the live assignment and denies it.
	ac.Call(t, "user_list", nil).WantError(t, "PERMISSION_DENIED")
	decode[okResult](t, c.Call(t, "role_assign", args{"user_id": admin, "role": "viewer"}))

	grant := func(subject, tool string) wantEvent {
		return wantEvent{typ: audit.AuthzGranted, subject: subject, details: map[string]any{"tool": tool}}
	}
	want := []wantEvent{
		// The bootstrap owner, at the first start.
		{typ: audit.RoleAssigned, subject: owner, details: map[string]any{"role": "owner"}},
		{typ: audit.PermissionGranted, subject: owner, details: map[string]any{"permission": "audit:read_all"}},
		{typ: audit.UserCreated, subject: owner, details: map[string]any{"email": in.OwnerEmail}},
		grant("", "auth_login"), // no credential yet: an anonymous call of a public tool
		{typ: audit.AuthSuccess, subject: owner, details: map[string]any{"method": "password", "mfa": false}},
		grant(owner, "auth_login"),
		{typ: audit.AuthFailed, subject: owner, severity: "warning", details: map[string]any{"reason": audit.ReasonInvalidPassword}},
		grant(owner, "auth_login"),
		{typ: audit.AuthFailed, subject: "", severity: "warning", details: map[string]any{"reason": audit.ReasonUserNotFound, "identifier": "ghost@example.com"}},
		grant(owner, "auth_refresh"),
		{typ: audit.TokenRefreshed, subject: owner},
		grant(owner, "auth_refresh"),
		{typ: audit.SessionRevoked, subject: "*", details: map[string]any{"reason": "refresh token reuse"}},
		{typ: audit.TokenReuseDetected, subject: owner, severity: "critical"},
		grant("", "auth_login"), // the conn's token died with its session
		{typ: audit.AuthSuccess, subject: owner},
		grant(owner, "user_create"),
		{typ: audit.RoleAssigned, subject: admin, details: map[string]any{"role": "admin"}},
		{typ: audit.UserCreated, subject: admin, details: map[string]any{"email": "admin@example.com"}},
		grant("", "auth_login"),
		{typ: audit.AuthSuccess, subject: admin},
		grant(admin, "user_list"),
		grant(owner, "role_revoke"),
		{typ: audit.RoleRevoked, subject: admin, severity: "warning", details: map[string]any{"role": "admin"}},
		{typ: audit.AuthzDenied, subject: admin, severity: "warning",
			details: map[string]any{"tool": "user_list", "code": "PERMISSION_DENIED", "required_permissions": []string{"users:read"}}},
		grant(owner, "role_assign"),
		{typ: audit.RoleAssigned, subject: admin, details: map[string]any{"role": "viewer"}},
	}
	stored := st.waitStored(t, nil, len(want))
	wantOneUnbrokenChain(t, stored, instance)
	wantEvents(t, stored, want)
	for i, e := range stored {
		switch {
		case i < 3: // at start, before any request
			if e.Transport != "" || e.ClientAddr != "" || e.Actor != "" {
				t.Errorf("bootstrap event %s has request fields", e)
			}
		case e.Transport != "http" || e.ClientAddr != "127.0.0.1":
			t.Errorf("event %s: want transport http, client_addr 127.0.0.1", e)
		}
	}
	for i, sid := range map[int]string{4: tok.SessionID, 10: refreshed.SessionID, 13: tok.SessionID} {
		if stored[i].SessionID != sid {
			t.Errorf("event %s: session %q, want %q", stored[i], stored[i].SessionID, sid)
		}
	}
	if e := stored[24]; e.Actor != admin || e.Details["reason"] == "" {
		t.Errorf("AUTHZ_DENIED %s: want the admin as actor and a reason", e)
	}
	if e := stored[26]; e.Actor != owner {
		t.Errorf("ROLE_ASSIGNED %s: want the owner as actor", e)
	}

	// audit_query (as the owner, who holds audit:read) shows the same events, newest first.
	page := queryPage(t, c, args{"limit": 500})
	if page.NextCursor != "" {
		t.Fatalf("audit_query: next_cursor %q on the only page", page.NextCursor)
	}
	wantNewestFirst(t, "audit_query", page.Events)
	wantSameEvents(t, "audit_query", withoutOwnQuery(page.Events), reversed(stored))

	v := decode[verifyResult](t, c.Call(t, "audit_verify", nil))
	if !v.OK || v.FirstBad != nil || v.Chains != 1 || v.Checked < int64(len(want)) {
		t.Fatalf("audit_verify: %+v (first bad %+v)", v, v.FirstBad)
	}
}

func TestShouldPageAuditQueryNewestFirstWithFilters(t *testing.T) {
	t.Parallel()
	st := newAuditInstance(t)
	in := st.in
	c := dialStdio(t, in)
	instance := instanceOf(t, in.DataDir)
	owner := c.Login(t, nil, in.Owner()).User.ID
	password := "e2e-Page-" + randomHex(8)
	var users []string
	for i := range 3 {
		users = append(users, c.CreateUser(t, fmt.Sprintf("user%d@example.com", i), password, "viewer").ID)
	}
	for range 2 {
		c.Call(t, "auth_login", args{"email": "user0@example.com", "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	}
	c.Call(t, "auth_login", args{"email": "nobody@example.com", "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	// bootstrap 3 + login 2 + 3 users × 3 + 3 failed logins × 2
	stored := st.waitStored(t, nil, 20)
	wantOneUnbrokenChain(t, stored, instance)
	for _, e := range stored[3:] {
		if e.Transport != "stdio" || e.ClientAddr != "local" {
			t.Errorf("event %s: want transport stdio, client_addr local", e)
		}
	}

	// Everything, four a page: the stored events newest first, each once, behind the decision
	// events of these very audit_query calls (newer than all of them).
	all := queryAll(t, c, nil, 4)
	wantNewestFirst(t, "audit_query, 4 a page", all)
	wantSameEvents(t, "audit_query, 4 a page", withoutOwnQuery(all), reversed(stored))
	// Only the first call's own decision can be on a page (if stored before the call read the
	// trail): the later calls' are newer than the cursor they page from.
	if n := len(all) - len(withoutOwnQuery(all)); n > 1 {
		t.Errorf("audit_query, 4 a page: %d events of its own calls ahead of the rest, want at most 1", n)
	}

	filter := func(keep func(auditEvent) bool) []auditEvent {
		var out []auditEvent
		for _, e := range stored {
			if keep(e) {
				out = append(out, e)
			}
		}
		return reversed(out)
	}
	failed := filter(func(e auditEvent) bool { return e.Type == audit.AuthFailed })
	if len(failed) != 3 {
		t.Fatalf("stored AUTH_FAILED events:\n%s", dump(failed))
	}
	wantSameEvents(t, "type AUTH_FAILED", queryAll(t, c, args{"type": audit.AuthFailed}, 2), failed)
	user0 := filter(func(e auditEvent) bool { return e.Subject == users[0] })
	if len(user0) != 4 { // ROLE_ASSIGNED, USER_CREATED, 2 × AUTH_FAILED
		t.Fatalf("stored events about user0:\n%s", dump(user0))
	}
	wantSameEvents(t, "user_id user0", queryAll(t, c, args{"user_id": users[0]}, 3), user0)
	wantSameEvents(t, "type AUTH_FAILED, user_id user0", queryAll(t, c, args{"type": audit.AuthFailed, "user_id": users[0]}, 1),
		filter(func(e auditEvent) bool { return e.Type == audit.AuthFailed && e.Subject == users[0] }))
	// A time range: since inclusive, until exclusive.
	since, until := stored[7].Time, stored[15].Time
	wantSameEvents(t, "since..until", queryAll(t, c, args{"since": since.Format(time.RFC3339Nano), "until": until.Format(time.RFC3339Nano)}, 2),
		filter(func(e auditEvent) bool { return !e.Time.Before(since) && e.Time.Before(until) }))
	if p := queryPage(t, c, args{"type": "NO_SUCH_TYPE"}); len(p.Events) != 0 || p.NextCursor != "" {
		t.Errorf("audit_query of an unknown type: %+v", p)
	}
	wantSameEvents(t, "user_id owner, type AUTH_SUCCESS", queryAll(t, c, args{"user_id": owner, "type": audit.AuthSuccess}, 10),
		filter(func(e auditEvent) bool { return e.Subject == owner && e.Type == audit.AuthSuccess }))

	// Bad arguments are the caller's error, not the server's.
	c.Call(t, "audit_query", args{"cursor": "not-a-cursor"}).WantFieldError(t, "cursor")
	c.Call(t, "audit_query", args{"limit": 0}).WantFieldError(t, "limit")
	c.Call(t, "audit_query", args{"since": "yesterday"}).WantFieldError(t, "since")
	c.Call(t, "audit_query", args{"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}).WantFieldError(t, "until")

	// A viewer holds no audit:read.
	c.Login(t, nil, args{"email": "user1@example.com", "password": password})
	c.WantInsufficientScope(t, "audit_query", nil, "audit:read")
	c.WantInsufficientScope(t, "audit_verify", nil, "audit:read")
	c.CloseStdio(t)
	if s := c.Stderr.String(); strings.Contains(s, "level=ERROR") {
		t.Errorf("server logged errors:\n%s", s)
	}
}

// An audit search that runs out of its time (MCPAUTH_AUDIT_SEARCH_TIMEOUT) says so, and what
// to do, and the trail it could not search is untouched: audit_verify still reads it whole.
func TestShouldSayWhenAnAuditSearchRunsOutOfTime(t *testing.T) {
	t.Parallel()
	st := newAuditInstance(t, "MCPAUTH_AUDIT_SEARCH_TIMEOUT=1ns")
	c := dialStdio(t, st.in)
	c.Login(t, nil, st.in.Owner())
	e := c.Call(t, "audit_query", nil).WantError(t, "INTERNAL")
	if !strings.Contains(e.Message, "ran out of time") || !strings.Contains(e.Message, "--audit-retention") {
		t.Errorf("audit_query past its time: message %q, want it to say it ran out of time and what to do", e.Message)
	}
	if v := decode[verifyResult](t, c.Call(t, "audit_verify", nil)); !v.OK || v.Checked == 0 {
		t.Errorf("audit_verify after a search that ran out of time: %+v", v)
	}
	c.CloseStdio(t)
}

// verifyCLI runs mcpauth audit verify on in's store and returns its exit code, the result it
// printed on stdout and its stderr.
func verifyCLI(t *testing.T, in *instance) (int, verifyResult, string) {
	t.Helper()
	code, stdout, stderr := runBinary(t, in.Env(), "", startTimeout, "audit", "verify")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	var res verifyResult
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &res) != nil {
		t.Fatalf("mcpauth audit verify: stdout is not one JSON result: %q (stderr %q)", stdout, stderr)
	}
	return code, res, stderr
}

// errorLines are the lines of a CLI's stderr that are messages (not the progress bar's redraws).
func errorLines(stderr string) []string {
	var out []string
	for _, l := range strings.FieldsFunc(stderr, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if strings.HasPrefix(l, "mcpauth:") {
			out = append(out, l)
		}
	}
	return out
}

func TestShouldFindTheFirstBrokenLinkOfAnEditedDeletedOrReorderedTrail(t *testing.T) {
	t.Parallel()
	st := newAuditInstance(t)
	in := st.in
	srv := startHTTP(t, in, "http")
	instance := instanceOf(t, in.DataDir)
	c := dialHTTP(t, srv)
	c.Login(t, nil, in.Owner())
	for range 3 {
		c.Call(t, "auth_login", args{"email": in.OwnerEmail, "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	}
	c.Login(t, nil, in.Owner())
	chain := st.waitStored(t, bson.D{{Key: "instance", Value: instance}}, 13) // bootstrap 3 + 5 logins × 2

	verifyTool := func() verifyResult {
		t.Helper()
		return decode[verifyResult](t, c.Call(t, "audit_verify", nil))
	}
	wantIntact := func(what string, chains int, checked int64) string {
		t.Helper()
		if v := verifyTool(); !v.OK || v.FirstBad != nil || v.Chains != chains || v.Checked < checked {
			t.Fatalf("%s: audit_verify %+v (first bad %+v), want ok over %d chains", what, v, v.FirstBad, chains)
		}
		code, res, stderr := verifyCLI(t, in)
		if code != 0 || !res.OK || res.Chains != chains || res.Checked < checked || len(errorLines(stderr)) != 0 {
			t.Fatalf("%s: mcpauth audit verify exit %d, %+v, stderr %q", what, code, res, stderr)
		}
		return stderr
	}
	wantBroken := func(what string, want badLink) {
		t.Helper()
		v := verifyTool()
		if v.OK || v.FirstBad == nil || *v.FirstBad != want {
			t.Fatalf("%s: audit_verify %+v (first bad %+v), want first bad %+v", what, v, v.FirstBad, want)
		}
		code, res, stderr := verifyCLI(t, in)
		lines := errorLines(stderr)
		if code != 1 || res.OK || res.FirstBad == nil || *res.FirstBad != want || len(lines) != 1 ||
			!strings.Contains(lines[0], want.Problem) || !strings.Contains(lines[0], fmt.Sprintf("%s #%d", want.Instance, want.Seq)) {
			t.Fatalf("%s: mcpauth audit verify exit %d, %+v (first bad %+v), stderr %q; want exit 1 and one line naming %+v",
				what, code, res, res.FirstBad, stderr, want)
		}
	}
	raw := func(seq int64) bson.Raw {
		t.Helper()
		r, err := st.coll().FindOne(auditCtx(t), bson.D{{Key: "instance", Value: instance}, {Key: "seq", Value: seq}}).Raw()
		if err != nil {
			t.Fatalf("read event %d: %v", seq, err)
		}
		return slices.Clone(r)
	}
	restore := func(seq int64, doc bson.Raw) {
		t.Helper()
		id := doc.Lookup("_id").StringValue()
		if _, err := st.coll().ReplaceOne(auditCtx(t), bson.D{{Key: "_id", Value: id}}, doc, options.Replace().SetUpsert(true)); err != nil {
			t.Fatalf("restore event %d: %v", seq, err)
		}
	}
	setSeq := func(id string, seq int64) {
		t.Helper()
		if _, err := st.coll().UpdateOne(auditCtx(t), bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: seq}}}}); err != nil {
			t.Fatalf("move event %s to %d: %v", id, seq, err)
		}
	}
	wantIntact("untouched", 1, 13)

	// Edited: a failed login made to look like another reason.
	edited := chain[6]
	if edited.Type != audit.AuthFailed {
		t.Fatalf("event 7 of the server's chain is %s, want AUTH_FAILED", edited)
	}
	orig := raw(edited.Seq)
	if _, err := st.coll().UpdateOne(auditCtx(t), bson.D{{Key: "_id", Value: edited.ID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "details.reason", Value: audit.ReasonUserNotFound}}}}); err != nil {
		t.Fatal(err)
	}
	wantBroken("edited", badLink{Instance: instance, Seq: edited.Seq, EventID: edited.ID, Problem: "edited"})
	restore(edited.Seq, orig)
	wantIntact("edit undone", 1, 13)

	// Missing: one event deleted.
	deleted := chain[8]
	orig = raw(deleted.Seq)
	if _, err := st.coll().DeleteOne(auditCtx(t), bson.D{{Key: "_id", Value: deleted.ID}}); err != nil {
		t.Fatal(err)
	}
	wantBroken("deleted", badLink{Instance: instance, Seq: deleted.Seq, Problem: "missing"})
	restore(deleted.Seq, orig)
	wantIntact("deletion undone", 1, 13)

	// Out of order: two events swap places; the first place now holds an event that does not
	// link to the one before it.
	a, b := chain[4], chain[7]
	setSeq(a.ID, -1)
	setSeq(b.ID, a.Seq)
	setSeq(a.ID, b.Seq)
	wantBroken("swapped", badLink{Instance: instance, Seq: a.Seq, EventID: b.ID, Problem: "out of order"})
	setSeq(a.ID, -1)
	setSeq(b.ID, b.Seq)
	setSeq(a.ID, a.Seq)
	wantIntact("swap undone", 1, 13)

	// A long walk: a second chain, written by a writer of the test's. The command line shows
	// its progress on stderr (a bar redrawn in place, cleared at the end), never on stdout.
	const bulk = 1500
	writeBulkChain(t, st, bulk)
	stderr := wantIntact("with a long chain", 2, bulk+13)
	if !strings.Contains(stderr, "verifying (1000/-)") || !strings.Contains(stderr, "\r") {
		t.Errorf("mcpauth audit verify showed no progress on stderr: %q", stderr)
	}
}

// writeBulkChain records n events into st's database with a writer of the test's own (chain
// "bulk"), and waits until they are stored.
func writeBulkChain(t *testing.T, st *auditStore, n int) {
	t.Helper()
	store, err := audit.NewMongoStore(auditCtx(t), st.db)
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.NewWriter(auditCtx(t), store, audit.WriterConfig{Instance: "bulk", Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	ctx := auditCtx(t)
	for i := range n {
		if err := w.Record(ctx, audit.Event{Type: audit.AuthzGranted, Subject: "usr_bulk", Details: map[string]any{"n": i}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st.waitStored(t, bson.D{{Key: "instance", Value: "bulk"}}, n)
}

func TestShouldKeepAnAcknowledgedAdminEventThroughASIGKILL(t *testing.T) {
	t.Parallel()
	st := newAuditInstance(t, "MCPAUTH_AUDIT_GRANTED_SAMPLE=0") // no AUTHZ_GRANTED: the trail is exact
	in := st.in
	srv := startHTTP(t, in, "http")
	instance := instanceOf(t, in.DataDir)
	c := dialHTTP(t, srv)
	c.Login(t, nil, in.Owner())
	password := "e2e-Kill-" + randomHex(8)
	user := c.CreateUser(t, "kept@example.com", password, "viewer")
	decode[okResult](t, c.Call(t, "role_assign", args{"user_id": user.ID, "role": "contributor"}))
	// Acknowledged: both events were durable before the replies. Kill the server at once.
	if err := srv.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-srv.Exited
	_ = c.Client.Close()

	about := bson.D{{Key: "subject", Value: user.ID}}
	got := st.stored(t, about) // no waiting: they must be there already
	if !slices.Equal(eventTypes(got), []string{audit.RoleAssigned, audit.UserCreated, audit.RoleAssigned}) ||
		got[0].Details["role"] != "viewer" || got[2].Details["role"] != "contributor" {
		t.Fatalf("events about the user right after the SIGKILL:\n%s", dump(got))
	}

	// Restarted on the same data directory: the chain goes on from where it stood.
	srv2 := startHTTP(t, in, "http")
	c2 := dialHTTP(t, srv2)
	c2.Login(t, nil, in.Owner())
	shown := withoutOwnQuery(queryAll(t, c2, args{"user_id": user.ID}, 50))
	wantSameEvents(t, "events about the user after the restart", shown, reversed(got))
	v := decode[verifyResult](t, c2.Call(t, "audit_verify", nil))
	if !v.OK || v.Chains != 1 {
		t.Fatalf("audit_verify after the SIGKILL and restart: %+v (first bad %+v)", v, v.FirstBad)
	}
	_ = c2.Client.Close()
	srv2.StopCleanly(t) // drains
	all := st.stored(t, nil)
	wantOneUnbrokenChain(t, all, instance)
	if want := []string{audit.RoleAssigned, audit.PermissionGranted, audit.UserCreated, audit.AuthSuccess, audit.RoleAssigned, audit.UserCreated,
		audit.RoleAssigned, audit.AuthSuccess}; !slices.Equal(eventTypes(all), want) {
		t.Fatalf("the whole trail, before and after the SIGKILL (grants not sampled):\n%swant types %v", dump(all), want)
	}
	if _, err := os.Stat(filepath.Join(in.DataDir, "audit-spill", audit.SpillFileName(instance))); err == nil {
		t.Errorf("a spill file is left after a clean stop with MongoDB up")
	}
}
