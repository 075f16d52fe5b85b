package main

// End-to-end tests of API keys (over streamable HTTP and stdio) and TOTP MFA: the real mcpauth
// binary driven by mcp-go's client.

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"image/png"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// apiKeyView is an API key as apikey_create and apikey_list show it (key: apikey_create only).
type apiKeyView struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	OrgID       string     `json:"org_id"`
	Permissions []string   `json:"permissions"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	Revoked     bool       `json:"revoked"`
	Active      bool       `json:"active"`
	Key         string     `json:"key"`
}

type apiKeyListResult struct {
	Keys []apiKeyView `json:"keys"`
}

// apiKeyShape is mcpk_<16-char id>_<52-char secret><7-char checksum>, base32 in lower case.
var apiKeyShape = regexp.MustCompile(`^mcpk_([a-z2-7]{16})_([a-z2-7]{52})([a-z2-7]{7})$`)

var keyAlphabet = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// createKey calls apikey_create as c's identity and checks the result's shape.
func createKey(t *testing.T, c *conn, sec *secrets, name string, perms []string, extra args) apiKeyView {
	t.Helper()
	a := args{"name": name, "permissions": perms}
	for k, v := range extra {
		a[k] = v
	}
	k := decode[apiKeyView](t, c.Call(t, "apikey_create", a))
	sec.Add(k.Key)
	m := apiKeyShape.FindStringSubmatch(k.Key)
	if m == nil || m[1] != k.ID || k.Name != name || !slices.Equal(k.Permissions, perms) || !k.Active || k.Revoked ||
		k.OrgID != "default" || k.CreatedAt.IsZero() || k.LastUsedAt != nil {
		t.Fatalf("apikey_create: %+v", k)
	}
	if len(k.Key) != 81 {
		t.Fatalf("API key of %d characters, want 81: %s...", len(k.Key), k.Key[:12])
	}
	return k
}

// keySecret is the secret part of a key.
func keySecret(key string) string { return apiKeyShape.FindStringSubmatch(key)[2] }

// flipKeyChar changes one character of a key's secret: the checksum no longer matches.
func flipKeyChar(key string) string {
	const i = 40 // inside the secret
	c := byte('a')
	if key[i] == 'a' {
		c = 'b'
	}
	return key[:i] + string(c) + key[i+1:]
}

// forgeKey changes one character of a key's secret and recomputes the checksum: a well-formed
// key of a real id whose secret is wrong, which only the stored hash can refuse.
func forgeKey(key string) string {
	flipped := flipKeyChar(key)
	body := flipped[:len(flipped)-7]
	sum := crc32.ChecksumIEEE([]byte(body))
	return body + keyAlphabet.EncodeToString([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
}

// wantKeyListHidesSecrets checks that apikey_list shows every key of want (by id) and never a
// key, its secret or the secret's hash.
func wantKeyListHidesSecrets(t *testing.T, c *conn, want ...apiKeyView) apiKeyListResult {
	t.Helper()
	r := c.Call(t, "apikey_list", nil)
	l := decode[apiKeyListResult](t, r)
	raw := strings.ToLower(string(r.Raw))
	for _, k := range want {
		secret := keySecret(k.Key)
		sum := sha256.Sum256([]byte(secret))
		for what, s := range map[string]string{"the key": k.Key, "its secret": secret, "its secret's hash": hex.EncodeToString(sum[:])} {
			if strings.Contains(raw, strings.ToLower(s)) {
				t.Fatalf("apikey_list shows %s: %s", what, r.Raw)
			}
		}
		if !slices.ContainsFunc(l.Keys, func(v apiKeyView) bool { return v.ID == k.ID }) {
			t.Fatalf("apikey_list lacks key %s: %s", k.ID, r.Raw)
		}
	}
	for _, field := range []string{`"key"`, `"secret`, `hash`} {
		if strings.Contains(raw, field) {
			t.Fatalf("apikey_list has a %s field: %s", field, r.Raw)
		}
	}
	return l
}

func findKey(t *testing.T, l apiKeyListResult, id string) apiKeyView {
	t.Helper()
	for _, k := range l.Keys {
		if k.ID == id {
			return k
		}
	}
	t.Fatalf("key %s not listed: %+v", id, l)
	return apiKeyView{}
}

