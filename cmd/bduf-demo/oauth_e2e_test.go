package main

// The OAuth authorization server end to end, as a fresh install serves it (issuer and
// resource from the listener, nothing anonymous), driven by the official Go SDK's client: its
// AuthorizationCodeHandler discovers the server from the 401, registers (RFC 7591), sends the
// person through the pages (here mcptest.FormLogin, HTTP form posts instead of a browser),
// redeems the code with PKCE and calls guarded tools; a call beyond the granted scopes steps up.
// Then the refresh token, refreshed by golang.org/x/oauth2 as the SDK does (without resource),
// rotates, and its reuse ends the family.

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// authorizations records what each authorization request of a client asked for.
type authorizations struct {
	mu   sync.Mutex
	urls []*url.URL
}

func (a *authorizations) add(u *url.URL) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.urls = append(a.urls, u)
}

func (a *authorizations) all() []*url.URL {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.urls)
}

// sdkFetcher is the Go SDK's code fetcher: the person signs in through the pages.
func sdkFetcher(t *testing.T, login mcptest.FormLogin, seen *authorizations) sdkauth.AuthorizationCodeFetcher {
	return func(ctx context.Context, args *sdkauth.AuthorizationArgs) (*sdkauth.AuthorizationResult, error) {
		u, err := url.Parse(args.URL)
		if err != nil {
			return nil, err
		}
		seen.add(u)
		l := login // a browser of its own per authorization, as a new tab would share cookies; both work
		back, err := l.Run(ctx, args.URL)
		if err != nil {
			return nil, err
		}
		q := back.Query()
		if e := q.Get("error"); e != "" {
			return nil, errors.New("authorization refused: " + e + ": " + q.Get("error_description"))
		}
		return &sdkauth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	}
}

