package oauth_test

import (
	"strings"
	"testing"

	"github.com/bduf/mcpauth/auth/oauth"
)

func TestShouldAcceptRedirectURIsRealClientsRegister(t *testing.T) {
	tests := []struct {
		name   string
		uri    string
		native bool
	}{
		{"Claude Code's CIMD document lists a port-less localhost callback", "http://localhost/callback", true},
		{"Claude Code's CIMD document lists a port-less 127.0.0.1 callback", "http://127.0.0.1/callback", true},
		{"Claude Code with a pinned callback port", "http://localhost:53123/callback", true},
		{"claude.ai registers its web callback", "https://claude.ai/api/mcp/auth_callback", false},
		{"claude.com may replace claude.ai", "https://claude.com/api/mcp/auth_callback", false},
		{"VS Code Insiders registers its web redirect", "https://insiders.vscode.dev/redirect", false},
		{"VS Code registers its web redirect", "https://vscode.dev/redirect", false},
		{"VS Code registers a port-less loopback root", "http://127.0.0.1/", true},
		{"VS Code registers its fixed loopback port", "http://127.0.0.1:33418/", true},
		{"Cursor registers a private-use scheme with an authority", "cursor://anysphere.cursor-mcp/oauth/callback", true},
		{"a reverse-domain private-use scheme as RFC 8252 shows it", "com.example.app:/oauth2redirect/example-provider", true},
		{"mcp-remote registers localhost on port 3334", "http://localhost:3334/oauth/callback", true},
		{"MCP Inspector's CLI uses 127.0.0.1 on port 6276", "http://127.0.0.1:6276/oauth/callback", true},
		{"Gemini CLI uses localhost on port 7777", "http://localhost:7777/oauth/callback", true},
		{"an IPv6 loopback literal", "http://[::1]:8080/callback", true},
		{"any address in 127.0.0.0/8", "http://127.42.0.7/cb", true},
		{"a query is kept as part of the URI", "https://app.example.com/cb?tenant=a", false},
		{"a percent-encoded path", "https://app.example.com/c%20b", false},
		{"upper-case scheme and localhost are still loopback", "HTTP://LOCALHOST/cb", true},
		{"https on a loopback host is a web redirect", "https://localhost/cb", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			native, err := oauth.CheckRedirectURI(tt.uri)
			if err != nil {
				t.Fatalf("CheckRedirectURI(%q) = %v, want accepted", tt.uri, err)
			}
			if native != tt.native {
				t.Errorf("CheckRedirectURI(%q) native = %v, want %v", tt.uri, native, tt.native)
			}
		})
	}
}