func TestShouldAuthenticateWithAPIKeysOverStreamableHTTP(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	srv := startHTTP(t, in, "http")
	owner := dialHTTP(t, srv)
	ownerID := owner.Login(t, sec, in.Owner()).User.ID

	// The key is shown once, by apikey_create; apikey_list never shows it.
	k := createKey(t, owner, sec, "ci reader", []string{"users:read"}, nil)
	if l := wantKeyListHidesSecrets(t, owner, k); len(l.Keys) != 1 {
		t.Fatalf("apikey_list: %+v, want one key", l)
	}

	// A key-authenticated client: the owner's identity, the key's permissions.
	kc := dialHTTP(t, srv)
	kc.SetBearer(k.Key)
	w := decode[whoamiResult](t, kc.Call(t, "auth_whoami", nil))
	if w.AuthMethod != "api_key" || w.User.ID != ownerID || !slices.Equal(w.Scopes, []string{"users:read"}) || w.SessionID != "" {
		t.Fatalf("auth_whoami with an API key: %+v", w)
	}
	if l := decode[userListResult](t, kc.Call(t, "user_list", nil)); len(l.Users) != 1 || l.Users[0].ID != ownerID {
		t.Fatalf("user_list with a users:read key: %+v", l)
	}
	wantTools(t, "a users:read key", kc.ListTools(t), []string{"user_list", "user_get", "auth_whoami"},
		[]string{"user_create", "user_unlock", "role_create"})
	// Outside the key's permissions (though within the owner's): 403 insufficient_scope.
	kc.WantInsufficientScope(t, "user_create", args{"email": "sneaky@example.com", "password": "e2e-Sneaky-" + randomHex(8)}, "users:write")
	kc.WantInsufficientScope(t, "user_unlock", args{"id": ownerID}, "users:admin")
	// A key cannot manage keys, not even list them.
	e := kc.Call(t, "apikey_create", args{"name": "wider", "permissions": []string{"users:read"}}).WantError(t, "PERMISSION_DENIED")
	if !strings.Contains(e.Message, "session") {
		t.Errorf("apikey_create with a key: %q does not say a user's session is needed", e.Message)
	}
	kc.Call(t, "apikey_list", nil).WantError(t, "PERMISSION_DENIED")
	kc.Call(t, "apikey_revoke", args{"id": k.ID}).WantError(t, "PERMISSION_DENIED")
	if v := decode[validateResult](t, owner.Call(t, "auth_validate", args{"token": k.Key})); !v.Valid || v.Sub != ownerID ||
		!slices.Equal(v.Scopes, []string{"users:read"}) {
		t.Fatalf("auth_validate of a key: %+v", v)
	}

	// One flipped character (the checksum catches it), or a right checksum over a wrong secret
	// (the stored hash catches it): 401 as a bearer, TOKEN_INVALID to auth_validate.
	for name, bad := range map[string]string{"flipped": flipKeyChar(k.Key), "forged": forgeKey(k.Key)} {
		bc := dialHTTP(t, srv)
		bc.SetBearer(bad)
		bc.WantUnauthorized(t, "auth_whoami", nil, "")
		bc.WantUnauthorized(t, "user_list", nil, "")
		owner.Call(t, "auth_validate", args{"token": bad}).WantError(t, "TOKEN_INVALID")
		if name == "forged" && !apiKeyShape.MatchString(bad) {
			t.Fatalf("forged key is not well-formed: %s", bad)
		}
	}

	// Nobody grants what they do not hold: a viewer's key may not carry users:write.
	password := "e2e-Keys-" + randomHex(8)
	sec.Add(password)
	owner.CreateUser(t, "viewer@example.com", password, "viewer")
	vc := dialHTTP(t, srv)
	vc.Login(t, sec, args{"email": "viewer@example.com", "password": password})
	e = vc.Call(t, "apikey_create", args{"name": "escalate", "permissions": []string{"users:write"}}).WantError(t, "PERMISSION_DENIED")
	if !slices.Equal(e.ExcessPermissions, []string{"users:write"}) {
		t.Errorf("viewer's apikey_create with users:write: excess_permissions %v", e.ExcessPermissions)
	}
	e = vc.Call(t, "apikey_create", args{"name": "escalate", "permissions": []string{"projects:read", "users:read", "projects:*"}}).WantError(t, "PERMISSION_DENIED")
	if got := slices.Sorted(slices.Values(e.ExcessPermissions)); !slices.Equal(got, []string{"projects:*", "users:read"}) {
		t.Errorf("viewer's apikey_create with projects:*: excess_permissions %v, want projects:* and users:read", e.ExcessPermissions)
	}
	vk := createKey(t, vc, sec, "viewer reader", []string{"projects:read"}, nil)
	// Each user sees and revokes only their own keys.
	if l := wantKeyListHidesSecrets(t, vc, vk); len(l.Keys) != 1 {
		t.Fatalf("viewer's apikey_list shows others' keys: %+v", l)
	}
	vc.Call(t, "apikey_revoke", args{"id": k.ID}).WantError(t, "NOT_FOUND")
	owner.Call(t, "apikey_revoke", args{"id": "doesnotexist0000"}).WantError(t, "NOT_FOUND")
	decode[userListResult](t, kc.Call(t, "user_list", nil)) // the owner's key still works

	// A key is held to its owner's live permissions: revoking the owner's role denies the key.
	owner.CreateUser(t, "admin@example.com", password, "admin")
	ac := dialHTTP(t, srv)
	admin := ac.Login(t, sec, args{"email": "admin@example.com", "password": password}).User
	ak := createKey(t, ac, sec, "admin reader", []string{"users:read"}, nil)
	akc := dialHTTP(t, srv)
	akc.SetBearer(ak.Key)
	decode[userListResult](t, akc.Call(t, "user_list", nil))
	decode[okResult](t, owner.Call(t, "role_revoke", args{"user_id": admin.ID, "role": "admin"}))
	e = akc.Call(t, "user_list", nil).WantError(t, "PERMISSION_DENIED")
	if !slices.Equal(e.RequiredPermissions, []string{"users:read"}) {
		t.Errorf("user_list with a key whose owner lost the role: required_permissions %v", e.RequiredPermissions)
	}

	// Expiry: refused once expires_at has passed, never before.
	owner.Call(t, "apikey_create", args{"name": "old", "permissions": []string{"users:read"}, "expires_at": "2020-01-01T00:00:00Z"}).
		WantFieldError(t, "expires_at")
	owner.Call(t, "apikey_create", args{"name": "bad", "permissions": []string{"users:read"}, "expires_at": "tomorrow"}).
		WantFieldError(t, "expires_at")
	expiresAt := time.Now().Add(3 * time.Second).UTC().Truncate(time.Millisecond)
	xk := createKey(t, owner, sec, "short-lived", []string{"users:read"}, args{"expires_at": expiresAt.Format(time.RFC3339Nano)})
	if xk.ExpiresAt == nil || !xk.ExpiresAt.Equal(expiresAt) {
		t.Fatalf("apikey_create expires_at: %v, want %v", xk.ExpiresAt, expiresAt)
	}
	xc := dialHTTP(t, srv)
	xc.SetBearer(xk.Key)
	_, refusedAt := pollUntilRefused(t, xc, "user_list", 100*time.Millisecond, expiresAt.Add(15*time.Second))
	if refusedAt.Before(expiresAt) {
		t.Fatalf("a key expiring at %s was refused at %s", expiresAt, refusedAt)
	}
	xc.WantUnauthorized(t, "auth_whoami", nil, "")
	if x := findKey(t, wantKeyListHidesSecrets(t, owner, k, xk), xk.ID); x.Active || x.Revoked {
		t.Errorf("apikey_list: an expired key %+v, want active false, revoked false", x)
	}

	// Revocation: the key fails at once.
	if r := decode[revokeResult](t, owner.Call(t, "apikey_revoke", args{"id": k.ID})); !r.Revoked {
		t.Fatalf("apikey_revoke: %+v", r)
	}
	kc.WantUnauthorized(t, "user_list", nil, "")
	kc.WantUnauthorized(t, "auth_whoami", nil, "")
	owner.Call(t, "auth_validate", args{"token": k.Key}).WantError(t, "TOKEN_INVALID")
	rk := findKey(t, wantKeyListHidesSecrets(t, owner, k, xk), k.ID)
	if !rk.Revoked || rk.Active || rk.LastUsedAt == nil {
		t.Errorf("apikey_list after the revoke: %+v, want revoked, inactive, with a last use", rk)
	}
	decode[whoamiResult](t, owner.Call(t, "auth_whoami", nil)) // the owner's session is untouched

	_ = owner.Client.Close()
	srv.StopCleanly(t)
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

// pollUntilRefused calls tool on an HTTP conn every interval until its credential is refused, and
// returns when the refused call was sent and when its refusal arrived. The refusal is the HTTP
// guard's (401), or, when the credential ended between the HTTP guard's check and the tool
// middleware's, the middleware's TOKEN_REVOKED or TOKEN_INVALID. Until then every call must
// succeed. It fails t if a call sent after deadline is still allowed.
func pollUntilRefused(t *testing.T, c *conn, tool string, interval time.Duration, deadline time.Time) (sent, refused time.Time) {
	t.Helper()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		sent = time.Now()
		r, err := c.TryCall(t, tool, nil)
		if err != nil {
			return sent, time.Now()
		}
		if r.IsError {
			var body struct {
				Error mcptest.APIError `json:"error"`
			}
			_ = json.Unmarshal(r.Raw, &body)
			if code := body.Error.Code; code == "TOKEN_REVOKED" || code == "TOKEN_INVALID" {
				return sent, time.Now()
			}
			t.Fatalf("%s: want success until the credential is refused, got %s", tool, r.Raw)
		}
		if sent.After(deadline) {
			t.Fatalf("%s: still allowed on a call sent %s after the deadline", tool, sent.Sub(deadline))
		}
		<-tick.C
	}
}

