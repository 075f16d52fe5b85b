package main

// The authorization server's spec checklist, against the real binary: what a client, a person
// and a stranger see of /authorize, the pages, /token and /register. Anonymous initialize is
// kept on for this server (MCPAUTH_ANONYMOUS_METHODS), so the test can set users up through
// the tools; the Go SDK's test in bduf-demo runs the default, where nothing is anonymous.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// asHarness talks to the authorization server of one running binary.
type asHarness struct {
	t        *testing.T
	issuer   string
	resource string
}

// asClient is a registered client.
type asClient struct {
	id, secret, redirect string
}

func (h asHarness) post(path string, form url.Values, basic *asClient) (int, map[string]any, http.Header) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic.id), url.QueryEscape(basic.secret))
	}
	return h.do(req)
}

func (h asHarness) do(req *http.Request) (int, map[string]any, http.Header) {
	h.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, resp.Header
}

func (h asHarness) register(meta map[string]any) (int, map[string]any) {
	h.t.Helper()
	b, _ := json.Marshal(meta)
	req, _ := http.NewRequest(http.MethodPost, h.issuer+"/register", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	status, m, _ := h.do(req)
	return status, m
}

func (h asHarness) mustRegister(meta map[string]any) asClient {
	h.t.Helper()
	status, m := h.register(meta)
	if status != http.StatusCreated {
		h.t.Fatalf("register %v: %d %v", meta, status, m)
	}
	secret, _ := m["client_secret"].(string)
	return asClient{id: m["client_id"].(string), secret: secret, redirect: meta["redirect_uris"].([]string)[0]}
}

// authRequest is an authorization request with PKCE; q overrides its parameters ("" deletes).
type authRequest struct {
	verifier, state string
	url             string
}

func (h asHarness) authorizeURL(c asClient, q map[string]string) authRequest {
	r := authRequest{verifier: oauth2.GenerateVerifier(), state: mcptest.RandomHex(8)}
	v := url.Values{"response_type": {"code"}, "client_id": {c.id}, "redirect_uri": {c.redirect}, "state": {r.state},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(r.verifier)}, "code_challenge_method": {"S256"}}
	for k, val := range q {
		if val == "" {
			v.Del(k)
		} else {
			v.Set(k, val)
		}
	}
	r.url = h.issuer + "/authorize?" + v.Encode()
	return r
}

// code runs the pages with login and returns the code the redirect carries.
func (h asHarness) code(c asClient, r authRequest, login *mcptest.FormLogin) string {
	h.t.Helper()
	back, err := login.Run(context.Background(), r.url)
	if err != nil {
		h.t.Fatalf("sign-in: %v", err)
	}
	q := back.Query()
	if q.Get("code") == "" || q.Get("state") != r.state || q.Get("iss") != h.issuer {
		h.t.Fatalf("redirect %s: want code, state %s, iss %s", back, r.state, h.issuer)
	}
	return q.Get("code")
}

func (h asHarness) exchange(c asClient, code, verifier string, basic bool) (int, map[string]any, http.Header) {
	h.t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect}, "code_verifier": {verifier}}
	if basic {
		return h.post("/token", form, &c)
	}
	form.Set("client_id", c.id)
	return h.post("/token", form, nil)
}

// call makes one stateless tools/call with token and returns the HTTP status.
func (h asHarness) call(token, tool string) int {
	h.t.Helper()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":{},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},` +
		`"io.modelcontextprotocol/clientInfo":{"name":"e2e","version":"1"}}}}`
	return mcptest.Post(h.t, h.resource, token, body, "MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", tool).Status
}