func TestShouldRefuseUnsafeRedirectURIs(t *testing.T) {
	tests := []struct {
		name string
		uri  string
		says string // a word the error must contain
	}{
		{"an empty URI", "", "empty"},
		{"a relative URI", "/callback", "absolute"},
		{"a host without a scheme", "claude.ai/api/mcp/auth_callback", "absolute"},
		{"a fragment", "https://claude.ai/api/mcp/auth_callback#frag", "fragment"},
		{"an empty fragment", "https://claude.ai/api/mcp/auth_callback#", "fragment"},
		{"user information that hides the real host", "http://localhost@evil.com/", "user information"},
		{"user information on https", "https://claude.ai@evil.com/cb", "user information"},
		{"user information on a private-use scheme", "cursor://user@anysphere.cursor-mcp/oauth/callback", "user information"},
		{"a javascript URI", "javascript:alert(1)", "javascript"},
		{"a javascript URI shaped like a hierarchical one", "javascript:///%0aalert(1)", "javascript"},
		{"a javascript URI in upper case", "JavaScript:alert(1)", "javascript"},
		{"a data URI", "data:text/html,<script>alert(1)</script>", "character"},
		{"a data URI without forbidden characters", "data:text/html;base64,PHNjcmlwdD4=", "data"},
		{"a file URI", "file:///etc/passwd", "file"},
		{"a vbscript URI", "vbscript:msgbox(1)", "vbscript"},
		{"about:blank", "about:blank", "about"},
		{"a blob URI", "blob:https://evil.com/uuid", "blob"},
		{"an ftp URI", "ftp://example.com/cb", "ftp"},
		{"a websocket URI", "ws://localhost/cb", "ws"},
		{"a secure websocket URI", "wss://example.com/cb", "wss"},
		{"plain http to a remote host", "http://example.com/cb", "loopback"},
		{"plain http to a host that starts like a loopback address", "http://127.0.0.1.evil.com/cb", "loopback"},
		{"plain http to a host that starts like localhost", "http://localhost.evil.com/cb", "loopback"},
		{"plain http to localhost with a trailing dot", "http://localhost./cb", "loopback"},
		{"a short-form loopback address", "http://127.1/cb", "loopback"},
		{"a loopback address with leading zeros", "http://127.000.000.001/cb", "loopback"},
		{"an IPv4-mapped IPv6 loopback address", "http://[::ffff:127.0.0.1]/cb", "loopback"},
		{"an IPv6 loopback address with a zone", "http://[::1%25eth0]/cb", "loopback"},
		{"the unspecified address", "http://0.0.0.0/cb", "loopback"},
		{"a private network address", "http://192.168.1.1/cb", "loopback"},
		{"http without a host", "http:///cb", "loopback"},
		{"https without a host", "https:///cb", "host"},
		{"the retired out-of-band value", "urn:ietf:wg:oauth:2.0:oob", "path"},
		{"an opaque private-use URI", "myapp:callback", "path"},
		{"a space", "https://claude.ai/api/mcp/auth callback", "character"},
		{"a backslash browsers read as a slash", `https://evil.com\@claude.ai/cb`, "character"},
		{"a non-ASCII host", "https://clаude.ai/cb", "character"},
		{"a newline", "https://claude.ai/cb\n", "character"},
		{"a bad percent escape", "https://claude.ai/%zz", "valid"},
		{"a scheme starting with a digit", "1app://cb", "absolute"},
		{"a URI longer than 2000 bytes", "https://example.com/" + strings.Repeat("a", 1981), "2000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			native, err := oauth.CheckRedirectURI(tt.uri)
			if err == nil {
				t.Fatalf("CheckRedirectURI(%q) accepted it (native %v)", tt.uri, native)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("CheckRedirectURI(%q) = %q, want it to mention %q", tt.uri, err, tt.says)
			}
			if native {
				t.Errorf("CheckRedirectURI(%q) reported native with an error", tt.uri)
			}
		})
	}
}

func TestShouldAcceptARedirectURIOfExactly2000Bytes(t *testing.T) {
	uri := "https://example.com/" + strings.Repeat("a", 1980)
	if _, err := oauth.CheckRedirectURI(uri); err != nil {
		t.Fatalf("CheckRedirectURI of %d bytes = %v", len(uri), err)
	}
}

// The registrations of real clients, as they register them.
var (
	claudeCode = []string{"http://localhost/callback", "http://127.0.0.1/callback"}
	claudeWeb  = []string{"https://claude.ai/api/mcp/auth_callback"}
	vscode     = []string{"https://insiders.vscode.dev/redirect", "https://vscode.dev/redirect", "http://127.0.0.1/", "http://127.0.0.1:33418/"}
	cursor     = []string{"cursor://anysphere.cursor-mcp/oauth/callback"}
	mcpRemote  = []string{"http://localhost:3334/oauth/callback"}
	ipv6       = []string{"http://[::1]/cb"}
)