func TestShouldAuthenticateWithAnAPIKeyOverStdio(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	password := "e2e-Keys-" + randomHex(8)
	sec.Add(password)

	setup := dialStdio(t, in)
	ownerID := setup.Login(t, sec, in.Owner()).User.ID
	k := createKey(t, setup, sec, "stdio reader", []string{"users:read"}, nil)
	other := createKey(t, setup, sec, "another", []string{"users:read"}, nil)
	setup.CreateUser(t, "viewer@example.com", password, "viewer")
	setup.CloseStdio(t)

	// MCPAUTH_API_KEY is the process's credential.
	c := dialStdio(t, in, "MCPAUTH_API_KEY="+k.Key)
	w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil))
	if w.AuthMethod != "api_key" || w.User.ID != ownerID || !slices.Equal(w.Scopes, []string{"users:read"}) {
		t.Fatalf("auth_whoami with MCPAUTH_API_KEY: %+v", w)
	}
	if l := decode[userListResult](t, c.Call(t, "user_list", nil)); len(l.Users) != 2 {
		t.Fatalf("user_list with a users:read key: %+v", l)
	}
	c.WantInsufficientScope(t, "user_create", args{"email": "sneaky@example.com", "password": password}, "users:write")
	c.WantInsufficientScope(t, "role_create", args{"name": "sneaky", "permissions": []string{"users:read"}}, "users:admin", "roles:write")
	c.Call(t, "apikey_create", args{"name": "wider", "permissions": []string{"users:read"}}).WantError(t, "PERMISSION_DENIED")

	// A viewer logged in in this process may not give a key users:write.
	c.Login(t, sec, args{"email": "viewer@example.com", "password": password})
	e := c.Call(t, "apikey_create", args{"name": "escalate", "permissions": []string{"users:write"}}).WantError(t, "PERMISSION_DENIED")
	if !slices.Equal(e.ExcessPermissions, []string{"users:write"}) {
		t.Errorf("viewer's apikey_create with users:write: excess_permissions %v", e.ExcessPermissions)
	}
	// The owner logs in, revokes the key and logs out: the calls are the key's again, and fail.
	c.Login(t, sec, in.Owner())
	if r := decode[revokeResult](t, c.Call(t, "apikey_revoke", args{"id": k.ID})); !r.Revoked {
		t.Fatalf("apikey_revoke: %+v", r)
	}
	decode[countResult](t, c.Call(t, "auth_logout", nil))
	c.WantUnauthorized(t, "auth_whoami", nil, "TOKEN_INVALID")
	c.WantUnauthorized(t, "user_list", nil, "TOKEN_INVALID")
	c.CloseStdio(t)

	// A live key with one character flipped, or with a wrong secret under a right checksum.
	logs := []string{c.Stderr.String()}
	for _, bad := range []string{flipKeyChar(other.Key), forgeKey(other.Key)} {
		bc := dialStdio(t, in, "MCPAUTH_API_KEY="+bad)
		bc.WantUnauthorized(t, "auth_whoami", nil, "TOKEN_INVALID")
		bc.WantUnauthorized(t, "user_list", nil, "TOKEN_INVALID")
		bc.CloseStdio(t)
		logs = append(logs, bc.Stderr.String())
	}
	good := dialStdio(t, in, "MCPAUTH_API_KEY="+other.Key)
	if w := decode[whoamiResult](t, good.Call(t, "auth_whoami", nil)); w.AuthMethod != "api_key" || w.User.ID != ownerID {
		t.Fatalf("auth_whoami with the unflipped key: %+v", w)
	}
	good.CloseStdio(t)
	for _, log := range append(logs, setup.Stderr.String(), good.Stderr.String()) {
		sec.CheckNotIn(t, "stdio server stderr", log)
	}
}