// noRedirect fetches u and returns the status, the Location and the body.
func noRedirect(t *testing.T, u string) (int, string, string) {
	t.Helper()
	resp, err := mcptest.NewBrowser().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

func TestAuthorizationServerChecklist(t *testing.T) {
	env := append(slices.Clone(mcptest.OAuthEnv), "MCPAUTH_ANONYMOUS_METHODS=initialize,ping,tools/list")
	in, sec, srv, owner, _ := attackServer(t, env...)
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	ownerLogin := mcptest.FormLogin{Identifier: in.OwnerEmail, Password: in.OwnerPassword}
	public := h.mustRegister(map[string]any{"redirect_uris": []string{"http://127.0.0.1:5555/cb"}, "client_name": "Public",
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}})
	other := h.mustRegister(map[string]any{"redirect_uris": []string{"http://127.0.0.1:5555/cb"}, "client_name": "Other",
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"}})

	t.Run("metadata names one issuer at both paths", func(t *testing.T) {
		for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/mcp"} {
			req, _ := http.NewRequest(http.MethodGet, h.issuer+path, nil)
			status, m, hdr := h.do(req)
			if status != http.StatusOK || m["issuer"] != h.issuer || m["authorization_endpoint"] != h.issuer+"/authorize" ||
				m["token_endpoint"] != h.issuer+"/token" || m["registration_endpoint"] != h.issuer+"/register" ||
				m["authorization_response_iss_parameter_supported"] != true || m["client_id_metadata_document_supported"] != true ||
				m["introspection_endpoint"] != h.issuer+"/introspect" || hdr.Get("Access-Control-Allow-Origin") != "*" {
				t.Errorf("GET %s: %d %v", path, status, m)
			}
			for field, want := range map[string]string{"response_types_supported": "code", "code_challenge_methods_supported": "S256",
				"grant_types_supported": "refresh_token", "token_endpoint_auth_methods_supported": "client_secret_basic"} {
				if list, _ := m[field].([]any); !slices.Contains(list, any(want)) {
					t.Errorf("GET %s: %s = %v, want %s in it", path, field, m[field], want)
				}
			}
		}
		md := mcptest.GetResourceMetadata(t, h.issuer+"/.well-known/oauth-protected-resource/mcp")
		if md.Resource != h.resource || !slices.Equal(md.AuthorizationServers, []string{h.issuer}) {
			t.Errorf("protected-resource metadata %+v", md)
		}
	})

	t.Run("a bad client or redirect URI gets an error page, never a redirect", func(t *testing.T) {
		for name, q := range map[string]map[string]string{
			"unknown client":                 {"client_id": "mcp_nobody"},
			"unregistered path":              {"redirect_uri": "http://127.0.0.1:5555/other"},
			"localhost for 127.0.0.1":        {"redirect_uri": "http://localhost:5555/cb"},
			"an attacker's host":             {"redirect_uri": "https://evil.example/cb"},
			"https for the registered http":  {"redirect_uri": "https://127.0.0.1:5555/cb"},
			"no redirect URI for a loopback": {"redirect_uri": ""},
		} {
			status, loc, body := noRedirect(t, h.authorizeURL(public, q).url)
			if status != http.StatusBadRequest || loc != "" || !strings.Contains(body, "Sign-in stopped") {
				t.Errorf("%s: %d Location %q", name, status, loc)
			}
		}
		// RFC 8252 §7.3: a loopback redirect URI may come back on any port.
		if status, loc, body := noRedirect(t, h.authorizeURL(public, map[string]string{"redirect_uri": "http://127.0.0.1:61000/cb"}).url); status != http.StatusOK || loc != "" || !strings.Contains(body, `name="password"`) {
			t.Errorf("another loopback port: %d %q, want the login page", status, loc)
		}
	})

	t.Run("request errors go back with state and iss", func(t *testing.T) {
		for name, tc := range map[string]struct {
			q    map[string]string
			want string
		}{
			"no PKCE":                   {map[string]string{"code_challenge": ""}, "invalid_request"},
			"plain PKCE":                {map[string]string{"code_challenge_method": "plain"}, "invalid_request"},
			"implicit":                  {map[string]string{"response_type": "token"}, "unsupported_response_type"},
			"another resource":          {map[string]string{"resource": "https://other.example/mcp"}, "invalid_target"},
			"a path under the resource": {map[string]string{"resource": h.resource + "/x"}, "invalid_target"},
		} {
			r := h.authorizeURL(public, tc.q)
			status, loc, _ := noRedirect(t, r.url)
			u, _ := url.Parse(loc)
			if status != http.StatusSeeOther || u == nil || !strings.HasPrefix(loc, public.redirect) || u.Query().Get("error") != tc.want ||
				u.Query().Get("state") != r.state || u.Query().Get("iss") != h.issuer {
				t.Errorf("%s: %d %q, want %s with state and iss", name, status, loc, tc.want)
			}
		}
	})

	t.Run("a code is single use, bound to its client and verifier", func(t *testing.T) {
		r := h.authorizeURL(public, map[string]string{"scope": "users:read"})
		code := h.code(public, r, &ownerLogin)
		// A stranger's guesses spend nothing: another client, a wrong verifier.
		if status, m, _ := h.exchange(other, code, r.verifier, false); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("another client redeems: %d %v", status, m)
		}
		if status, m, _ := h.exchange(public, code, oauth2.GenerateVerifier(), false); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("wrong verifier: %d %v", status, m)
		}
		status, m, hdr := h.exchange(public, code, r.verifier, false)
		if status != http.StatusOK || m["token_type"] != "Bearer" || m["scope"] != "users:read" || hdr.Get("Cache-Control") != "no-store" {
			t.Fatalf("redeem: %d %v (Cache-Control %q)", status, m, hdr.Get("Cache-Control"))
		}
		access, refresh := m["access_token"].(string), m["refresh_token"].(string)
		sec.Add(access, refresh, code)
		claims := mcptest.JWTClaims(t, access)
		if claims["iss"] != h.issuer || !slices.Equal(toStrings(claims["aud"]), []string{h.resource}) || claims["client_id"] != public.id {
			t.Errorf("access token claims %v", claims)
		}
		if s := h.call(access, "auth_whoami"); s != http.StatusOK {
			t.Fatalf("the code's access token: %d", s)
		}
		// The second redemption: refused, and what the first issued is revoked.
		if status, m, _ := h.exchange(public, code, r.verifier, false); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("second redemption: %d %v", status, m)
		}
		if s := h.call(access, "auth_whoami"); s != http.StatusUnauthorized {
			t.Errorf("access token after the code was replayed: %d, want 401", s)
		}
		if status, m, _ := h.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {public.id}}, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("refresh token after the code was replayed: %d %v", status, m)
		}
	})

	t.Run("a refresh token presented by another client ends its family", func(t *testing.T) {
		r := h.authorizeURL(public, nil)
		_, m, _ := h.exchange(public, h.code(public, r, &ownerLogin), r.verifier, false)
		refresh, _ := m["refresh_token"].(string)
		sec.Add(refresh)
		if status, m, _ := h.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {other.id}}, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("another client refreshes: %d %v", status, m)
		}
		if status, m, _ := h.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {public.id}}, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("the rightful client after the theft: %d %v, want invalid_grant (the family is revoked)", status, m)
		}
	})

	t.Run("a refresh narrows the scope on request, never widens it, and loses nothing", func(t *testing.T) {
		r := h.authorizeURL(public, map[string]string{"scope": "users:read audit:read"})
		_, m, _ := h.exchange(public, h.code(public, r, &ownerLogin), r.verifier, false)
		refresh := m["refresh_token"].(string)
		step := func(scope string) map[string]any {
			t.Helper()
			form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {public.id}}
			if scope != "-" {
				form.Set("scope", scope)
			}
			status, m, _ := h.post("/token", form, nil)
			if status != http.StatusOK {
				t.Fatalf("refresh with scope %q: %d %v", scope, status, m)
			}
			refresh = m["refresh_token"].(string)
			sec.Add(refresh, m["access_token"].(string))
			return m
		}
		if m := step("users:read"); m["scope"] != "users:read" || mcptest.JWTClaims(t, m["access_token"].(string))["scope"] != "users:read" {
			t.Errorf("narrowed: %v", m["scope"])
		}
		if m := step("users:read roles:write"); m["scope"] != "users:read" {
			t.Errorf("asked wider: scope %v, want only what was granted among it", m["scope"])
		}
		if m := step("-"); m["scope"] != "users:read audit:read" {
			t.Errorf("no scope: %v, want the whole grant again", m["scope"])
		}
	})

	t.Run("client authentication", func(t *testing.T) {
		if status, m, hdr := h.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"mcp_nobody"}}, nil); status != http.StatusUnauthorized || m["error"] != "invalid_client" || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("unknown client: %d %v", status, m)
		}
		conf := h.mustRegister(map[string]any{"redirect_uris": []string{"https://app.example/cb"}, "client_name": "Confidential",
			"token_endpoint_auth_method": "client_secret_basic", "grant_types": []string{"authorization_code"}})
		if conf.secret == "" {
			t.Fatal("a confidential client got no secret")
		}
		sec.Add(conf.secret)
		r := h.authorizeURL(conf, nil)
		code := h.code(conf, r, &ownerLogin)
		wrong := conf
		wrong.secret = "not-the-secret"
		if status, m, _ := h.exchange(wrong, code, r.verifier, true); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
			t.Errorf("wrong secret: %d %v", status, m)
		}
		if status, m, _ := h.exchange(conf, code, r.verifier, false); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
			t.Errorf("confidential client without its secret: %d %v", status, m)
		}
		status, m, _ := h.exchange(conf, code, r.verifier, true)
		if status != http.StatusOK {
			t.Errorf("right secret (Basic): %d %v", status, m)
		}
		if m["refresh_token"] != nil { // it registered for authorization_code alone
			t.Errorf("a client not registered for refresh_token got one")
		}
	})

	t.Run("introspection answers confidential clients only, and only for live access tokens", func(t *testing.T) {
		rs := h.mustRegister(map[string]any{"redirect_uris": []string{"https://rs.example/cb"}, "client_name": "Resource server",
			"token_endpoint_auth_method": "client_secret_post", "grant_types": []string{"authorization_code"}})
		sec.Add(rs.secret)
		r := h.authorizeURL(public, map[string]string{"scope": "users:read"})
		_, m, _ := h.exchange(public, h.code(public, r, &ownerLogin), r.verifier, false)
		access, _ := m["access_token"].(string)
		sec.Add(access)
		introspect := func(c asClient, tok string) (int, map[string]any) {
			status, m, _ := h.post("/introspect", url.Values{"token": {tok}, "client_id": {c.id}, "client_secret": {c.secret}}, nil)
			return status, m
		}
		status, got := introspect(rs, access)
		if status != http.StatusOK || got["active"] != true || got["scope"] != "users:read" || got["client_id"] != public.id ||
			got["aud"] != h.resource || got["iss"] != h.issuer || got["username"] != in.OwnerEmail {
			t.Errorf("a live access token: %d %v", status, got)
		}
		if status, got := introspect(public, access); status != http.StatusUnauthorized || got["error"] != "invalid_client" {
			t.Errorf("a public client introspects: %d %v", status, got)
		}
		for name, tok := range map[string]string{"garbage": "a.b.c", "an API key": "mcpk_" + strings.Repeat("x", 40), "a refresh token": m["refresh_token"].(string)} {
			if status, got := introspect(rs, tok); status != http.StatusOK || len(got) != 1 || got["active"] != false {
				t.Errorf("%s: %d %v, want only active=false", name, status, got)
			}
		}
		if status, _, _ := h.post("/revoke", url.Values{"token": {access}, "client_id": {public.id}}, nil); status != http.StatusOK {
			t.Fatalf("revoke: %d", status)
		}
		if status, got := introspect(rs, access); status != http.StatusOK || len(got) != 1 || got["active"] != false {
			t.Errorf("a revoked access token: %d %v, want only active=false", status, got)
		}
	})

	t.Run("a client_id URL on a private address is never fetched", func(t *testing.T) {
		var hits atomic.Int32
		inside := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
		defer inside.Close()
		_, port, _ := net.SplitHostPort(inside.Listener.Addr().String())
		for _, id := range []string{inside.URL + "/client.json", "https://localhost:" + port + "/client.json"} {
			c := asClient{id: id, redirect: "http://127.0.0.1:5555/cb"}
			status, loc, body := noRedirect(t, h.authorizeURL(c, nil).url)
			if status != http.StatusBadRequest || loc != "" || !strings.Contains(body, "non-public address") {
				t.Errorf("%s: %d %q, want the error page naming the non-public address", id, status, loc)
			}
		}
		if n := hits.Load(); n != 0 {
			t.Errorf("the internal server got %d requests", n)
		}
	})

	t.Run("a signed-in browser is not asked the password again, a web client not asked consent again", func(t *testing.T) {
		password := freshPassword(sec)
		u := owner.CreateUser(t, "remember@example.com", password, "admin")
		web := h.mustRegister(map[string]any{"redirect_uris": []string{"https://app.example/cb"}, "client_name": "Web app",
			"token_endpoint_auth_method": "none"})
		browser := mcptest.FormLogin{Identifier: "remember@example.com", Password: password} // one browser throughout
		pages := func(c asClient, q map[string]string) []string {
			t.Helper()
			browser.Pages = nil
			h.code(c, h.authorizeURL(c, q), &browser)
			return browser.Pages
		}
		want := func(what string, got []string, want ...string) {
			t.Helper()
			if !slices.Equal(got, want) {
				t.Errorf("%s: pages %v, want %v", what, got, want)
			}
		}
		want("first sign-in", pages(public, nil), "/authorize/login", "/authorize/consent")
		want("a loopback client again: consent only (another program could claim its redirect)", pages(public, nil), "/authorize/consent")
		want("a web client, first time", pages(web, map[string]string{"scope": "users:read"}), "/authorize/consent")
		want("the web client again, same scopes", pages(web, map[string]string{"scope": "users:read"}))
		want("a step-up", pages(web, map[string]string{"scope": "users:read audit:read"}), "/authorize/consent")
		if page := browser.LastPage; !strings.Contains(page, `(audit:read) <strong class="new">new</strong>`) || strings.Contains(page, `(users:read) <strong`) {
			t.Errorf("the step-up's consent page does not mark what it adds:\n%s", page)
		}
		want("prompt=consent", pages(web, map[string]string{"scope": "users:read", "prompt": "consent"}), "/authorize/consent")
		want("prompt=login", pages(web, map[string]string{"scope": "users:read", "prompt": "login"}), "/authorize/login")
		// prompt=none in a browser that is not signed in: login_required, at the client.
		r := h.authorizeURL(web, map[string]string{"prompt": "none"})
		_, loc, _ := noRedirect(t, r.url)
		if back, _ := url.Parse(loc); back == nil || back.Query().Get("error") != "login_required" || back.Query().Get("iss") != h.issuer {
			t.Errorf("prompt=none without a session: %q", loc)
		}
		// The account changes (an administrator sets its password): the browser signs in again.
		newPassword := freshPassword(sec)
		owner.Call(t, "user_set_password", args{"id": u.ID, "new_password": newPassword})
		browser.Password = newPassword
		want("after the password changed", pages(web, map[string]string{"scope": "users:read"}), "/authorize/login")
		// "Not you?" on the consent page ends the browser session.
		browser.Pages = nil
		if _, err := browser.Run(context.Background(), h.authorizeURL(public, nil).url); err != nil {
			t.Fatal(err)
		}
		sealed := between(browser.LastPage, `name="request" value="`, `"`)
		resp, err := browser.Client.PostForm(h.issuer+"/authorize/switch", url.Values{"request": {sealed}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `name="password"`) {
			t.Errorf("Not you?: %d, want the login page", resp.StatusCode)
		}
		want("after Not you?", pages(web, map[string]string{"scope": "users:read"}), "/authorize/login")
	})

	t.Run("the login page answers an unknown account and a wrong password alike", func(t *testing.T) {
		answer := func(identifier string) string {
			l := mcptest.FormLogin{Identifier: identifier, Password: "Wrong-password-123"}
			_, err := l.Run(context.Background(), h.authorizeURL(public, nil).url)
			if err == nil {
				t.Fatalf("%s: signed in with a wrong password", identifier)
			}
			return err.Error()
		}
		if a, b := answer(in.OwnerEmail), answer("nobody@example.com"); a != b || !strings.Contains(a, "not right") {
			t.Errorf("wrong password: %q; unknown account: %q", a, b)
		}
	})

	t.Run("a page cannot be posted from another browser", func(t *testing.T) {
		_, _, body := noRedirect(t, h.authorizeURL(public, nil).url) // browser A opens the login page
		sealed := between(body, `name="request" value="`, `"`)
		form := url.Values{"request": {sealed}, "identifier": {in.OwnerEmail}, "password": {in.OwnerPassword}}
		resp, err := mcptest.NewBrowser().PostForm(h.issuer+"/authorize/login", form) // browser B, without A's cookie
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), `name="decision"`) {
			t.Errorf("login form from another browser: %d, want 400 and no consent page", resp.StatusCode)
		}
	})

	t.Run("consent denied goes back as access_denied", func(t *testing.T) {
		r := h.authorizeURL(public, nil)
		l := ownerLogin
		l.Deny = true
		back, err := l.Run(context.Background(), r.url)
		if err != nil {
			t.Fatal(err)
		}
		if q := back.Query(); q.Get("error") != "access_denied" || q.Get("state") != r.state || q.Get("iss") != h.issuer || q.Get("code") != "" {
			t.Errorf("denied: %s", back)
		}
	})

	t.Run("scopes are narrowed to what the user holds", func(t *testing.T) {
		password := freshPassword(sec)
		owner.CreateUser(t, "oauth-viewer@example.com", password, "viewer")
		r := h.authorizeURL(public, map[string]string{"scope": "users:read users:write"})
		_, m, _ := h.exchange(public, h.code(public, r, &mcptest.FormLogin{Identifier: "oauth-viewer@example.com", Password: password}), r.verifier, false)
		if m["scope"] != "" || m["access_token"] == nil {
			t.Errorf("a viewer asking for users:read users:write got %v, want a token with no scope", m)
		}
		if access, _ := m["access_token"].(string); access != "" && h.call(access, "user_list") != http.StatusForbidden {
			t.Errorf("the viewer's token calls user_list")
		}
	})

	t.Run("a user with MFA gives the code after the password", func(t *testing.T) {
		password := freshPassword(sec)
		_, _, en, _, step := mfaUser(t, srv, owner, sec, "oauth-mfa@example.com", password)
		calls := 0
		l := mcptest.FormLogin{Identifier: "oauth-mfa@example.com", Password: password, SecondFactor: func() string {
			calls++
			return totpCode(t, en.Secret, max(step+1, totpStep(time.Now())))
		}}
		r := h.authorizeURL(public, nil)
		h.code(public, r, &l)
		if calls != 1 || !slices.Equal(l.Pages, []string{"/authorize/login", "/authorize/mfa", "/authorize/consent"}) {
			t.Errorf("pages %v, second factor asked %d times", l.Pages, calls)
		}
	})

	t.Run("registration refuses unsafe redirect URIs and accepts real clients' shapes", func(t *testing.T) {
		for _, uri := range []string{"javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "https://app.example/cb#frag", "http://app.example/cb"} {
			if status, m := h.register(map[string]any{"redirect_uris": []string{uri}}); status != http.StatusBadRequest || m["error"] != "invalid_redirect_uri" {
				t.Errorf("register %s: %d %v", uri, status, m)
			}
		}
		for name, uris := range map[string][]string{
			"claude.ai": {"https://claude.ai/api/mcp/auth_callback"},
			"VS Code":   {"http://127.0.0.1:33418", "https://vscode.dev/redirect", "http://localhost:33418", "https://insiders.vscode.dev/redirect"},
			"Cursor":    {"cursor://anysphere.cursor-mcp/oauth/callback"},
		} {
			meta := map[string]any{"redirect_uris": uris, "client_name": name, "token_endpoint_auth_method": "none",
				"software_statement_unknown_member": "ignored"}
			if status, m := h.register(meta); status != http.StatusCreated || m["client_id"] == "" {
				t.Errorf("register %s: %d %v", name, status, m)
			}
		}
	})
	// Every endpoint is counted, by endpoint and status; nothing a request chose is a label.
	resp, err := http.Get(srv.MetricsURL)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`mcpauth_oauth_requests_total{endpoint="token"`, `endpoint="authorize"`, `endpoint="register"`,
		`endpoint="introspect"`, `mcpauth_oauth_request_duration_seconds_bucket{endpoint="token"`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(metrics), public.id) {
		t.Errorf("a client id is a metric label")
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
	sec.CheckNotIn(t, "metrics", string(metrics))
}