func TestShouldMatchTheRedirectURIsRealClientsPresent(t *testing.T) {
	tests := []struct {
		name       string
		registered []string
		presented  string
		want       string
	}{
		{"Claude Code on a random port matches its port-less localhost entry", claudeCode, "http://localhost:53123/callback", "http://localhost/callback"},
		{"Claude Code on a random port matches its port-less 127.0.0.1 entry", claudeCode, "http://127.0.0.1:61000/callback", "http://127.0.0.1/callback"},
		{"Claude Code without a port matches exactly", claudeCode, "http://localhost/callback", "http://localhost/callback"},
		{"claude.ai matches exactly", claudeWeb, "https://claude.ai/api/mcp/auth_callback", "https://claude.ai/api/mcp/auth_callback"},
		{"VS Code's web redirect matches exactly", vscode, "https://vscode.dev/redirect", "https://vscode.dev/redirect"},
		{"VS Code Insiders' web redirect matches exactly", vscode, "https://insiders.vscode.dev/redirect", "https://insiders.vscode.dev/redirect"},
		{"VS Code on its fixed port matches that entry exactly", vscode, "http://127.0.0.1:33418/", "http://127.0.0.1:33418/"},
		{"VS Code on a random port matches a loopback entry", vscode, "http://127.0.0.1:51234/", "http://127.0.0.1/"},
		{"Cursor's private-use scheme matches exactly", cursor, "cursor://anysphere.cursor-mcp/oauth/callback", "cursor://anysphere.cursor-mcp/oauth/callback"},
		{"mcp-remote on a fallback port matches its port-3334 entry", mcpRemote, "http://localhost:49152/oauth/callback", "http://localhost:3334/oauth/callback"},
		{"mcp-remote without a port matches its port-3334 entry", mcpRemote, "http://localhost/oauth/callback", "http://localhost:3334/oauth/callback"},
		{"an IPv6 loopback entry on a random port", ipv6, "http://[::1]:40000/cb", "http://[::1]/cb"},
		{"the host of a loopback entry compares case-insensitively", claudeCode, "http://LocalHost:5000/callback", "http://localhost/callback"},
		{"a loopback query must be identical and is", []string{"http://localhost/cb?a=1"}, "http://localhost:9/cb?a=1", "http://localhost/cb?a=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := oauth.MatchRedirectURI(tt.registered, tt.presented)
			if !ok || got != tt.want {
				t.Errorf("MatchRedirectURI(%q, %q) = %q, %v; want %q, true", tt.registered, tt.presented, got, ok, tt.want)
			}
		})
	}
}