// totpOpts are the parameters mcpauth uses (RFC 6238 defaults).
var totpOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

func totpStep(at time.Time) int64 { return at.Unix() / 30 }

// totpCode is the code of a time step.
func totpCode(t *testing.T, secret string, step int64) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, time.Unix(step*30, 0), totpOpts)
	if err != nil {
		t.Fatalf("totp: %v", err)
	}
	return code
}

// wrongCode is a six-digit code valid at no step near now.
func wrongCode(t *testing.T, secret string) string {
	t.Helper()
	now := totpStep(time.Now())
	var near []string
	for s := now - 2; s <= now+2; s++ {
		near = append(near, totpCode(t, secret, s))
	}
	for _, c := range []string{"000000", "111111", "123456", "999999", "424242", "700007"} {
		if !slices.Contains(near, c) {
			return c
		}
	}
	t.Fatal("no wrong code found")
	return ""
}

type mfaEnrollment struct {
	Method     string `json:"method"`
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
}

// enrollMFA calls mfa_enroll and checks its result: the secret and URL as JSON (structured and
// text), and a QR code as a PNG image content item.
func enrollMFA(t *testing.T, c *conn, email string) mfaEnrollment {
	t.Helper()
	res := c.CallResult(t, "mfa_enroll", args{"method": "totp"})
	if res.IsError {
		t.Fatalf("mfa_enroll: error %+v", res.StructuredContent)
	}
	structured, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	var en mfaEnrollment
	if err := json.Unmarshal(structured, &en); err != nil {
		t.Fatalf("mfa_enroll structuredContent %s: %v", structured, err)
	}
	var text string
	var img []byte
	for _, item := range res.Content {
		switch p := item.(type) {
		case *mcp.TextContent:
			item = *p
		case *mcp.ImageContent:
			item = *p
		}
		switch ct := item.(type) {
		case mcp.TextContent:
			text = ct.Text
		case mcp.ImageContent:
			if ct.MIMEType != "image/png" {
				t.Fatalf("mfa_enroll image content has mimeType %q, want image/png", ct.MIMEType)
			}
			if img, err = base64.StdEncoding.DecodeString(ct.Data); err != nil {
				t.Fatalf("mfa_enroll image data is not base64: %v", err)
			}
		default:
			t.Fatalf("mfa_enroll: unexpected content %T", item)
		}
	}
	if len(res.Content) != 2 || text == "" || img == nil {
		t.Fatalf("mfa_enroll content: %+v, want one text and one image", res.Content)
	}
	var fromText mfaEnrollment
	if err := json.Unmarshal([]byte(text), &fromText); err != nil || fromText != en {
		t.Fatalf("mfa_enroll text %s differs from structuredContent %s", text, structured)
	}
	if !bytes.HasPrefix(img, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatalf("mfa_enroll image is not a PNG: % x", img[:min(8, len(img))])
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfg.Width < 100 || cfg.Width != cfg.Height {
		t.Fatalf("mfa_enroll QR code: %+v, %v", cfg, err)
	}
	if en.Method != "totp" || len(en.Secret) < 16 {
		t.Fatalf("mfa_enroll: %+v", en)
	}
	u, err := url.Parse(en.OTPAuthURL)
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || !strings.Contains(u.Path, email) {
		t.Fatalf("mfa_enroll otpauth_url %q: %v", en.OTPAuthURL, err)
	}
	q := u.Query()
	if q.Get("secret") != en.Secret || q.Get("issuer") != "mcpauth" || q.Get("digits") != "6" || q.Get("period") != "30" ||
		(q.Get("algorithm") != "" && q.Get("algorithm") != "SHA1") {
		t.Fatalf("mfa_enroll otpauth_url parameters: %v", q)
	}
	return en
}

type mfaConfirmed struct {
	Enabled       bool     `json:"enabled"`
	RecoveryCodes []string `json:"recovery_codes"`
}

var recoveryCodeShape = regexp.MustCompile(`^[a-z2-7]{8}-[a-z2-7]{8}$`)

func TestShouldRequireASecondFactorOnceMFAIsOn(t *testing.T) {
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
			// The scenario logs one account in a dozen times within seconds.
			in.Extra = append(in.Extra, "MCPAUTH_RATE_LIMITS=login_id=100/1m")
			sec := &secrets{}
			sec.Add(in.OwnerPassword)
			c := tc.dial(t, in)
			runMFAScenario(t, c, in, sec)
			if c.IsHTTP() {
				_ = c.Client.Close()
			} else {
				c.CloseStdio(t)
			}
			sec.CheckNotIn(t, "server stderr", c.Stderr.String())
		})
	}
}

