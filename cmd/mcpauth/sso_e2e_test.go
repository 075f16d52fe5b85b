package main

// Single sign-on end to end: the real binary, a real OpenID Provider (node-oidc-provider), a
// client going through the sign-in page's connector button: a JIT account made once, refusals
// by policy, an existing account's email never taken over.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// startSSOServer starts mcpauth on a port chosen first (the provider's client is registered
// with its callback before it starts) with one connector, "op", configured by policy.
func startSSOServer(t *testing.T, in *instance, policy map[string]any) (*httpServer, func(map[string]map[string]any)) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	issuer, setAccounts := mcptest.StartOpenIDProvider(t, "http://"+addr+"/sso/op/callback", ssoAccounts("eng"))
	conn := map[string]any{"id": "op", "name": "Acme SSO", "issuer": issuer, "client_id": mcptest.ProviderClientID,
		"client_secret_env": "E2E_OP_SECRET", "scopes": []string{"openid", "email", "profile", "groups"}, "org": "default"}
	for k, v := range policy {
		conn[k] = v
	}
	b, _ := json.Marshal([]any{conn})
	file := filepath.Join(t.TempDir(), "connectors.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	env := in.Env(append(append([]string{}, mcptest.OAuthEnv...), "MCPAUTH_SSO_CONNECTORS="+file,
		"E2E_OP_SECRET="+mcptest.ProviderClientSecret)...)
	p := mcptest.StartProc(t, binPath, env, nil, "serve", "--transport", "http", "--listen", addr)
	m, err := p.Stderr.WaitFor(mcptest.ListeningLine, p.Exited, mcptest.StartTimeout)
	if err != nil {
		t.Fatalf("serve with a connector: %v\n%s", err, p.Stderr)
	}
	return &httpServer{Proc: p, URL: m[1]}, setAccounts
}

// ssoAccounts are the provider's people; ada is in adaGroups.
func ssoAccounts(adaGroups ...string) map[string]map[string]any {
	return map[string]map[string]any{
		"ada":    {"email": "ada@acme.example", "email_verified": true, "preferred_username": "ada", "groups": adaGroups},
		"grace":  {"email": "grace@acme.example", "preferred_username": "grace"}, // email not verified
		"victim": {"email": "victim@acme.example", "email_verified": true},       // a local account's email
		"eve":    {"email": "eve@evil.example", "email_verified": true},
	}
}

func TestShouldSignInThroughAnIdentityProvider(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	// A local account the provider's "victim" must never sign in as.
	if code, _, stderr := runBinary(t, in.Env(), "Victim-password-123\n", startTimeout, "user", "create", "--email", "victim@acme.example"); code != 0 {
		t.Fatalf("user create: %s", stderr)
	}
	srv, setAccounts := startSSOServer(t, in, map[string]any{"jit": true, "default_role": "viewer", "allowed_domains": []string{"acme.example"},
		"group_roles": []map[string]string{{"group": "eng", "org": "default", "role": "admin"}}})
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	client := h.mustRegister(map[string]any{"redirect_uris": []string{"http://127.0.0.1:5557/cb"}, "token_endpoint_auth_method": "none"})
	viaSSO := func(account string) (*mcptest.FormLogin, map[string]any, error) {
		t.Helper()
		l := &mcptest.FormLogin{SSO: "op", ProviderAccount: account}
		r := h.authorizeURL(client, map[string]string{"scope": "users:read"})
		back, err := l.Run(context.Background(), r.url)
		if err != nil {
			return l, nil, err
		}
		if back.Query().Get("code") == "" || back.Query().Get("iss") != h.issuer {
			t.Fatalf("redirect %s", back)
		}
		status, m, _ := h.exchange(client, back.Query().Get("code"), r.verifier, false)
		if status != http.StatusOK {
			t.Fatalf("token: %d %v", status, m)
		}
		return l, m, nil
	}
	l, m, err := viaSSO("ada")
	if err != nil {
		t.Fatalf("ada through the provider: %v\nstderr:\n%s", err, srv.Stderr)
	}
	if !strings.Contains(strings.Join(l.Pages, " "), "/authorize/sso") || !strings.HasSuffix(strings.Join(l.Pages, " "), "/authorize/consent") {
		t.Errorf("pages %v: want the SSO button, then consent", l.Pages)
	}
	first := mcptest.JWTClaims(t, m["access_token"].(string))["sub"]
	if m["scope"] != "users:read" { // a JIT viewer, and admin through the eng group: users:read
		t.Errorf("ada in eng was granted %q, want users:read (the group's admin role)", m["scope"])
	}
	// Ada leaves eng at the provider: the next sign-in takes the group's role back.
	setAccounts(ssoAccounts())
	_, m, err = viaSSO("ada")
	if err != nil || mcptest.JWTClaims(t, m["access_token"].(string))["sub"] != first {
		t.Fatalf("ada's second sign-in: %v; want the same account %v", err, first)
	}
	if m["scope"] != "" {
		t.Errorf("ada out of eng was granted %q, want nothing (the viewer role only)", m["scope"])
	}
	for account, why := range map[string]string{
		"grace":  "not verified",                // allowed domain, unverified email
		"eve":    "email domain is not allowed", // another domain
		"victim": "already has its email",       // never a local account
	} {
		if _, _, err := viaSSO(account); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%s through the provider: %v; want a refusal saying %q", account, err, why)
		}
	}
	// The local account was not touched: its own password still signs in.
	if _, err := (&mcptest.FormLogin{Identifier: "victim@acme.example", Password: "Victim-password-123"}).Run(context.Background(), h.authorizeURL(client, nil).url); err != nil {
		t.Errorf("the local account's own sign-in after the refused takeover: %v", err)
	}
}