func TestShouldNotMatchRedirectURIsAnAttackerPresents(t *testing.T) {
	tests := []struct {
		name       string
		registered []string
		presented  string
	}{
		{"localhost does not stand for 127.0.0.1", []string{"http://127.0.0.1/callback"}, "http://localhost:5000/callback"},
		{"127.0.0.1 does not stand for localhost", []string{"http://localhost/callback"}, "http://127.0.0.1:5000/callback"},
		{"[::1] does not stand for 127.0.0.1", []string{"http://127.0.0.1/callback"}, "http://[::1]:5000/callback"},
		{"127.0.0.1 does not stand for [::1]", ipv6, "http://127.0.0.1/cb"},
		{"[::1] does not stand for localhost", []string{"http://localhost/callback"}, "http://[::1]/callback"},
		{"another address in 127/8 is another host", []string{"http://127.0.0.1/callback"}, "http://127.0.0.2/callback"},
		{"a host that starts like a loopback address", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1.evil.com/cb"},
		{"a host that starts like localhost", claudeCode, "http://localhost.evil.com/callback"},
		{"user information that hides the real host", []string{"http://localhost/"}, "http://localhost@evil.com/"},
		{"user information in front of the loopback host", claudeCode, "http://evil@localhost:5000/callback"},
		{"dot segments are not resolved", claudeWeb, "https://claude.ai/api/mcp/auth_callback/../evil"},
		{"dot segments are not resolved on loopback", claudeCode, "http://localhost:5000/callback/../evil"},
		{"a query the registration does not have", claudeWeb, "https://claude.ai/api/mcp/auth_callback?x=1"},
		{"a query on a loopback URI registered without one", claudeCode, "http://localhost:5000/callback?x=1"},
		{"an empty query is still a difference", claudeWeb, "https://claude.ai/api/mcp/auth_callback?"},
		{"a fragment", claudeWeb, "https://claude.ai/api/mcp/auth_callback#x"},
		{"a fragment on a loopback URI", claudeCode, "http://localhost:5000/callback#x"},
		{"a fragment even on a registration that has one", []string{"https://claude.ai/cb#x"}, "https://claude.ai/cb#x"},
		{"user information even on a registration that has it", []string{"https://u@claude.ai/cb"}, "https://u@claude.ai/cb"},
		{"an upper-case scheme", claudeWeb, "HTTPS://claude.ai/api/mcp/auth_callback"},
		{"an upper-case host on https", claudeWeb, "https://CLAUDE.AI/api/mcp/auth_callback"},
		{"a path in another case", claudeWeb, "https://claude.ai/api/mcp/Auth_Callback"},
		{"a path in another case on loopback", claudeCode, "http://localhost:5000/Callback"},
		{"an upper-case scheme on loopback", claudeCode, "HTTP://localhost:5000/callback"},
		{"a trailing slash", claudeWeb, "https://claude.ai/api/mcp/auth_callback/"},
		{"a missing trailing slash on loopback", vscode, "http://127.0.0.1:51234"},
		{"a percent-encoded path character", claudeWeb, "https://claude.ai/api/mcp/auth%5Fcallback"},
		{"an explicit default port on https", claudeWeb, "https://claude.ai:443/api/mcp/auth_callback"},
		{"another port on https", claudeWeb, "https://claude.ai:8443/api/mcp/auth_callback"},
		{"https where loopback http was registered", claudeCode, "https://localhost:5000/callback"},
		{"http where https was registered", claudeWeb, "http://claude.ai/api/mcp/auth_callback"},
		{"http on a remote host registered by mistake does not get the port rule", []string{"http://example.com/cb"}, "http://example.com:81/cb"},
		{"a private-use scheme gets no port rule", []string{"cursor://anysphere.cursor-mcp/oauth/callback"}, "cursor://anysphere.cursor-mcp:1/oauth/callback"},
		{"a non-numeric port", claudeCode, "http://localhost:abc/callback"},
		{"two ports", claudeCode, "http://localhost:80:90/callback"},
		{"a look-alike Kelvin sign cannot fold into a letter", []string{"http://localhost/k"}, "http://localhost:5000/\u212a"},
		{"a look-alike long s in the host", claudeCode, "http://localho\u017ft:5000/callback"},
		{"a backslash", claudeCode, `http://localhost:5000\@evil.com/callback`},
		{"nothing registered", nil, "http://localhost/callback"},
		{"an empty presented URI", claudeCode, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := oauth.MatchRedirectURI(tt.registered, tt.presented); ok {
				t.Errorf("MatchRedirectURI(%q, %q) = %q, want no match", tt.registered, tt.presented, got)
			}
		})
	}
}

// A URI that matches a valid registration must itself be one a client could have registered:
// the port rule never lets through anything CheckRedirectURI would refuse.
func FuzzMatchRedirectURI(f *testing.F) {
	for _, s := range [][2]string{
		{"http://localhost/callback", "http://localhost:53123/callback"},
		{"http://127.0.0.1/", "http://127.0.0.1:1/"},
		{"http://[::1]/cb", "http://[::1]:2/cb"},
		{"https://claude.ai/api/mcp/auth_callback", "https://claude.ai/api/mcp/auth_callback"},
		{"cursor://anysphere.cursor-mcp/oauth/callback", "cursor://anysphere.cursor-mcp/oauth/callback"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, registered, presented string) {
		regNative, err := oauth.CheckRedirectURI(registered)
		got, ok := oauth.MatchRedirectURI([]string{registered}, presented)
		if !ok {
			return
		}
		if got != registered {
			t.Fatalf("MatchRedirectURI returned %q, not the registered %q", got, registered)
		}
		if err != nil {
			return // only exact matches are possible then
		}
		native, err := oauth.CheckRedirectURI(presented)
		if err != nil || native != regNative {
			t.Fatalf("%q matched %q but CheckRedirectURI says %v, %v", presented, registered, native, err)
		}
	})
}
