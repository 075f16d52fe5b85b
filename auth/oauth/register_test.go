package oauth_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth/oauth"
)

func TestShouldAcceptTheRegistrationsRealClientsSend(t *testing.T) {
	tests := []struct {
		name string
		body string
		want oauth.Registration
	}{
		{
			name: "claude.ai registers a public web client",
			body: `{"client_name":"Claude","redirect_uris":["https://claude.ai/api/mcp/auth_callback"],
				"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
				"token_endpoint_auth_method":"none"}`,
			want: oauth.Registration{
				RedirectURIs: claudeWeb, ClientName: "Claude",
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "none", ApplicationType: "web",
			},
		},
		{
			name: "VS Code registers web and loopback redirects, so it is a web client",
			body: `{"client_name":"Visual Studio Code","redirect_uris":["https://insiders.vscode.dev/redirect",
				"https://vscode.dev/redirect","http://127.0.0.1/","http://127.0.0.1:33418/"],
				"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`,
			want: oauth.Registration{
				RedirectURIs: vscode, ClientName: "Visual Studio Code",
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "none", ApplicationType: "web",
			},
		},
		{
			name: "mcp-remote registers a loopback redirect with a software_id and a scope",
			body: `{"redirect_uris":["http://localhost:3334/oauth/callback"],"token_endpoint_auth_method":"none",
				"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
				"client_name":"MCP CLI Proxy","client_uri":"https://github.com/modelcontextprotocol/mcp-cli",
				"software_id":"2e6dc280-f3c3-4e01-99a7-8181dbd1d23d","software_version":"0.1.38",
				"scope":"openid email profile"}`,
			want: oauth.Registration{
				RedirectURIs: mcpRemote, ClientName: "MCP CLI Proxy",
				ClientURI:     "https://github.com/modelcontextprotocol/mcp-cli",
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "none", ApplicationType: "native",
				Scope: "openid email profile",
			},
		},
		{
			name: "mcp-go sends a non-standard resource member, which is ignored",
			body: `{"client_name":"mcp-go","redirect_uris":["http://localhost:8085/oauth/callback"],
				"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],
				"response_types":["code"],"resource":"https://mcp.example.com/mcp"}`,
			want: oauth.Registration{
				RedirectURIs: []string{"http://localhost:8085/oauth/callback"}, ClientName: "mcp-go",
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "none", ApplicationType: "native",
			},
		},
		{
			name: "Cursor registers a private-use scheme, so it is a native client",
			body: `{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback"],
				"token_endpoint_auth_method":"none"}`,
			want: oauth.Registration{
				RedirectURIs: cursor, ClientName: "Cursor",
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "none", ApplicationType: "native",
			},
		},
		{
			name: "the TypeScript SDK sends an explicit application_type",
			body: `{"redirect_uris":["http://localhost:6274/oauth/callback"],"application_type":"native",
				"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`,
			want: oauth.Registration{
				RedirectURIs:  []string{"http://localhost:6274/oauth/callback"},
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "none", ApplicationType: "native",
			},
		},
		{
			name: "the bare minimum gets RFC 7591's defaults",
			body: `{"redirect_uris":["https://app.example.com/cb"]}`,
			want: oauth.Registration{
				RedirectURIs:  []string{"https://app.example.com/cb"},
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "client_secret_basic", ApplicationType: "web",
			},
		},
		{
			name: "a confidential client posting its secret, authorization_code only",
			body: `{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"client_secret_post",
				"grant_types":["authorization_code"]}`,
			want: oauth.Registration{
				RedirectURIs: []string{"https://app.example.com/cb"}, GrantTypes: []string{"authorization_code"},
				ResponseTypes: []string{"code"}, AuthMethod: "client_secret_post", ApplicationType: "web",
			},
		},
		{
			name: "web given with a loopback redirect is kept as given",
			body: `{"redirect_uris":["http://127.0.0.1/cb"],"application_type":"web"}`,
			want: oauth.Registration{
				RedirectURIs:  []string{"http://127.0.0.1/cb"},
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "client_secret_basic", ApplicationType: "web",
			},
		},
		{
			name: "native given with only https redirects is kept as given",
			body: `{"redirect_uris":["https://app.example.com/cb"],"application_type":"native"}`,
			want: oauth.Registration{
				RedirectURIs:  []string{"https://app.example.com/cb"},
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "client_secret_basic", ApplicationType: "native",
			},
		},
		{
			name: "null members count as absent",
			body: `{"redirect_uris":["https://app.example.com/cb"],"client_name":null,"grant_types":null,
				"response_types":null,"token_endpoint_auth_method":null,"scope":null}`,
			want: oauth.Registration{
				RedirectURIs:  []string{"https://app.example.com/cb"},
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "client_secret_basic", ApplicationType: "web",
			},
		},
		{
			name: "repeated redirect URIs and grant types are kept once, stray scope spaces dropped",
			body: `{"redirect_uris":["https://a.example/cb","https://a.example/cb"],
				"grant_types":["refresh_token","authorization_code","refresh_token"],"scope":" read  write "}`,
			want: oauth.Registration{
				RedirectURIs:  []string{"https://a.example/cb"},
				GrantTypes:    []string{"refresh_token", "authorization_code"},
				ResponseTypes: []string{"code"}, AuthMethod: "client_secret_basic", ApplicationType: "web",
				Scope: "read write",
			},
		},
		{
			name: "a client name of exactly 200 bytes with non-ASCII letters",
			body: `{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("é", 100) + `"}`,
			want: oauth.Registration{
				RedirectURIs: []string{"https://a.example/cb"}, ClientName: strings.Repeat("é", 100),
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "client_secret_basic", ApplicationType: "web",
			},
		},
		{
			name: "sixteen redirect URIs",
			body: `{"redirect_uris":[` + strings.TrimSuffix(strings.Repeat(`"http://127.0.0.1/cb",`, 15), ",") +
				`,"http://localhost/cb"]}`,
			want: oauth.Registration{
				RedirectURIs:  []string{"http://127.0.0.1/cb", "http://localhost/cb"},
				GrantTypes:    []string{"authorization_code", "refresh_token"},
				ResponseTypes: []string{"code"}, AuthMethod: "client_secret_basic", ApplicationType: "native",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := oauth.ParseRegistration([]byte(tt.body))
			if err != nil {
				t.Fatalf("ParseRegistration = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseRegistration =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestShouldRefuseBadRegistrations(t *testing.T) {
	const ok = `"redirect_uris":["https://app.example.com/cb"]`
	tests := []struct {
		name string
		body string
		code string
		says string // words the description must contain
	}{
		{"no redirect URIs", `{"client_name":"x"}`, oauth.ErrCodeInvalidRedirectURI, "redirect_uris is required"},
		{"an empty redirect URI list", `{"redirect_uris":[]}`, oauth.ErrCodeInvalidRedirectURI, "redirect_uris is required"},
		{"seventeen redirect URIs", `{"redirect_uris":[` + strings.TrimSuffix(strings.Repeat(`"http://127.0.0.1/cb",`, 17), ",") + `]}`, oauth.ErrCodeInvalidRedirectURI, "at most 16"},
		{"a javascript redirect URI", `{"redirect_uris":["javascript:alert(1)"]}`, oauth.ErrCodeInvalidRedirectURI, "redirect_uris[0]: redirect URI scheme javascript is not allowed"},
		{"a data redirect URI", `{"redirect_uris":["data:text/html;base64,PHNjcmlwdD4="]}`, oauth.ErrCodeInvalidRedirectURI, "data"},
		{"a file redirect URI", `{"redirect_uris":["file:///etc/passwd"]}`, oauth.ErrCodeInvalidRedirectURI, "file"},
		{"plain http to a remote host", `{"redirect_uris":["https://ok.example/cb","http://example.com/cb"]}`, oauth.ErrCodeInvalidRedirectURI, "redirect_uris[1]: http redirect URI is allowed only for a loopback host"},
		{"a redirect URI with a fragment", `{"redirect_uris":["https://claude.ai/api/mcp/auth_callback#x"]}`, oauth.ErrCodeInvalidRedirectURI, "fragment"},
		{"a redirect URI with user information", `{"redirect_uris":["http://localhost@evil.com/"]}`, oauth.ErrCodeInvalidRedirectURI, "user information"},
		{"an empty redirect URI", `{"redirect_uris":[""]}`, oauth.ErrCodeInvalidRedirectURI, "empty"},
		{"a null redirect URI", `{"redirect_uris":[null]}`, oauth.ErrCodeInvalidRedirectURI, "empty"},
		{"redirect_uris as a string", `{"redirect_uris":"https://app.example.com/cb"}`, oauth.ErrCodeInvalidClientMetadata, "redirect_uris must be an array of strings"},
		{"a redirect URI as a number", `{"redirect_uris":[1]}`, oauth.ErrCodeInvalidClientMetadata, "redirect_uris must be an array of strings"},
		{"client_name as a number", `{` + ok + `,"client_name":5}`, oauth.ErrCodeInvalidClientMetadata, "client_name must be a string"},
		{"client_uri as an object", `{` + ok + `,"client_uri":{}}`, oauth.ErrCodeInvalidClientMetadata, "client_uri must be a string"},
		{"grant_types as a string", `{` + ok + `,"grant_types":"authorization_code"}`, oauth.ErrCodeInvalidClientMetadata, "grant_types must be an array of strings"},
		{"response_types as a string", `{` + ok + `,"response_types":"code"}`, oauth.ErrCodeInvalidClientMetadata, "response_types must be an array of strings"},
		{"token_endpoint_auth_method as a boolean", `{` + ok + `,"token_endpoint_auth_method":true}`, oauth.ErrCodeInvalidClientMetadata, "token_endpoint_auth_method must be a string"},
		{"application_type as an array", `{` + ok + `,"application_type":["web"]}`, oauth.ErrCodeInvalidClientMetadata, "application_type must be a string"},
		{"scope as an array", `{` + ok + `,"scope":["read"]}`, oauth.ErrCodeInvalidClientMetadata, "scope must be a string"},
		{"a client name longer than 200 bytes", `{` + ok + `,"client_name":"` + strings.Repeat("a", 201) + `"}`, oauth.ErrCodeInvalidClientMetadata, "client_name is longer than 200 bytes"},
		{"a client name with a newline", `{` + ok + `,"client_name":"Claude\nby evil"}`, oauth.ErrCodeInvalidClientMetadata, "client_name must not contain control characters"},
		{"a client name with a NUL", `{` + ok + `,"client_name":"Claude\u0000"}`, oauth.ErrCodeInvalidClientMetadata, "control characters"},
		{"a client name with a C1 control", `{` + ok + `,"client_name":"Claude\u0085"}`, oauth.ErrCodeInvalidClientMetadata, "control characters"},
		{"a client name with a right-to-left override", `{` + ok + `,"client_name":"\u202eedualC"}`, oauth.ErrCodeInvalidClientMetadata, "control characters"},
		{"an http client_uri", `{` + ok + `,"client_uri":"http://example.com"}`, oauth.ErrCodeInvalidClientMetadata, "client_uri must be an https URL"},
		{"a javascript client_uri", `{` + ok + `,"client_uri":"javascript:alert(1)"}`, oauth.ErrCodeInvalidClientMetadata, "client_uri"},
		{"a client_uri with user information", `{` + ok + `,"client_uri":"https://claude.ai@evil.com/"}`, oauth.ErrCodeInvalidClientMetadata, "client_uri"},
		{"a client_uri without a host", `{` + ok + `,"client_uri":"https:///x"}`, oauth.ErrCodeInvalidClientMetadata, "client_uri"},
		{"the implicit grant", `{` + ok + `,"grant_types":["authorization_code","implicit"]}`, oauth.ErrCodeInvalidClientMetadata, "grant_types may hold only"},
		{"client credentials", `{` + ok + `,"grant_types":["client_credentials"]}`, oauth.ErrCodeInvalidClientMetadata, "grant_types may hold only"},
		{"refresh_token without authorization_code", `{` + ok + `,"grant_types":["refresh_token"]}`, oauth.ErrCodeInvalidClientMetadata, "must include authorization_code"},
		{"an empty grant type list", `{` + ok + `,"grant_types":[]}`, oauth.ErrCodeInvalidClientMetadata, "must include authorization_code"},
		{"the token response type", `{` + ok + `,"response_types":["code","token"]}`, oauth.ErrCodeInvalidClientMetadata, "response_types may hold only code"},
		{"an empty response type list", `{` + ok + `,"response_types":[]}`, oauth.ErrCodeInvalidClientMetadata, "response_types may hold only code"},
		{"private_key_jwt", `{` + ok + `,"token_endpoint_auth_method":"private_key_jwt"}`, oauth.ErrCodeInvalidClientMetadata, "token_endpoint_auth_method must be"},
		{"an auth method in another case", `{` + ok + `,"token_endpoint_auth_method":"None"}`, oauth.ErrCodeInvalidClientMetadata, "token_endpoint_auth_method must be"},
		{"an unknown application type", `{` + ok + `,"application_type":"browser"}`, oauth.ErrCodeInvalidClientMetadata, "application_type must be native or web"},
		{"a scope longer than 1000 bytes", `{` + ok + `,"scope":"` + strings.Repeat("a", 1001) + `"}`, oauth.ErrCodeInvalidClientMetadata, "scope is longer than 1000 bytes"},
		{"a scope with a tab", `{` + ok + `,"scope":"read\twrite"}`, oauth.ErrCodeInvalidClientMetadata, "scope must be space-separated"},
		{"a scope with a quote", `{` + ok + `,"scope":"read \"write\""}`, oauth.ErrCodeInvalidClientMetadata, "scope must be space-separated"},
		{"a duplicate member", `{` + ok + `,` + ok + `}`, oauth.ErrCodeInvalidClientMetadata, "names a member twice"},
		{"a duplicate member spelled with an escape", `{` + ok + `,"redirect\u005furis":["https://evil.example/cb"]}`, oauth.ErrCodeInvalidClientMetadata, "names a member twice"},
		{"a duplicate member inside an ignored one", `{` + ok + `,"x":{"a":1,"a":2}}`, oauth.ErrCodeInvalidClientMetadata, "names a member twice"},
		{"a JSON array", `[` + `{` + ok + `}]`, oauth.ErrCodeInvalidClientMetadata, "must be a JSON object"},
		{"a JSON string", `"x"`, oauth.ErrCodeInvalidClientMetadata, "must be a JSON object"},
		{"JSON null", `null`, oauth.ErrCodeInvalidClientMetadata, "must be a JSON object"},
		{"an empty body", ``, oauth.ErrCodeInvalidClientMetadata, "must be a JSON object"},
		{"a form-encoded body", `redirect_uris=https://app.example.com/cb`, oauth.ErrCodeInvalidClientMetadata, "must be a JSON object"},
		{"truncated JSON", `{` + ok, oauth.ErrCodeInvalidClientMetadata, "not valid JSON"},
		{"trailing data after the object", `{` + ok + `} {}`, oauth.ErrCodeInvalidClientMetadata, "not valid JSON"},
		{"invalid UTF-8", "{" + ok + ",\"client_name\":\"\xff\"}", oauth.ErrCodeInvalidClientMetadata, "not valid JSON"},
		{"a body over 16 KiB", `{` + ok + `,"x":"` + strings.Repeat("a", 16<<10) + `"}`, oauth.ErrCodeInvalidClientMetadata, "larger than 16 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := oauth.ParseRegistration([]byte(tt.body))
			var rerr *oauth.RegistrationError
			if !errors.As(err, &rerr) {
				t.Fatalf("ParseRegistration = %v, want a *RegistrationError", err)
			}
			if rerr.Code != tt.code || !strings.Contains(rerr.Description, tt.says) {
				t.Errorf("ParseRegistration = %q / %q, want %q mentioning %q", rerr.Code, rerr.Description, tt.code, tt.says)
			}
			if !strings.HasPrefix(err.Error(), tt.code) {
				t.Errorf("Error() = %q, want it to start with the code", err)
			}
		})
	}
}

func TestShouldNotEchoUnknownMemberNamesInErrors(t *testing.T) {
	_, err := oauth.ParseRegistration([]byte(`{"redirect_uris":["https://a.example/cb"],"<script>":1,"<script>":2}`))
	if err == nil || strings.Contains(err.Error(), "script") {
		t.Fatalf("ParseRegistration = %v, want an error that does not quote the member", err)
	}
}

func TestShouldNotMatchMemberNamesCaseInsensitively(t *testing.T) {
	// "Redirect_URIs" is an unknown member, so the request has no redirect URIs.
	_, err := oauth.ParseRegistration([]byte(`{"Redirect_URIs":["https://a.example/cb"]}`))
	var rerr *oauth.RegistrationError
	if !errors.As(err, &rerr) || rerr.Code != oauth.ErrCodeInvalidRedirectURI {
		t.Fatalf("ParseRegistration = %v, want invalid_redirect_uri", err)
	}
}

func TestShouldAcceptABodyOfExactly16KiB(t *testing.T) {
	head := `{"redirect_uris":["https://a.example/cb"],"x":"`
	body := head + strings.Repeat("a", 16<<10-len(head)-2) + `"}`
	if _, err := oauth.ParseRegistration([]byte(body)); err != nil {
		t.Fatalf("ParseRegistration of %d bytes = %v", len(body), err)
	}
}

func TestShouldBuildADynamicClientFromARegistration(t *testing.T) {
	reg, err := oauth.ParseRegistration([]byte(`{"client_name":"Visual Studio Code","redirect_uris":["https://vscode.dev/redirect","http://127.0.0.1/"],
		"token_endpoint_auth_method":"client_secret_post","client_uri":"https://code.visualstudio.com","scope":"tools:read"}`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)
	got := reg.Client("client-1", "5e884898da28", now)
	want := oauth.Client{
		ID: "client-1", Name: "Visual Studio Code",
		RedirectURIs: []string{"https://vscode.dev/redirect", "http://127.0.0.1/"},
		GrantTypes:   []string{"authorization_code", "refresh_token"},
		AuthMethod:   "client_secret_post", SecretHash: "5e884898da28", ApplicationType: "web",
		Scope: "tools:read", ClientURI: "https://code.visualstudio.com",
		Source: oauth.SourceDynamic, CreatedAt: now, Unused: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Client =\n %+v\nwant\n %+v", got, want)
	}
	if got.Public() {
		t.Error("a client_secret_post client reports itself public")
	}
	// The client owns its slices: changing the registration afterwards leaves it alone.
	reg.RedirectURIs[0] = "https://evil.example/cb"
	reg.GrantTypes[0] = "implicit"
	if got.RedirectURIs[0] != "https://vscode.dev/redirect" || got.GrantTypes[0] != "authorization_code" {
		t.Error("the client shares its slices with the registration")
	}
}

func TestShouldBuildAPublicClientForAuthMethodNone(t *testing.T) {
	reg, err := oauth.ParseRegistration([]byte(`{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback"],"token_endpoint_auth_method":"none"}`))
	if err != nil {
		t.Fatal(err)
	}
	c := reg.Client("client-2", "", time.Unix(0, 0))
	if !c.Public() || c.ApplicationType != "native" || c.Source != oauth.SourceDynamic {
		t.Fatalf("Client = %+v, want a public native dynamic client", c)
	}
}

func FuzzParseRegistration(f *testing.F) {
	f.Add([]byte(`{"redirect_uris":["http://localhost:3334/oauth/callback"],"token_endpoint_auth_method":"none"}`))
	f.Add([]byte(`{"redirect_uris":["https://claude.ai/api/mcp/auth_callback"],"scope":"a b","grant_types":["authorization_code"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		reg, err := oauth.ParseRegistration(body)
		if err != nil {
			var rerr *oauth.RegistrationError
			if !errors.As(err, &rerr) {
				t.Fatalf("ParseRegistration error %v is not a *RegistrationError", err)
			}
			return
		}
		for _, u := range reg.RedirectURIs {
			if _, err := oauth.CheckRedirectURI(u); err != nil {
				t.Fatalf("accepted redirect URI %q: %v", u, err)
			}
		}
	})
}