func TestGoSDKLogsInThroughTheAuthorizationServerAndStepsUp(t *testing.T) {
	in := mcptest.NewInstance(t)
	srv := mcptest.StartHTTP(t, binPath, in.Env(mcptest.OAuthEnv...), "http")
	issuer, resource := srv.URL, srv.URL+"/mcp"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// What the client discovers: this server, by the URL it called.
	md := mcptest.GetResourceMetadata(t, srv.URL+"/.well-known/oauth-protected-resource/mcp")
	if md.Resource != resource || !slices.Equal(md.AuthorizationServers, []string{issuer}) {
		t.Fatalf("protected-resource metadata: resource %q, authorization_servers %v; want %q, [%q]", md.Resource, md.AuthorizationServers, resource, issuer)
	}
	if slices.Contains(md.ScopesSupported, "projects:write") || !slices.Contains(md.ScopesSupported, "projects:read") {
		t.Errorf("protected-resource scopes_supported %v: want the minimal (read) set, projects:read but not projects:write", md.ScopesSupported)
	}

	seen := &authorizations{}
	const redirect = "http://127.0.0.1:47123/callback"
	handler, err := sdkauth.NewAuthorizationCodeHandler(&sdkauth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &sdkauth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs: []string{redirect}, ClientName: "Go SDK e2e", TokenEndpointAuthMethod: "none",
			GrantTypes: []string{"authorization_code", "refresh_token"}}},
		RedirectURL:              redirect,
		AuthorizationCodeFetcher: sdkFetcher(t, mcptest.FormLogin{Identifier: in.OwnerEmail, Password: in.OwnerPassword}, seen),
	})
	if err != nil {
		t.Fatal(err)
	}
	client := sdk.NewClient(&sdk.Implementation{Name: "oauth-e2e", Version: "1"}, nil)
	session, err := client.Connect(ctx, &sdk.StreamableClientTransport{Endpoint: resource, OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("connect through the authorization server: %v\nstderr:\n%s", err, srv.Proc.Stderr)
	}
	defer session.Close()
	if n := len(seen.all()); n != 1 {
		t.Fatalf("authorizations at connect: %d, want 1", n)
	}
	first := seen.all()[0].Query()
	if first.Get("resource") != resource || first.Get("code_challenge_method") != "S256" {
		t.Errorf("the SDK's authorization request: resource %q, method %q", first.Get("resource"), first.Get("code_challenge_method"))
	}

	// The token: for this resource, from this issuer, to the registered client, the read scopes.
	ts, err := handler.TokenSource(ctx)
	if err != nil || ts == nil {
		t.Fatalf("token source: %v", err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	claims := mcptest.JWTClaims(t, tok.AccessToken)
	clientID, _ := claims["client_id"].(string)
	if claims["iss"] != issuer || claims["aud"] != resource && !audContains(claims["aud"], resource) || clientID == "" {
		t.Errorf("access token claims iss=%v aud=%v client_id=%v; want %s, %s, the registered client", claims["iss"], claims["aud"], claims["client_id"], issuer, resource)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for a client registered for refresh_token")
	}

	// The tool list shows what the user may step up to; a read works with the first token.
	tools, err := session.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	for _, want := range []string{"projects_list", "projects_create"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}
	res, err := session.CallTool(ctx, &sdk.CallToolParams{Name: "projects_list", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("projects_list: %v %+v", err, res)
	}

	// A write needs projects:write: the 403 names it, the SDK asks again, the call goes through.
	res, err = session.CallTool(ctx, &sdk.CallToolParams{Name: "projects_create", Arguments: map[string]any{"name": "through OAuth"}})
	if err != nil || res.IsError {
		t.Fatalf("projects_create after step-up: %v %+v", err, res)
	}
	all := seen.all()
	if len(all) != 2 {
		t.Fatalf("authorizations: %d, want 2 (connect, step-up)", len(all))
	}
	if scopes := strings.Fields(all[1].Query().Get("scope")); !slices.Contains(scopes, "projects:write") || !slices.Contains(scopes, "projects:read") {
		t.Errorf("step-up request scope %v: want projects:write with what was granted before", scopes)
	}

	// Refresh as x/oauth2 does it (no resource): a new pair; the old refresh token is spent,
	// and presenting it again ends the family, the new access token with it.
	ts, _ = handler.TokenSource(ctx)
	tok, _ = ts.Token()
	clientID, _ = mcptest.JWTClaims(t, tok.AccessToken)["client_id"].(string) // the SDK registers again for a step-up
	conf := &oauth2.Config{ClientID: clientID, Endpoint: oauth2.Endpoint{TokenURL: issuer + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	fresh, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v\nstderr:\n%s", err, srv.Proc.Stderr)
	}
	if fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken || fresh.AccessToken == tok.AccessToken {
		t.Fatal("refresh did not rotate the pair")
	}
	if got := mcptest.JWTClaims(t, fresh.AccessToken)["scope"]; !strings.Contains(got.(string), "projects:write") {
		t.Errorf("refreshed scope %q: want the grant's, projects:write included", got)
	}
	// The stateless protocol: one request, no session to open first.
	listBody := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"projects_list","arguments":{},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},` +
		`"io.modelcontextprotocol/clientInfo":{"name":"e2e","version":"1"}}}}`
	modern := []string{"MCP-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", "projects_list"}
	if r := mcptest.Post(t, resource, fresh.AccessToken, listBody, modern...); r.Status != http.StatusOK {
		t.Fatalf("refreshed access token: %d %s", r.Status, r.Body)
	}
	_, err = conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("reused refresh token: %v, want invalid_grant", err)
	}
	if r := mcptest.Post(t, resource, fresh.AccessToken, listBody, modern...); r.Status != http.StatusUnauthorized {
		t.Errorf("access token of a family whose refresh token was reused: %d, want 401", r.Status)
	}
}

func audContains(aud any, want string) bool {
	list, ok := aud.([]any)
	return ok && slices.Contains(list, any(want))
}

// tsOAuthStep is one step of ts-sdk-e2e.mjs's oauth case.
type tsOAuthStep struct {
	Step           string   `json:"step"`
	OK             bool     `json:"ok"`
	Connected      bool     `json:"connected"`
	Authorizations int      `json:"authorizations"`
	Iss            string   `json:"iss"`
	Scope          string   `json:"scope"`
	HasRefresh     bool     `json:"has_refresh"`
	Tools          []string `json:"tools"`
	IsError        bool     `json:"isError"`
	Rotated        bool     `json:"rotated"`
	Raw            string   `json:"-"`
}

func TestTypeScriptSDKLogsInThroughTheAuthorizationServerAndStepsUp(t *testing.T) {
	nc := mcptest.FindNodeClients(t)
	in := mcptest.NewInstance(t)
	srv := mcptest.StartHTTP(t, binPath, in.Env(mcptest.OAuthEnv...), "http")
	r := nc.Run(t, []string{"E2E_URL=" + srv.URL, "E2E_EMAIL=" + in.OwnerEmail, "E2E_PASSWORD=" + in.OwnerPassword}, 2*time.Minute, "ts-sdk-e2e.mjs", "oauth")
	t.Logf("ts-sdk-e2e.mjs oauth (%s):\n%s", r.Took.Round(time.Millisecond), r.Stdout)
	if r.Err != nil {
		t.Fatalf("ts-sdk-e2e.mjs oauth: %v\n%s%s", r.Err, r.Stdout, r.Stderr)
	}
	steps := map[string]tsOAuthStep{}
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var s tsOAuthStep
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		s.Raw = line
		steps[s.Step] = s
	}
	ok := func(name string) tsOAuthStep {
		t.Helper()
		s, found := steps[name]
		if !found || !s.OK {
			t.Fatalf("step %s: %s\nstderr:\n%s", name, s.Raw, srv.Proc.Stderr)
		}
		return s
	}
	if s := ok("connect_unauthorized"); s.Connected || s.Authorizations != 1 || s.Iss != srv.URL {
		t.Errorf("the first connect: %s; want a 401, one authorization, iss %s", s.Raw, srv.URL)
	}
	if s := ok("finish_auth"); !s.HasRefresh || !strings.Contains(s.Scope, "projects:read") || strings.Contains(s.Scope, "projects:write") {
		t.Errorf("the code's tokens: %s; want the minimal scopes and a refresh token", s.Raw)
	}
	ok("connect")
	if s := ok("list_tools"); !slices.Contains(s.Tools, "projects_create") {
		t.Errorf("tools/list: %v", s.Tools)
	}
	if s := ok("call_read"); s.IsError {
		t.Errorf("projects_list: %s", s.Raw)
	}
	if s := ok("refresh"); s.IsError || !s.Rotated || s.Authorizations != 1 {
		t.Errorf("refresh: %s; want the call through a rotated refresh token, no new sign-in", s.Raw)
	}
	if s := ok("stepup_connect_unauthorized"); s.Connected || s.Authorizations != 1 || s.HasRefresh {
		t.Errorf("the step-up client's first connect: %s; want one authorization and no refresh token (it did not register for one)", s.Raw)
	}
	ok("stepup_connect")
	if s := ok("call_write"); s.IsError || s.Authorizations != 2 || !strings.Contains(s.Scope, "projects:write") {
		t.Errorf("projects_create by step-up: %s; want success after a second authorization granting projects:write", s.Raw)
	}
}

// A client that names itself by a metadata document URL, shaped as Claude Code's (port-less
// loopback redirect URIs, used with a port of the moment), served by a local TLS host the
// server is told to trust (MCPAUTH_OAUTH_CIMD_TEST_CA: loopback listeners only).
func TestGoSDKLogsInWithAClientIDMetadataDocument(t *testing.T) {
	var fetched atomic.Int32
	doc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched.Add(1)
		id := "https://" + r.Host + r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		_ = json.NewEncoder(w).Encode(map[string]any{"client_id": id, "client_name": "Claude Code (e2e)",
			"redirect_uris": []string{"http://localhost/callback", "http://127.0.0.1/callback"},
			"grant_types":   []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
			"token_endpoint_auth_method": "none"})
	}))
	defer doc.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: doc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	in := mcptest.NewInstance(t)
	srv := mcptest.StartHTTP(t, binPath, in.Env(append(slices.Clone(mcptest.OAuthEnv), "MCPAUTH_OAUTH_CIMD_TEST_CA="+caFile)...), "http")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	clientID := doc.URL + "/oauth/claude-code-client-metadata"
	seen := &authorizations{}
	handler, err := sdkauth.NewAuthorizationCodeHandler(&sdkauth.AuthorizationCodeHandlerConfig{
		ClientIDMetadataDocumentConfig: &sdkauth.ClientIDMetadataDocumentConfig{URL: clientID},
		RedirectURL:                    "http://127.0.0.1:51234/callback", // the port of this run
		AuthorizationCodeFetcher:       sdkFetcher(t, mcptest.FormLogin{Identifier: in.OwnerEmail, Password: in.OwnerPassword}, seen),
	})
	if err != nil {
		t.Fatal(err)
	}
	session, err := sdk.NewClient(&sdk.Implementation{Name: "cimd-e2e", Version: "1"}, nil).
		Connect(ctx, &sdk.StreamableClientTransport{Endpoint: srv.URL + "/mcp", OAuthHandler: handler}, nil)
	if err != nil {
		t.Fatalf("connect with a metadata document: %v\nstderr:\n%s", err, srv.Proc.Stderr)
	}
	defer session.Close()
	if got := seen.all()[0].Query().Get("client_id"); got != clientID {
		t.Errorf("the authorization request's client_id %q, want the document URL", got)
	}
	if res, err := session.CallTool(ctx, &sdk.CallToolParams{Name: "projects_list", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("projects_list: %v %+v", err, res)
	}
	ts, _ := handler.TokenSource(ctx)
	tok, _ := ts.Token()
	if got := mcptest.JWTClaims(t, tok.AccessToken)["client_id"]; got != clientID {
		t.Errorf("the token's client_id %v, want the document URL", got)
	}
	if n := fetched.Load(); n != 1 {
		t.Errorf("the document was fetched %d times for one sign-in (authorize and token), want 1 (kept per its max-age)", n)
	}
}

// The official conformance suite's authorization-server scenarios (npm
// @modelcontextprotocol/conformance): the metadata, then the authorization code grant, whose
// browser step is mcptest.FormLogin on the URL the suite prints, the redirect then delivered to
// the suite's own callback listener.
func TestShouldPassTheConformanceSuitesAuthorizationServerScenarios(t *testing.T) {
	nc := mcptest.FindNodeClients(t)
	in := mcptest.NewInstance(t)
	srv := mcptest.StartHTTP(t, binPath, in.Env(mcptest.OAuthEnv...), "http")
	l, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the suite's callback listener
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(l.Addr().String())
	l.Close()
	// The suite takes a pre-registered client: registered here, public, as it asks.
	reg, _ := json.Marshal(map[string]any{"redirect_uris": []string{"http://127.0.0.1:" + port + "/callback"},
		"token_endpoint_auth_method": "none", "client_name": "MCP conformance suite"})
	resp, err := http.Post(srv.URL+"/register", "application/json", strings.NewReader(string(reg)))
	if err != nil {
		t.Fatal(err)
	}
	var client struct {
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&client)
	resp.Body.Close()
	if client.ClientID == "" {
		t.Fatalf("register: %d", resp.StatusCode)
	}

	suite := mcptest.StartProc(t, nc.Node, append(in.Env(), "PATH="+filepath.Dir(nc.Node)+string(os.PathListSeparator)+os.Getenv("PATH"), "NO_COLOR=1"), nil,
		filepath.Join(nc.Dir, "node_modules", ".bin", "conformance"), "authorization", "--url", srv.URL,
		"--client-id", client.ClientID, "--port", port, "--resource", srv.URL+"/mcp")
	m, err := suite.Stdout.WaitFor(regexp.MustCompile(`(?m)^(`+regexp.QuoteMeta(srv.URL)+`/authorize\?\S+)$`), suite.Exited, 60*time.Second)
	if err != nil {
		t.Fatalf("the suite printed no authorization URL: %v\n%s\n%s", err, suite.Stdout, suite.Stderr)
	}
	login := mcptest.FormLogin{Identifier: in.OwnerEmail, Password: in.OwnerPassword}
	back, err := login.Run(context.Background(), m[1])
	if err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	// The suite prints the URL before its callback listener is up: wait for the listener.
	if _, err := suite.Stdout.WaitFor(regexp.MustCompile(`Callback server started`), suite.Exited, 60*time.Second); err != nil {
		t.Fatalf("the suite's callback listener did not start: %v\n%s\n%s", err, suite.Stdout, suite.Stderr)
	}
	cb, err := http.Get(back.String()) // the browser lands on the suite's callback
	if err != nil {
		t.Fatalf("deliver the redirect to the suite: %v", err)
	}
	cb.Body.Close()
	select {
	case <-suite.Exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("the suite did not finish:\n%s", suite.Stdout)
	}
	out := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(suite.Stdout.String(), "")
	t.Logf("conformance authorization:\n%s", out)
	res := regexp.MustCompile(`Total: (\d+) passed, (\d+) failed`).FindStringSubmatch(out)
	if res == nil || res[2] != "0" || res[1] != "3" {
		t.Fatalf("conformance authorization: %v; want 3 checks passed, none failed\n%s", res, out)
	}
	for _, scenario := range []string{"authorization-server-metadata-endpoint", "authorization-code-grant"} {
		if !regexp.MustCompile(`✓ ` + regexp.QuoteMeta(scenario) + `: \d+ passed, 0 failed`).MatchString(out) {
			t.Errorf("scenario %s did not pass", scenario)
		}
	}
}

// mcp-remote (npm 0.15.1), the bridge Claude Desktop and others use for remote servers: its
// mcp-remote-client registers, prints the authorization URL (here signed in through with
// mcptest.FormLogin, the redirect then delivered to its callback listener), and lists the tools.
func TestShouldLetMCPRemoteSignInAndListTheTools(t *testing.T) {
	nc := mcptest.FindNodeClients(t)
	in := mcptest.NewInstance(t)
	srv := mcptest.StartHTTP(t, binPath, in.Env(mcptest.OAuthEnv...), "http")
	home := t.TempDir()               // mcp-remote keeps its clients and tokens under ~/.mcp-auth
	stdin, keepOpen, err := os.Pipe() // mcp-remote shuts down when its stdin ends: it gets one that stays open
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = stdin.Close(), keepOpen.Close() })
	remote := mcptest.StartProc(t, nc.Node, append(in.Env(), "HOME="+home, "BROWSER=/bin/true", "NO_COLOR=1",
		"PATH="+filepath.Dir(nc.Node)+string(os.PathListSeparator)+os.Getenv("PATH")), stdin,
		filepath.Join(nc.Dir, "node_modules", ".bin", "mcp-remote-client"), srv.URL+"/mcp")
	m, err := remote.Stderr.WaitFor(regexp.MustCompile(`Please authorize this client by visiting:\s+(\S+)`), remote.Exited, 60*time.Second)
	if err != nil {
		t.Fatalf("mcp-remote printed no authorization URL: %v\n%s", err, remote.Stderr)
	}
	login := mcptest.FormLogin{Identifier: in.OwnerEmail, Password: in.OwnerPassword}
	back, err := login.Run(context.Background(), m[1])
	if err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	if back.Query().Get("code") == "" || back.Query().Get("iss") != srv.URL {
		t.Fatalf("redirect %s: want a code and iss", back)
	}
	cb, err := http.Get(back.String()) // the browser lands on mcp-remote's callback listener
	if err != nil {
		t.Fatalf("deliver the redirect to mcp-remote: %v", err)
	}
	cb.Body.Close()
	if _, err := remote.Stderr.WaitFor(regexp.MustCompile(`(?s)Tools:.*"projects_create".*Exiting OK`), remote.Exited, 60*time.Second); err != nil {
		t.Fatalf("mcp-remote did not list the tools: %v\nstdout:\n%s\nstderr:\n%s", err, remote.Stdout, remote.Stderr)
	}
}

// mcp-go's OAuth client (v1.2.1, what mcpauth's own server is built on): a 401 at initialize
// hands the application the OAuthHandler, which registers (RFC 7591, with the extra resource
// member mcp-go sends), builds the authorization URL with PKCE, redeems the code; the client
// then initializes and calls a guarded tool, and refreshes (with resource, as mcp-go does).
func TestMCPGoOAuthClientSignsInAndRefreshes(t *testing.T) {
	in := mcptest.NewInstance(t)
	srv := mcptest.StartHTTP(t, binPath, in.Env(mcptest.OAuthEnv...), "http")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store := mcpclient.NewMemoryTokenStore()
	c, err := mcpclient.NewOAuthStreamableHttpClient(srv.URL+"/mcp", mcpclient.OAuthConfig{
		RedirectURI: "http://127.0.0.1:8085/oauth/callback", Scopes: []string{"projects:read"},
		TokenStore: store, PKCEEnabled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	initialize := func() error {
		_, err := c.Initialize(ctx, mcpgo.InitializeRequest{Params: mcpgo.InitializeParams{ProtocolVersion: mcpgo.LATEST_PROTOCOL_VERSION,
			ClientInfo: mcpgo.Implementation{Name: "mcp-go-oauth-e2e", Version: "1"}}})
		return err
	}
	err = initialize()
	if !mcpclient.IsOAuthAuthorizationRequiredError(err) {
		t.Fatalf("first initialize: %v, want mcp-go's OAuth authorization required", err)
	}
	h := mcpclient.GetOAuthHandler(err)
	if err := h.RegisterClient(ctx, "mcp-go e2e"); err != nil {
		t.Fatalf("register: %v", err)
	}
	verifier, err := mcpclient.GenerateCodeVerifier()
	if err != nil {
		t.Fatal(err)
	}
	state, err := mcpclient.GenerateState()
	if err != nil {
		t.Fatal(err)
	}
	authURL, err := h.GetAuthorizationURL(ctx, state, mcpclient.GenerateCodeChallenge(verifier))
	if err != nil {
		t.Fatal(err)
	}
	login := mcptest.FormLogin{Identifier: in.OwnerEmail, Password: in.OwnerPassword}
	back, err := login.Run(ctx, authURL)
	if err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	if back.Query().Get("state") != state || back.Query().Get("iss") != srv.URL {
		t.Fatalf("redirect %s", back)
	}
	if err := h.ProcessAuthorizationResponse(ctx, back.Query().Get("code"), state, verifier); err != nil {
		t.Fatalf("redeem: %v", err)
	}
	if err := initialize(); err != nil {
		t.Fatalf("initialize with the token: %v", err)
	}
	res, err := c.CallTool(ctx, mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: "projects_list", Arguments: map[string]any{}}})
	if err != nil || res.IsError {
		t.Fatalf("projects_list: %v %+v", err, res)
	}
	tok, err := store.GetToken(ctx)
	if err != nil || tok.RefreshToken == "" || tok.Scope != "projects:read" {
		t.Fatalf("stored token: %v %+v", err, tok)
	}
	fresh, err := h.RefreshToken(ctx, tok.RefreshToken)
	if err != nil || fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %v; want a new pair", err)
	}
	if res, err := c.CallTool(ctx, mcpgo.CallToolRequest{Params: mcpgo.CallToolParams{Name: "projects_list", Arguments: map[string]any{}}}); err != nil || res.IsError {
		t.Fatalf("projects_list after the refresh: %v %+v", err, res)
	}
}
