package app

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/random"
)

const clientHelp = `Usage: mcpauth client add --name N --redirect-uri URI [--redirect-uri URI...] [--confidential] [--id ID] [--no-refresh]
       mcpauth client delete --id ID

Registers an OAuth client ahead of time, for a client that does not register itself (or when
--oauth-registration is off): its redirect URIs follow the rules of dynamic registration
(https, http on a loopback host with any port, or a private-use scheme). A --confidential
client gets a secret (client_secret_basic or _post), printed once with the client; store only
what this prints. A running server sees a deleted client gone within a minute. With the
embedded store, the data directory must be the server's (MCPAUTH_DATA_DIR).
`

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ",") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// clientIDPattern is what an operator may name a client: no URL (those are metadata
// documents), nothing that needs escaping anywhere.
var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{2,127}$`)

// Client runs "mcpauth client add|delete".
func Client(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const prog = "mcpauth"
	if len(args) == 0 || (args[0] != "add" && args[0] != "delete") {
		fmt.Fprint(stderr, clientHelp)
		return ExitUsage
	}
	fs := newFlagSet("client " + args[0])
	name := fs.String("name", "", "the client's name, shown on the consent page (add)")
	id := fs.String("id", "", "the client_id (add: default a new random one; delete: required)")
	confidential := fs.Bool("confidential", false, "give the client a secret (add)")
	noRefresh := fs.Bool("no-refresh", false, "no refresh tokens for this client (add)")
	var redirects repeated
	fs.Var(&redirects, "redirect-uri", "a redirect URI (add; repeat for several)")
	vals := registerFlags(fs, storeFlags)
	if code, stop := parseFlags(prog, fs, clientHelp, args[1:], stdout, stderr); stop {
		return code
	}
	if args[0] == "delete" {
		return clientDelete(ctx, fs, vals, *id, stdout, stderr, getenv)
	}
	if *id != "" && (!clientIDPattern.MatchString(*id) || *id == token.ClientID) {
		fmt.Fprintf(stderr, "mcpauth: --id: want 3 to 128 letters, digits, '.', '_' or '-' (and not %q), got %q\n", token.ClientID, *id)
		return ExitUsage
	}
	method, grants := oauth.AuthNone, []string{oauth.GrantAuthorizationCode, oauth.GrantRefreshToken}
	if *confidential {
		method = oauth.AuthSecretBasic
	}
	if *noRefresh {
		grants = grants[:1]
	}
	// The one rule for what a client may be: the registration's.
	body, _ := json.Marshal(map[string]any{"client_name": *name, "redirect_uris": []string(redirects),
		"token_endpoint_auth_method": method, "grant_types": grants})
	reg, err := oauth.ParseRegistration(body)
	if err != nil {
		fmt.Fprintln(stderr, "mcpauth:", err)
		return ExitUsage
	}
	a, code := openForCLI(ctx, fs, vals, getenv, stderr)
	if a == nil {
		return code
	}
	defer a.Close()
	var secret, hash string
	if *confidential {
		secret, hash = oauth.NewClientSecret()
	}
	c := reg.Client(cmpOrRandomID(*id), hash, time.Now().UTC().Truncate(time.Millisecond))
	c.Source = oauth.SourceConfig
	if err := a.oauthStore.CreateClient(ctx, c); err != nil {
		return Fail(prog, stderr, fmt.Errorf("client %s: %w", c.ID, err))
	}
	out := map[string]any{"client_id": c.ID, "client_name": c.Name, "redirect_uris": c.RedirectURIs,
		"grant_types": c.GrantTypes, "token_endpoint_auth_method": c.AuthMethod}
	if secret != "" {
		out["client_secret"] = secret // the only time it is shown
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
	return ExitOK
}

func cmpOrRandomID(id string) string {
	if id != "" {
		return id
	}
	return random.ID("mcp")
}

func clientDelete(ctx context.Context, fs *flag.FlagSet, vals map[string]*string, id string, stdout, stderr io.Writer, getenv func(string) string) int {
	if id == "" {
		fmt.Fprintln(stderr, "mcpauth: --id is required")
		return ExitUsage
	}
	a, code := openForCLI(ctx, fs, vals, getenv, stderr)
	if a == nil {
		return code
	}
	defer a.Close()
	if err := a.oauthStore.DeleteClient(ctx, id); err != nil {
		return Fail("mcpauth", stderr, fmt.Errorf("client %s: %w", id, err))
	}
	fmt.Fprintf(stdout, "deleted client %s\n", id)
	return ExitOK
}