// between is the text of s after the first start, up to end.
func between(s, start, end string) string {
	_, rest, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(rest, end)
	return v
}

func toStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// Clients registered ahead of time with `mcpauth client add` (for clients that do not register
// themselves, or with --oauth-registration off): a confidential one signs a user in with its
// secret; a deleted one is unknown; bad input changes nothing.
func TestShouldServeClientsAddedFromTheCommandLine(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	run := func(args ...string) (int, string, string) {
		t.Helper()
		return runBinary(t, in.Env(), "", startTimeout, append([]string{"client"}, args...)...)
	}
	for name, args := range map[string][]string{
		"a javascript: redirect URI": {"add", "--name", "Bad", "--redirect-uri", "javascript:alert(1)"},
		"no redirect URI":            {"add", "--name", "Bad"},
		"an id that is a URL":        {"add", "--name", "Bad", "--redirect-uri", "https://app.example/cb", "--id", "https://evil.example/x"},
		"mcpauth's own client id":    {"add", "--name", "Bad", "--redirect-uri", "https://app.example/cb", "--id", "mcpauth"},
	} {
		if code, stdout, stderr := run(args...); code != 2 || stdout != "" || stderr == "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2 and a reason", name, code, stdout, stderr)
		}
	}
	code, stdout, stderr := run("add", "--name", "Internal dashboard", "--redirect-uri", "https://dash.example/cb", "--confidential", "--id", "dashboard")
	var added struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if code != 0 || json.Unmarshal([]byte(stdout), &added) != nil || added.ClientID != "dashboard" || added.ClientSecret == "" {
		t.Fatalf("client add: exit %d %s %s", code, stdout, stderr)
	}
	if code, _, stderr := run("add", "--name", "Again", "--redirect-uri", "https://dash.example/cb", "--id", "dashboard"); code == 0 || !strings.Contains(stderr, "dashboard") {
		t.Errorf("adding a taken id: exit %d %s", code, stderr)
	}
	if code, _, stderr := run("add", "--name", "Gone", "--redirect-uri", "https://gone.example/cb", "--id", "gone"); code != 0 {
		t.Fatalf("client add: %s", stderr)
	}
	if code, _, stderr := run("delete", "--id", "gone"); code != 0 {
		t.Fatalf("client delete: %s", stderr)
	}
	sec := &secrets{}
	sec.Add(in.OwnerPassword, added.ClientSecret)
	in.Extra = append(in.Extra, mcptest.OAuthEnv...)
	srv := startHTTP(t, in, "http")
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	dash := asClient{id: added.ClientID, secret: added.ClientSecret, redirect: "https://dash.example/cb"}
	r := h.authorizeURL(dash, map[string]string{"scope": "users:read"})
	code2 := h.code(dash, r, &mcptest.FormLogin{Identifier: in.OwnerEmail, Password: in.OwnerPassword})
	if status, m, _ := h.exchange(dash, code2, r.verifier, true); status != http.StatusOK || m["scope"] != "users:read" {
		t.Errorf("the added client's code: %d %v", status, m)
	}
	if status, _, body := noRedirect(t, h.authorizeURL(asClient{id: "gone", redirect: "https://gone.example/cb"}, nil).url); status != http.StatusBadRequest || !strings.Contains(body, "not registered here") {
		t.Errorf("a deleted client: %d", status)
	}
	sec.CheckNotIn(t, "server stderr", srv.Stderr.String())
}