// A mistake in the connectors file stops the start; a provider that is down only leaves its
// button off the sign-in page.
func TestShouldStartWithoutAProviderThatIsDownButNotWithABadConnectorsFile(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	write := func(v any) string {
		b, _ := json.Marshal(v)
		f := filepath.Join(t.TempDir(), "connectors.json")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for name, file := range map[string]string{
		"an id that is not a path segment": write([]any{map[string]any{"id": "../x", "issuer": "https://idp.example", "client_id": "c"}}),
		"an unknown member":                write([]any{map[string]any{"id": "op", "issuer": "https://idp.example", "client_id": "c", "client_secret": "inline"}}),
		"not a built-in role":              write([]any{map[string]any{"id": "op", "issuer": "https://idp.example", "client_id": "c", "default_role": "root"}}),
	} {
		env := in.Env(append(append([]string{}, mcptest.OAuthEnv...), "MCPAUTH_SSO_CONNECTORS="+file)...)
		if code, _, stderr := runBinary(t, env, "", startTimeout, "serve", "--transport", "http", "--listen", "127.0.0.1:0"); code == 0 || !strings.Contains(stderr, "--sso-connectors") {
			t.Errorf("%s: exit %d, stderr %q; want a refusal naming --sso-connectors", name, code, stderr)
		}
	}
	down := write([]any{map[string]any{"id": "down", "name": "Down IdP", "issuer": "http://127.0.0.1:1", "client_id": "c"}})
	in.Extra = append(in.Extra, append(append([]string{}, mcptest.OAuthEnv...), "MCPAUTH_SSO_CONNECTORS="+down)...)
	srv := startHTTP(t, in, "http")
	if !strings.Contains(srv.Stderr.String(), "left out") {
		t.Errorf("no error logged for the provider that is down:\n%s", srv.Stderr)
	}
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	c := h.mustRegister(map[string]any{"redirect_uris": []string{"http://127.0.0.1:5558/cb"}, "token_endpoint_auth_method": "none"})
	if _, _, body := noRedirect(t, h.authorizeURL(c, nil).url); !strings.Contains(body, `name="password"`) || strings.Contains(body, "Down IdP") {
		t.Errorf("the sign-in page with its only provider down: want the password form and no button")
	}
}

// Linking is asked for from the account: signed in with its password in this browser in the
// last minutes, the person opens /sso/<id>/link and signs in at the provider; from then on the
// provider's identity signs in as that account. An identity linked elsewhere is refused.
func TestShouldLinkAnIdentityFromASignedInBrowserOnly(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	code, stdout, stderr := runBinary(t, in.Env(), "Victim-password-123\n", startTimeout, "user", "create", "--email", "victim@acme.example")
	var victim struct {
		ID string `json:"id"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &victim) != nil || victim.ID == "" {
		t.Fatalf("user create: %d %s %s", code, stdout, stderr)
	}
	srv, _ := startSSOServer(t, in, map[string]any{"jit": true})
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	client := h.mustRegister(map[string]any{"redirect_uris": []string{"http://127.0.0.1:5559/cb"}, "token_endpoint_auth_method": "none"})
	ctx := context.Background()
	link := func(browser *http.Client, account string) (int, string) {
		t.Helper()
		resp, err := browser.Get(srv.URL + "/sso/op/link")
		if err != nil {
			t.Fatal(err)
		}
		first, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			return resp.StatusCode, string(first)
		}
		back, err := mcptest.ProviderLogin(ctx, browser, resp.Header.Get("Location"), srv.URL+"/sso/", account)
		if err != nil {
			t.Fatal(err)
		}
		resp, err = browser.Get(back.String())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Not signed in here: refused, nothing linked.
	if status, body := link(mcptest.NewBrowser(), "victim"); status != http.StatusForbidden || !strings.Contains(body, "sign in here with your password first") {
		t.Errorf("linking without a sign-in: %d", status)
	}
	// Signed in with the password, in this browser: the provider's "victim" links to the account.
	browser := &mcptest.FormLogin{Identifier: "victim@acme.example", Password: "Victim-password-123"}
	if _, err := browser.Run(ctx, h.authorizeURL(client, nil).url); err != nil {
		t.Fatal(err)
	}
	if status, body := link(browser.Client, "victim"); status != http.StatusOK || !strings.Contains(body, "is linked") {
		t.Fatalf("linking from the signed-in browser: %d %s", status, body)
	}
	r := h.authorizeURL(client, nil)
	back, err := (&mcptest.FormLogin{SSO: "op", ProviderAccount: "victim"}).Run(ctx, r.url)
	if err != nil {
		t.Fatalf("sign in with the linked identity: %v", err)
	}
	_, m, _ := h.exchange(client, back.Query().Get("code"), r.verifier, false)
	if sub := mcptest.JWTClaims(t, m["access_token"].(string))["sub"]; sub != victim.ID {
		t.Errorf("the linked identity signed in as %v, want the account it was linked to (%s)", sub, victim.ID)
	}
	// Ada's identity, made hers by JIT, cannot be linked to the victim's account too.
	if _, err := (&mcptest.FormLogin{SSO: "op", ProviderAccount: "ada"}).Run(ctx, h.authorizeURL(client, nil).url); err != nil {
		t.Fatal(err)
	}
	// (A browser of its own: the provider would otherwise remember its sign-in as "victim".)
	again := &mcptest.FormLogin{Identifier: "victim@acme.example", Password: "Victim-password-123"}
	if _, err := again.Run(ctx, h.authorizeURL(client, nil).url); err != nil {
		t.Fatal(err)
	}
	if status, _ := link(again.Client, "ada"); status != http.StatusConflict {
		t.Errorf("linking an identity linked elsewhere: %d, want 409", status)
	}
}
