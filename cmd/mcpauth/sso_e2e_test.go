package main

// Single sign-on end to end: the real binary, a real OpenID Provider (node-oidc-provider), a
// client going through the sign-in page's connector button: a JIT account made once, refusals
// by policy, an existing account's email never taken over.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// startSSOServer starts mcpauth on a port chosen first (the provider's client is registered
// with its callback before it starts) with one connector, "op", configured by policy. It
// returns the server, the provider's account setter and the server's environment.
func startSSOServer(t *testing.T, in *instance, policy map[string]any) (*httpServer, func(map[string]map[string]any), []string) {
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
	return &httpServer{Proc: p, URL: m[1]}, setAccounts, env
}

// createVictim makes the local account victim@acme.example (password Victim-password-123),
// whose email the provider's "victim" also has, and returns its id.
func createVictim(t *testing.T, in *instance) string {
	t.Helper()
	code, stdout, stderr := runBinary(t, in.Env(), "Victim-password-123\n", startTimeout, "user", "create", "--email", "victim@acme.example")
	var u struct {
		ID string `json:"id"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &u) != nil || u.ID == "" {
		t.Fatalf("user create: %d %s %s", code, stdout, stderr)
	}
	return u.ID
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
	createVictim(t, in)
	srv, setAccounts, _ := startSSOServer(t, in, map[string]any{"jit": true, "default_role": "viewer", "allowed_domains": []string{"acme.example"},
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
	victim := createVictim(t, in)
	srv, _, _ := startSSOServer(t, in, map[string]any{"jit": true})
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	client := h.mustRegister(map[string]any{"redirect_uris": []string{"http://127.0.0.1:5559/cb"}, "token_endpoint_auth_method": "none"})
	ctx := context.Background()
	link := func(browser *http.Client, account string) (int, string) {
		t.Helper()
		resp, err := browser.Get(srv.URL + "/sso/op/link") // the page that asks
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, string(page)
		}
		sealed := between(string(page), `name="request" value="`, `"`)
		resp, err = browser.PostForm(srv.URL+"/sso/op/link", url.Values{"request": {sealed}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			return resp.StatusCode, ""
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
	// A page of another site cannot send the form: without this browser's sealed page, refused.
	signedIn := &mcptest.FormLogin{Identifier: "victim@acme.example", Password: "Victim-password-123"}
	if _, err := signedIn.Run(ctx, h.authorizeURL(client, nil).url); err != nil {
		t.Fatal(err)
	}
	if resp, err := signedIn.Client.PostForm(srv.URL+"/sso/op/link", url.Values{"request": {"forged"}}); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a forged link form: %v %v, want 400", err, resp)
	} else {
		resp.Body.Close()
	}
	// Not signed in here: the link page asks for the password first; its form posted as the
	// link's is refused, nothing linked.
	if status, _ := link(mcptest.NewBrowser(), "victim"); status != http.StatusForbidden {
		t.Errorf("linking without a sign-in: %d, want 403", status)
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
	if sub := mcptest.JWTClaims(t, m["access_token"].(string))["sub"]; sub != victim {
		t.Errorf("the linked identity signed in as %v, want the account it was linked to (%s)", sub, victim)
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

// A sign-in refused for an identity not linked (JIT off) offers the link: the person signs in
// there with the account's password, confirms, signs in at the provider, and from then on the
// identity signs in as that account. The provider's groups still decide who may sign in.
func TestShouldOfferToLinkAnIdentityWhoseSignInWasRefused(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	victim := createVictim(t, in)
	srv, setAccounts, _ := startSSOServer(t, in, map[string]any{"allowed_groups": []string{"eng"}}) // JIT off
	people := ssoAccounts("eng")
	people["victim"]["groups"] = []string{"eng"}
	setAccounts(people)
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	client := h.mustRegister(map[string]any{"redirect_uris": []string{"http://127.0.0.1:5562/cb"}, "token_endpoint_auth_method": "none"})
	ctx := context.Background()
	if _, err := (&mcptest.FormLogin{SSO: "op", ProviderAccount: "eve"}).Run(ctx, h.authorizeURL(client, nil).url); err == nil || !strings.Contains(err.Error(), "none of the allowed groups") {
		t.Errorf("eve, in no allowed group: %v, want refused for the group", err)
	}
	browser := &mcptest.FormLogin{SSO: "op", ProviderAccount: "ada"}
	if _, err := browser.Run(ctx, h.authorizeURL(client, nil).url); err == nil || !strings.Contains(err.Error(), "not linked") {
		t.Fatalf("ada, unknown with JIT off: %v, want refused as not linked", err)
	}
	// The victim's own identity at the provider, refused too, and the link it is offered.
	browser = &mcptest.FormLogin{SSO: "op", ProviderAccount: "victim"}
	if _, err := browser.Run(ctx, h.authorizeURL(client, nil).url); err == nil {
		t.Fatal("victim's identity signed in before it was linked")
	}
	href := between(browser.LastPage, `<a href="`, `"`)
	if href != "/sso/op/link" {
		t.Fatalf("the refusal offers %q, want the link page", href)
	}
	resp, err := browser.Client.Get(srv.URL + href)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "Sign in to link your Acme SSO account") || strings.Contains(string(page), `class="sso"`) {
		t.Fatalf("the link page without a sign-in: %d, want the password form alone:\n%s", resp.StatusCode, page)
	}
	form := url.Values{"request": {between(string(page), `name="request" value="`, `"`)}, "identifier": {"victim@acme.example"}, "password": {"Victim-password-123"}}
	if resp, err = browser.Client.PostForm(srv.URL+"/authorize/login", form); err != nil || resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != href {
		t.Fatalf("the password on the link page: %v %v, want back to the link page", err, resp)
	}
	resp.Body.Close()
	if resp, err = browser.Client.Get(srv.URL + href); err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "You are signed in as <strong>victim@acme.example</strong>") {
		t.Fatalf("the link page after the password: %d\n%s", resp.StatusCode, page)
	}
	if resp, err = browser.Client.PostForm(srv.URL+href, url.Values{"request": {between(string(page), `name="request" value="`, `"`)}}); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm the link: %v %v", err, resp)
	}
	resp.Body.Close()
	cb, err := mcptest.ProviderLogin(ctx, browser.Client, resp.Header.Get("Location"), srv.URL+"/sso/", "victim")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err = browser.Client.Get(cb.String()); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the provider's answer to the link: %v %v", err, resp)
	}
	resp.Body.Close()
	r := h.authorizeURL(client, nil)
	back, err := (&mcptest.FormLogin{SSO: "op", ProviderAccount: "victim"}).Run(ctx, r.url)
	if err != nil {
		t.Fatalf("the linked identity's sign-in: %v", err)
	}
	_, m, _ := h.exchange(client, back.Query().Get("code"), r.verifier, false)
	if sub := mcptest.JWTClaims(t, m["access_token"].(string))["sub"]; sub != victim {
		t.Errorf("the linked identity signed in as %v, want %s", sub, victim)
	}
}

// callTool makes one stateless tools/call with token and returns the result's structured
// content (failing t on an error result).
func (h asHarness) callTool(token, tool string, a args) map[string]any {
	h.t.Helper()
	argJSON, _ := json.Marshal(a)
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + string(argJSON) + `,` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},` +
		`"io.modelcontextprotocol/clientInfo":{"name":"e2e","version":"1"}}}}`
	r := mcptest.Post(h.t, h.resource, token, body, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", tool)
	var resp struct {
		Result struct {
			IsError           bool           `json:"isError"`
			StructuredContent map[string]any `json:"structuredContent"`
		} `json:"result"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(r.Body, &resp) != nil || resp.Result.IsError {
		h.t.Fatalf("%s: %d %s", tool, r.Status, r.Body)
	}
	return resp.Result.StructuredContent
}

// A provider that is not trusted for MFA does not stand in for an account's own second factor:
// after the provider, the account's TOTP is asked.
func TestShouldAskTheAccountsSecondFactorAfterAProviderNotTrustedForIt(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	createVictim(t, in)
	srv, _, _ := startSSOServer(t, in, map[string]any{})
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	client := h.mustRegister(map[string]any{"redirect_uris": []string{"http://127.0.0.1:5560/cb"}, "token_endpoint_auth_method": "none"})
	ctx := context.Background()
	// Signed in with the password (no MFA yet): link the provider's "victim", get a token.
	browser := &mcptest.FormLogin{Identifier: "victim@acme.example", Password: "Victim-password-123"}
	r := h.authorizeURL(client, nil)
	back, err := browser.Run(ctx, r.url)
	if err != nil {
		t.Fatal(err)
	}
	_, m, _ := h.exchange(client, back.Query().Get("code"), r.verifier, false)
	token := m["access_token"].(string)
	resp, err := browser.Client.Get(srv.URL + "/sso/op/link")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp, err = browser.Client.PostForm(srv.URL+"/sso/op/link", url.Values{"request": {between(string(page), `name="request" value="`, `"`)}}); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, err := mcptest.ProviderLogin(ctx, browser.Client, resp.Header.Get("Location"), srv.URL+"/sso/", "victim")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err = browser.Client.Get(cb.String()); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("link: %v %v", err, resp)
	}
	resp.Body.Close()
	// The account turns TOTP on.
	en := h.callTool(token, "mfa_enroll", args{"method": "totp"})
	secret, _ := en["secret"].(string)
	step := totpStep(time.Now())
	if conf := h.callTool(token, "mfa_confirm", args{"code": totpCode(t, secret, step)}); conf["enabled"] != true {
		t.Fatalf("mfa_confirm: %v", conf)
	}
	// Through the provider now: its sign-in, then the account's code.
	asked := 0
	sso := &mcptest.FormLogin{SSO: "op", ProviderAccount: "victim", SecondFactor: func() string {
		asked++
		return totpCode(t, secret, max(step+1, totpStep(time.Now())))
	}}
	if back, err := sso.Run(ctx, h.authorizeURL(client, nil).url); err != nil || back.Query().Get("code") == "" {
		t.Fatalf("sign in through the provider with MFA on: %v", err)
	}
	if asked != 1 || !slices.Contains(sso.Pages, "/authorize/mfa") {
		t.Errorf("pages %v, code asked %d times: want the account's second factor after the provider", sso.Pages, asked)
	}
}

// Several first sign-ins of one person at once, through the real provider and binary, make
// one account.
func TestShouldMakeOneAccountForConcurrentFirstSignInsThroughTheProvider(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	srv, _, _ := startSSOServer(t, in, map[string]any{"jit": true})
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	client := h.mustRegister(map[string]any{"redirect_uris": []string{"http://127.0.0.1:5561/cb"}, "token_endpoint_auth_method": "none"})
	const browsers = 5
	subs := make(chan any, browsers)
	errs := make(chan error, browsers)
	var wg sync.WaitGroup
	for range browsers {
		r := h.authorizeURL(client, nil)
		wg.Go(func() {
			back, err := (&mcptest.FormLogin{SSO: "op", ProviderAccount: "ada"}).Run(context.Background(), r.url)
			if err != nil {
				errs <- err
				return
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "redirect_uri": {client.redirect},
				"code_verifier": {r.verifier}, "client_id": {client.id}}
			resp, err := http.PostForm(h.issuer+"/token", form)
			if err != nil {
				errs <- err
				return
			}
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			resp.Body.Close()
			tok, _ := m["access_token"].(string)
			if tok == "" {
				errs <- fmt.Errorf("token: %d %v", resp.StatusCode, m)
				return
			}
			subs <- mcptest.JWTClaims(t, tok)["sub"]
		})
	}
	wg.Wait()
	close(subs)
	close(errs)
	for err := range errs {
		t.Errorf("a concurrent first sign-in: %v", err)
	}
	seen := map[any]bool{}
	for s := range subs {
		seen[s] = true
	}
	if len(seen) != 1 {
		t.Fatalf("%d concurrent first sign-ins of one person signed in as %d accounts (%v), want 1", browsers, len(seen), seen)
	}
}

// startSSOStdio starts an HTTP server with the connector "op" (startSSOServer) and a stdio
// server sharing its store and master key, whose sso_login sign-ins finish on the HTTP server's
// pages.
func startSSOStdio(t *testing.T, policy map[string]any) (*httpServer, *conn) {
	t.Helper()
	uri, db := sharedStore(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	in := &instance{DataDir: t.TempDir(), MongoURI: uri, MongoDB: db, OwnerEmail: "owner@example.com",
		OwnerPassword: "e2e-Owner-" + randomHex(8), Bootstrap: true,
		Extra: []string{"MCPAUTH_MASTER_KEY=" + base64.StdEncoding.EncodeToString(key)}}
	srv, _, env := startSSOServer(t, in, policy)
	return srv, mcptest.DialStdio(t, binPath, append(env, "MCPAUTH_DATA_DIR="+t.TempDir(), "MCPAUTH_ISSUER="+srv.URL))
}

// ssoStarted and ssoFinished are sso_login's answers.
type ssoStarted struct {
	Status    string    `json:"status"`
	URL       string    `json:"url"`
	UserCode  string    `json:"user_code"`
	LoginID   string    `json:"login_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

type ssoFinished struct {
	Status string `json:"status"`
	mcptest.Tokens
}

// A stdio client signs in through the provider with sso_login: the tool answers a URL, the
// person finishes in a browser on the authorization server (another process sharing the store
// and the master key), and the tool's next call logs the stdio session in, once, for no longer
// than the connector's session lifetime.
func TestShouldSignInOverStdioThroughTheSSOLoginTool(t *testing.T) {
	t.Parallel()
	srv, c := startSSOStdio(t, map[string]any{"jit": true, "allowed_domains": []string{"acme.example"}, "session_ttl": "1h"})
	if !slices.Contains(c.ListTools(t), "sso_login") {
		t.Fatal("tools/list over stdio has no sso_login")
	}
	for _, bad := range []struct {
		name  string
		args  args
		field string
	}{
		{"neither argument", args{}, "connector"},
		{"both arguments", args{"connector": "op", "login_id": "x"}, "connector"},
		{"an unknown connector", args{"connector": "nope"}, "connector"},
		{"a login id not made here", args{"login_id": strings.Repeat("A", 200)}, "login_id"},
	} {
		t.Run(bad.name, func(t *testing.T) { c.Call(t, "sso_login", bad.args).WantFieldError(t, bad.field) })
	}
	start := decode[ssoStarted](t, c.Call(t, "sso_login", args{"connector": "op"}))
	if start.Status != "started" || !strings.HasPrefix(start.URL, srv.URL+"/sso/device?") || len(start.UserCode) != 9 || start.LoginID == "" {
		t.Fatalf("sso_login started %+v", start)
	}
	if got := decode[ssoFinished](t, c.Call(t, "sso_login", args{"login_id": start.LoginID})); got.Status != "pending" || got.AccessToken != "" {
		t.Fatalf("before the browser: %+v, want pending", got)
	}
	// The page the person opens shows the code the tool showed.
	resp, err := http.Get(start.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), start.UserCode) {
		t.Fatalf("the sign-in page answered %d without the code %s", resp.StatusCode, start.UserCode)
	}
	browser := &mcptest.FormLogin{ProviderAccount: "ada"}
	if back, err := browser.Run(context.Background(), start.URL); err != nil || back != nil {
		t.Fatalf("the browser's sign-in: %v %v\nstderr:\n%s", back, err, srv.Stderr)
	}
	if !strings.Contains(browser.LastPage, "ada@acme.example") || !strings.Contains(browser.LastPage, start.UserCode) {
		t.Errorf("the last page does not say who signed in, with the code: %s", browser.LastPage)
	}
	done := decode[ssoFinished](t, c.Call(t, "sso_login", args{"login_id": start.LoginID}))
	if done.Status != "signed_in" || done.AccessToken == "" || done.User.Email != "ada@acme.example" {
		t.Fatalf("after the browser: %+v", done)
	}
	if who := decode[mcptest.Whoami](t, c.Call(t, "auth_whoami", nil)); who.User.Email != "ada@acme.example" {
		t.Errorf("the stdio session is %q after sso_login, want ada", who.User.Email)
	}
	type sessionList struct {
		Sessions []struct {
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"sessions"`
	}
	sessions := decode[sessionList](t, c.Call(t, "auth_sessions", nil))
	if len(sessions.Sessions) != 1 || time.Until(sessions.Sessions[0].ExpiresAt) > time.Hour {
		t.Errorf("sessions %+v: want one, ending within the connector's hour", sessions.Sessions)
	}
	// Once: the login id again, and the link again, sign nobody in.
	c.Call(t, "sso_login", args{"login_id": start.LoginID}).WantError(t, "TOKEN_INVALID")
	if _, err := (&mcptest.FormLogin{ProviderAccount: "victim"}).Run(context.Background(), start.URL); err == nil || !strings.Contains(err.Error(), "finished already") {
		t.Errorf("the link used again by another browser: %v, want refused as finished", err)
	}
	// Ada turns TOTP on: the next sso_login asks for it in the browser after the provider.
	secret := enrollMFA(t, c, "ada@acme.example").Secret
	step := totpStep(time.Now())
	if conf := decode[map[string]any](t, c.Call(t, "mfa_confirm", args{"code": totpCode(t, secret, step)})); conf["enabled"] != true {
		t.Fatalf("mfa_confirm: %v", conf)
	}
	again := decode[ssoStarted](t, c.Call(t, "sso_login", args{"connector": "op"}))
	browser = &mcptest.FormLogin{ProviderAccount: "ada", SecondFactor: func() string { return totpCode(t, secret, max(step+1, totpStep(time.Now()))) }}
	if _, err := browser.Run(context.Background(), again.URL); err != nil || !slices.Contains(browser.Pages, "/authorize/mfa") {
		t.Fatalf("sso_login with TOTP on: %v, pages %v: want the second factor after the provider", err, browser.Pages)
	}
	if done := decode[ssoFinished](t, c.Call(t, "sso_login", args{"login_id": again.LoginID})); done.Status != "signed_in" || done.User.Email != "ada@acme.example" {
		t.Fatalf("after the browser with TOTP: %+v", done)
	}
}

// "mcpauth connector add" writes what the server loads, after the server's own checks and the
// provider's discovery; a refused add leaves the file as it was, and the secret is never a flag.
func TestShouldEditTheConnectorsFileWithTheConnectorCommand(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	issuer, _ := mcptest.StartOpenIDProvider(t, "http://127.0.0.1:1/sso/op/callback", ssoAccounts())
	file := filepath.Join(t.TempDir(), "connectors.json")
	env := in.Env("MCPAUTH_SSO_CONNECTORS="+file, "MCPAUTH_ISSUER=https://mcp.example.com")
	add := []string{"connector", "add", "--id", "op", "--name", "Acme SSO", "--issuer", issuer, "--client-id", mcptest.ProviderClientID,
		"--client-secret-env", "E2E_OP_SECRET", "--jit", "--allowed-domain", "acme.example", "--group-role", "eng:default:admin", "--session-ttl", "8h"}
	code, stdout, stderr := runBinary(t, env, "", startTimeout, add...)
	if code != 0 || !strings.Contains(stdout, "https://mcp.example.com/sso/op/callback") {
		t.Fatalf("connector add: exit %d\n%s%s", code, stdout, stderr)
	}
	written, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(written, &got); err != nil || len(got) != 1 || got[0]["client_secret_env"] != "E2E_OP_SECRET" || got[0]["jit"] != true {
		t.Fatalf("the file after add: %s (%v)", written, err)
	}
	for name, argv := range map[string][]string{
		"the secret as a flag":      append(slices.Clone(add[:len(add)-2]), "--client-secret", "s3cret"),
		"the same id again":         add,
		"a provider not reachable":  {"connector", "add", "--id", "down", "--issuer", "http://127.0.0.1:1", "--client-id", "c", "--client-secret-env", "X"},
		"an id that is not a path":  {"connector", "add", "--id", "../x", "--issuer", issuer, "--client-id", "c", "--client-secret-env", "X"},
		"a role that is not one":    {"connector", "add", "--id", "two", "--issuer", issuer, "--client-id", "c", "--client-secret-env", "X", "--default-role", "root"},
		"a group role without role": {"connector", "add", "--id", "two", "--issuer", issuer, "--client-id", "c", "--client-secret-env", "X", "--group-role", "eng"},
	} {
		if code, _, stderr := runBinary(t, env, "", startTimeout, argv...); code == 0 {
			t.Errorf("%s: exit 0, want a refusal", name)
		} else if after, _ := os.ReadFile(file); string(after) != string(written) {
			t.Errorf("%s: refused (%s) but the file changed:\n%s", name, strings.TrimSpace(stderr), after)
		}
	}
	if code, stdout, _ := runBinary(t, env, "", startTimeout, "connector", "list"); code != 0 || !strings.Contains(stdout, "Acme SSO") {
		t.Errorf("connector list: exit %d\n%s", code, stdout)
	}
	// The server loads what add wrote.
	srv := startHTTP(t, in, "http", append(append([]string{}, mcptest.OAuthEnv...), "MCPAUTH_SSO_CONNECTORS="+file, "E2E_OP_SECRET=x")...)
	if log := srv.Stderr.String(); !strings.Contains(log, `msg="single sign-on connector" id=op`) || strings.Contains(log, "left out") {
		t.Errorf("the server did not load the added connector:\n%s", log)
	}
	if code, stdout, stderr := runBinary(t, env, "", startTimeout, "connector", "delete", "--id", "op"); code != 0 {
		t.Fatalf("connector delete: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, stdout, _ := runBinary(t, env, "", startTimeout, "connector", "list"); strings.Contains(stdout, "Acme SSO") {
		t.Errorf("connector list after delete:\n%s", stdout)
	}
}