// Registration is open to strangers, so it is bounded per client address: 20 a minute from one
// address, then 429 with Retry-After, while another address still registers.
func TestShouldBoundDynamicRegistrationsPerAddress(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.Extra = append(in.Extra, mcptest.OAuthEnv...)
	srv := startHTTP(t, in, "http")
	from := func(ip string) *http.Client {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}).DialContext
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	register := func(c *http.Client) *http.Response {
		t.Helper()
		resp, err := c.Post(srv.URL+"/register", "application/json",
			strings.NewReader(`{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	stranger, other := from("127.0.0.3"), from("127.0.0.4")
	created := 0
	var refused *http.Response
	for range 25 {
		resp := register(stranger)
		if resp.StatusCode == http.StatusCreated {
			created++
			continue
		}
		refused = resp
		break
	}
	if created != 20 || refused == nil || refused.StatusCode != http.StatusTooManyRequests || refused.Header.Get("Retry-After") == "" {
		t.Fatalf("one address registered %d clients, then %v; want 20, then 429 with Retry-After", created, refused)
	}
	if resp := register(other); resp.StatusCode != http.StatusCreated {
		t.Errorf("another address: %d, want 201", resp.StatusCode)
	}
}

// sweptLine is the log line of a sweep that deleted unused clients.
var sweptLine = regexp.MustCompile(`msg="oauth store swept".* unused_clients=([1-9][0-9]*)`)

// Registration is open to strangers, so what they register must not stay: a dynamically
// registered client that never redeems a code is deleted once --oauth-unused-client-ttl has
// passed, while one that signed someone in stays and goes on refreshing.
func TestShouldSweepRegistrationsLeftUnusedAndKeepTheClientsInUse(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.Extra = append(in.Extra, mcptest.OAuthEnv...)
	// 5 s: time enough for the used client's sign-in, however loaded the machine.
	in.Extra = append(in.Extra, "MCPAUTH_OAUTH_UNUSED_CLIENT_TTL=5s", "MCPAUTH_OAUTH_SWEEP_INTERVAL=250ms")
	srv := startHTTP(t, in, "http")
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	meta := map[string]any{"redirect_uris": []string{"http://127.0.0.1:5555/cb"}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}}
	used := h.mustRegister(meta)
	r := h.authorizeURL(used, nil)
	status, tokens, _ := h.exchange(used, h.code(used, r, &mcptest.FormLogin{Identifier: in.OwnerEmail, Password: in.OwnerPassword}), r.verifier, false)
	if status != http.StatusOK {
		t.Fatalf("redeem: %d %v", status, tokens)
	}
	stranger := h.mustRegister(meta)

	m, err := srv.Proc.Stderr.WaitFor(sweptLine, srv.Proc.Exited, 30*time.Second)
	if err != nil {
		t.Fatalf("no sweep deleted a client: %v\nstderr:\n%s", err, srv.Proc.Stderr)
	}
	if m[1] != "1" {
		t.Errorf("a sweep deleted %s clients, want 1 (the stranger's)", m[1])
	}
	// Deleted: the token endpoint no longer knows it (clients re-register on invalid_client),
	// nor does the authorization endpoint.
	bogus := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {stranger.redirect},
		"code_verifier": {oauth2.GenerateVerifier()}, "client_id": {stranger.id}}
	if status, body, _ := h.post("/token", bogus, nil); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("the swept client at the token endpoint: %d %v, want 401 invalid_client", status, body)
	}
	if status, loc, _ := noRedirect(t, h.authorizeURL(stranger, nil).url); status != http.StatusBadRequest || loc != "" {
		t.Errorf("the swept client at the authorization endpoint: %d %q, want the error page", status, loc)
	}
	// Kept: the client in use refreshes, long after its registration would have been swept.
	status, refreshed, _ := h.post("/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {used.id},
		"refresh_token": {tokens["refresh_token"].(string)}}, nil)
	if status != http.StatusOK || refreshed["access_token"] == nil {
		t.Errorf("refresh by the client in use after the sweep: %d %v", status, refreshed)
	}
}