func runMFAScenario(t *testing.T, c *conn, in *instance, sec *secrets) {
	password := "e2e-Mfa-" + randomHex(8)
	sec.Add(password)
	c.Login(t, sec, in.Owner())
	user := c.CreateUser(t, "mfa@example.com", password, "viewer")
	login := args{"email": "mfa@example.com", "password": password}
	withCode := func(code string) args {
		a := args{"mfa_code": code}
		for k, v := range login {
			a[k] = v
		}
		return a
	}
	c.Login(t, sec, login)

	// Enrollment: pending until confirmed (login needs no code yet).
	c.Call(t, "mfa_enroll", args{"method": "sms"}).WantFieldError(t, "method")
	c.Call(t, "mfa_confirm", args{"code": "123456"}).WantError(t, "CONFLICT") // nothing pending yet
	en := enrollMFA(t, c, "mfa@example.com")
	sec.Add(en.Secret, en.OTPAuthURL)
	c.Login(t, sec, login)
	c.Call(t, "mfa_verify", args{"code": "123456"}).WantError(t, "CONFLICT") // not enabled yet
	c.Call(t, "mfa_confirm", args{"code": wrongCode(t, en.Secret)}).WantError(t, "INVALID_MFA_CODE")

	// Confirm with the current code: 10 distinct recovery codes, shown once.
	step := totpStep(time.Now()) // the last step a code was accepted for
	conf := decode[mfaConfirmed](t, c.Call(t, "mfa_confirm", args{"code": totpCode(t, en.Secret, step)}))
	if !conf.Enabled || len(conf.RecoveryCodes) != 10 || len(slices.Compact(slices.Sorted(slices.Values(conf.RecoveryCodes)))) != 10 {
		t.Fatalf("mfa_confirm: %+v, want enabled with 10 distinct recovery codes", conf)
	}
	for _, rc := range conf.RecoveryCodes {
		if !recoveryCodeShape.MatchString(rc) {
			t.Fatalf("recovery code %q", rc)
		}
	}
	sec.Add(conf.RecoveryCodes...)
	c.Call(t, "mfa_confirm", args{"code": totpCode(t, en.Secret, step+1)}).WantError(t, "CONFLICT")
	c.Call(t, "mfa_enroll", args{"method": "totp"}).WantError(t, "CONFLICT")

	// Login now needs the second factor.
	e := c.Call(t, "auth_login", login).WantError(t, "MFA_REQUIRED")
	if !strings.Contains(e.Message, "mfa_code") {
		t.Errorf("MFA_REQUIRED: %q does not name mfa_code", e.Message)
	}
	c.Call(t, "auth_login", withCode(wrongCode(t, en.Secret))).WantError(t, "INVALID_MFA_CODE")
	c.Call(t, "auth_login", args{"email": "mfa@example.com", "password": "wrong-Password-42", "mfa_code": totpCode(t, en.Secret, step+1)}).
		WantError(t, "INVALID_CREDENTIALS") // the password is checked first; the code is not spent
	// A fresh code: the next time step's (within the ±1 step window), since the current one
	// was spent by mfa_confirm.
	step++
	code := totpCode(t, en.Secret, step)
	tok := c.Login(t, sec, withCode(code))
	if tok.User.ID != user.ID {
		t.Fatalf("login with a TOTP code: %+v", tok.User)
	}
	if w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil)); w.User.ID != user.ID || w.SessionID != tok.SessionID {
		t.Fatalf("auth_whoami after an MFA login: %+v", w)
	}
	// The same code again is a replay; so is any code of a step already used.
	c.Call(t, "auth_login", withCode(code)).WantError(t, "INVALID_MFA_CODE")
	c.Call(t, "auth_login", withCode(totpCode(t, en.Secret, step-1))).WantError(t, "INVALID_MFA_CODE")
	c.Call(t, "mfa_verify", args{"code": code}).WantError(t, "INVALID_MFA_CODE")

	// Recovery codes work once each, in any case and with or without the dash.
	rc := conf.RecoveryCodes
	c.Login(t, sec, withCode(rc[0]))
	c.Call(t, "auth_login", withCode(rc[0])).WantError(t, "INVALID_MFA_CODE")
	c.Login(t, sec, withCode(strings.ToUpper(strings.ReplaceAll(rc[1], "-", ""))))
	c.Call(t, "auth_login", withCode(rc[1])).WantError(t, "INVALID_MFA_CODE")
	c.Call(t, "auth_login", withCode("notarecoverycode")).WantError(t, "INVALID_MFA_CODE")

	// Step-up.
	c.Call(t, "mfa_verify", args{"code": rc[0]}).WantError(t, "INVALID_MFA_CODE")
	if v := decode[struct{ Verified bool }](t, c.Call(t, "mfa_verify", args{"code": rc[2]})); !v.Verified {
		t.Fatalf("mfa_verify: %+v", v)
	}

	// Disabling needs the password and a valid code: not a wrong one, not a spent one.
	c.Call(t, "mfa_disable", args{"code": wrongCode(t, en.Secret), "password": password}).WantError(t, "INVALID_MFA_CODE")
	c.Call(t, "mfa_disable", args{"code": code, "password": password}).WantError(t, "INVALID_MFA_CODE")
	c.Call(t, "mfa_disable", args{"code": rc[2], "password": password}).WantError(t, "INVALID_MFA_CODE")
	c.Call(t, "mfa_disable", args{"password": password}).WantFieldError(t, "code")
	c.Call(t, "mfa_disable", args{"code": rc[3]}).WantFieldError(t, "password")
	c.Call(t, "auth_login", login).WantError(t, "MFA_REQUIRED") // still on
	if d := decode[struct{ Disabled bool }](t, c.Call(t, "mfa_disable", args{"code": rc[3], "password": password})); !d.Disabled {
		t.Fatalf("mfa_disable: %+v", d)
	}
	// Off: the password alone logs in again, and a disabled factor cannot be verified.
	c.Login(t, sec, login)
	c.Call(t, "mfa_verify", args{"code": rc[4]}).WantError(t, "CONFLICT")
	// None of this locked the account out (successes reset the failure count).
	c.Login(t, sec, login)
}
