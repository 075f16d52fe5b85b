package main

// End-to-end secret scan: a full scenario of logins, refreshes, API keys, MFA and revocations,
// then every line the server wrote to stderr and every audit event stored (raw BSON as JSON)
// is searched for every secret the scenario used or was given.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/bduf/mcpauth/audit"
)

// secretScan collects secrets, and one-time codes (six digits, searched for as whole numbers
// so that a hash or a timestamp containing the same digits is not a false alarm).
type secretScan struct {
	secrets
	codes []string
}

func (s *secretScan) addCode(codes ...string) { s.codes = append(s.codes, codes...) }

func (s *secretScan) check(t *testing.T, what, text string) {
	t.Helper()
	s.CheckNotIn(t, what, text)
	for _, code := range s.codes {
		if regexp.MustCompile(`(^|[^0-9A-Za-z])` + code + `([^0-9A-Za-z]|$)`).MatchString(text) {
			t.Errorf("%s contains a one-time code (%s)", what, code)
		}
	}
}

func TestShouldNeverLogOrRecordASecret(t *testing.T) {
	t.Parallel()
	st := newAuditInstance(t)
	in := st.in
	sec := &secretScan{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	c := dialHTTP(t, srv)

	// Passwords, right and wrong; access and refresh tokens.
	tok := c.Login(t, &sec.secrets, in.Owner())
	sec.Add(jwtSignature(tok.AccessToken))
	wrong := "wrong-Secret-" + randomHex(8)
	sec.Add(wrong)
	c.Call(t, "auth_login", args{"email": in.OwnerEmail, "password": wrong}).WantError(t, "INVALID_CREDENTIALS")
	c.Call(t, "auth_login", args{"username": "nobody", "password": wrong}).WantError(t, "INVALID_CREDENTIALS")
	refreshed := c.Refresh(t, &sec.secrets, tok.RefreshToken)
	sec.Add(jwtSignature(refreshed.AccessToken))
	password := "e2e-Scan-" + randomHex(8)
	sec.Add(password)
	user := c.CreateUser(t, "mfa@example.com", password, "viewer")

	// An API key: created, used, forged, revoked.
	k := createKey(t, c, &sec.secrets, "scanner", []string{"users:read"}, nil)
	sec.Add(keySecret(k.Key))
	kc := dialHTTP(t, srv)
	kc.SetBearer(k.Key)
	decode[userListResult](t, kc.Call(t, "user_list", nil))
	for _, bad := range []string{forgeKey(k.Key), flipKeyChar(k.Key)} {
		sec.Add(bad, keySecret(bad))
		bc := dialHTTP(t, srv)
		bc.SetBearer(bad)
		bc.WantUnauthorized(t, "auth_whoami", nil, "")
		c.Call(t, "auth_validate", args{"token": bad}).WantError(t, "TOKEN_INVALID")
	}

	// MFA: enrolled and confirmed with a TOTP code; logins with a wrong code, a fresh code and
	// recovery codes; a step-up with a recovery code.
	m := dialHTTP(t, srv)
	login := args{"email": "mfa@example.com", "password": password}
	withCode := func(code string) args {
		return args{"email": "mfa@example.com", "password": password, "mfa_code": code}
	}
	m.Login(t, &sec.secrets, login)
	en := enrollMFA(t, m, "mfa@example.com")
	sec.Add(en.Secret, en.OTPAuthURL)
	step := totpStep(time.Now())
	code := totpCode(t, en.Secret, step)
	sec.addCode(code)
	conf := decode[mfaConfirmed](t, m.Call(t, "mfa_confirm", args{"code": code}))
	if !conf.Enabled || len(conf.RecoveryCodes) != 10 {
		t.Fatalf("mfa_confirm: %+v", conf)
	}
	for _, rc := range conf.RecoveryCodes {
		sec.Add(rc, strings.ReplaceAll(rc, "-", ""), strings.ToUpper(rc))
	}
	bad := wrongCode(t, en.Secret)
	sec.addCode(bad)
	m.Call(t, "auth_login", withCode(bad)).WantError(t, "INVALID_MFA_CODE")
	next := totpCode(t, en.Secret, step+1)
	sec.addCode(next)
	m.Login(t, &sec.secrets, withCode(next))
	m.Login(t, &sec.secrets, withCode(strings.ToUpper(strings.ReplaceAll(conf.RecoveryCodes[0], "-", ""))))
	if v := decode[struct{ Verified bool }](t, m.Call(t, "mfa_verify", args{"code": conf.RecoveryCodes[1]})); !v.Verified {
		t.Fatalf("mfa_verify: %+v", v)
	}
	m.Call(t, "mfa_verify", args{"code": conf.RecoveryCodes[1]}).WantError(t, "INVALID_MFA_CODE")

	// Revocations: an access token, a refresh token (logout), the key.
	if r := decode[revokeResult](t, c.Call(t, "auth_revoke", args{"token": m.Bearer()})); !r.Revoked {
		t.Fatalf("auth_revoke: %+v", r)
	}
	decode[countResult](t, c.Call(t, "auth_logout", args{"refresh_token": refreshed.RefreshToken}))
	c.Login(t, &sec.secrets, in.Owner())
	decode[revokeResult](t, c.Call(t, "apikey_revoke", args{"id": k.ID}))
	kc.WantUnauthorized(t, "user_list", nil, "")

	_ = c.Client.Close()
	srv.StopCleanly(t) // the writer drains: every event is stored

	// The scan is only worth something if the events that handle secrets were recorded.
	events := st.stored(t, nil)
	have := map[string]int{}
	for _, e := range events {
		have[e.Type]++
		if e.Type == audit.AuthFailed {
			have[e.Type+"/"+e.Details["reason"].(string)]++
		}
	}
	for _, typ := range []string{audit.AuthSuccess, audit.AuthFailed + "/" + audit.ReasonInvalidPassword,
		audit.AuthFailed + "/" + audit.ReasonUserNotFound, audit.AuthFailed + "/" + audit.ReasonInvalidMFA,
		audit.TokenRefreshed, audit.TokenRevoked, audit.SessionRevoked, audit.APIKeyCreated, audit.APIKeyUsedFailed,
		audit.APIKeyRevoked, audit.MFAEnabled, audit.UserCreated} {
		if have[typ] == 0 {
			t.Errorf("no %s event recorded: %v", typ, have)
		}
	}
	if have[audit.APIKeyUsedFailed] < 4 { // two bad keys, each as a bearer and to auth_validate
		t.Errorf("%d API_KEY_USED_FAILED events, want at least 4", have[audit.APIKeyUsedFailed])
	}

	// Every stored event, as MongoDB holds it.
	ctx := auditCtx(t)
	cur, err := st.coll().Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for cur.Next(ctx) {
		js, err := bson.MarshalExtJSON(cur.Current, false, false)
		if err != nil {
			t.Fatalf("event as JSON: %v", err)
		}
		sec.check(t, "audit event "+string(js), string(js))
		n++
	}
	if err := cur.Err(); err != nil || n != len(events) || n < 40 {
		t.Fatalf("scanned %d events (%v), want all %d", n, err, len(events))
	}
	stderr := srv.Stderr.String()
	for i, line := range strings.Split(stderr, "\n") {
		sec.check(t, fmt.Sprintf("server stderr line %d", i+1), line)
	}
	if !strings.Contains(stderr, user.ID) {
		t.Errorf("server stderr does not mention the user at all: is it the server's log?\n%s", stderr)
	}
	t.Logf("scanned %d events and %d log lines", n, strings.Count(stderr, "\n"))
}

// jwtSignature is the signature part of a JWT.
func jwtSignature(jwt string) string {
	parts := strings.Split(jwt, ".")
	return parts[len(parts)-1]
}
