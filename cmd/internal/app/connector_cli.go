package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/bduf/mcpauth/auth/federation"
	"github.com/bduf/mcpauth/auth/oauth"
)

const connectorHelp = `Usage: mcpauth connector add --id ID --issuer URL --client-id ID (--client-secret-env VAR | --client-secret-file PATH) [options]
       mcpauth connector delete --id ID
       mcpauth connector list

Edits the connectors file of single sign-on (--file, default MCPAUTH_SSO_CONNECTORS): the
identity providers the sign-in page offers. "add" checks the connector as the server does at
start and discovers its provider (the discovery document must name exactly --issuer; skip with
--no-discover when the provider is not reachable from here), then prints the redirect URI to
register at the provider. The client secret is never a flag: it stays in the environment
variable or the file named, and the connectors file holds only their names. A running server
reads the file at start.
`

// Connector runs "mcpauth connector add|delete|list".
func Connector(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const prog = "mcpauth"
	if len(args) == 0 || !slices.Contains([]string{"add", "delete", "list"}, args[0]) {
		fmt.Fprint(stderr, connectorHelp)
		return ExitUsage
	}
	fset := newFlagSet("connector " + args[0])
	file := fset.String("file", getenv("MCPAUTH_SSO_CONNECTORS"), "the connectors file (default MCPAUTH_SSO_CONNECTORS)")
	var c connectorConfig
	var scopes, domains, groups, linkDomains, groupRoles repeated
	noDiscover, replace := new(bool), new(bool)
	if args[0] != "list" {
		fset.StringVar(&c.ID, "id", "", "the connector's id: lower-case letters, digits, '_' or '-' (in its callback URL)")
	}
	if args[0] == "add" {
		fset.StringVar(&c.Name, "name", "", "what the sign-in page's button says (default the id)")
		fset.StringVar(&c.Issuer, "issuer", "", "the provider's issuer URL, exactly as its discovery document says it")
		fset.StringVar(&c.ClientID, "client-id", "", "mcpauth's client id at the provider")
		fset.StringVar(&c.ClientSecretEnv, "client-secret-env", "", "the environment variable holding the client secret")
		fset.StringVar(&c.ClientSecretFile, "client-secret-file", "", "a file holding the client secret")
		fset.Var(&scopes, "scope", "a scope to ask for (repeat; default openid email profile)")
		fset.StringVar(&c.EmailClaim, "email-claim", "", "the claim holding the email (default email)")
		fset.StringVar(&c.UsernameClaim, "username-claim", "", "the claim holding the username (default preferred_username)")
		fset.StringVar(&c.GroupsClaim, "groups-claim", "", "the claim holding the groups (default groups)")
		fset.BoolVar(&c.JIT, "jit", false, "create an account at an identity's first sign-in (off: unknown identities are refused)")
		fset.StringVar(&c.Org, "org", "", "the organization of its accounts (default the default organization)")
		fset.StringVar(&c.DefaultRole, "default-role", "", "the built-in role of a JIT account (default viewer)")
		fset.Var(&domains, "allowed-domain", "an email domain allowed to sign in (repeat; none: any)")
		fset.Var(&groups, "allowed-group", "a group allowed to sign in (repeat; none: any)")
		fset.Var(&linkDomains, "link-by-email-domain", "a domain the provider is authoritative for: its verified emails link to the account with that email (repeat)")
		fset.BoolVar(&c.TrustMFA, "trust-mfa", false, "count the provider's MFA (amr mfa, otp or hwk) as the account's second factor")
		fset.Var(&groupRoles, "group-role", "GROUP:ORG:ROLE: the provider's group gives the role (repeat)")
		fset.StringVar(&c.SessionTTL, "session-ttl", "", "how long a sign-in through it lasts, e.g. 8h (default 24h)")
		fset.BoolVar(noDiscover, "no-discover", false, "do not discover the provider now")
		fset.BoolVar(replace, "replace", false, "replace the connector of the same id")
	}
	if code, stop := parseFlags(prog, fset, connectorHelp, args[1:], stdout, stderr); stop {
		return code
	}
	if *file == "" {
		fmt.Fprintln(stderr, "mcpauth: --file (or MCPAUTH_SSO_CONNECTORS) is required")
		return ExitUsage
	}
	cfgs, err := readConnectors(*file)
	if err != nil {
		return Fail(prog, stderr, err)
	}
	switch args[0] {
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tISSUER\tJIT\tORG")
		for _, c := range cfgs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", c.ID, c.Name, c.Issuer, c.JIT, c.Org)
		}
		_ = tw.Flush()
		return ExitOK
	case "delete":
		i := slices.IndexFunc(cfgs, func(x connectorConfig) bool { return x.ID == c.ID })
		if i < 0 {
			return Fail(prog, stderr, fmt.Errorf("connector %q is not in %s", c.ID, *file))
		}
		if err := writeConnectors(*file, slices.Delete(cfgs, i, i+1)); err != nil {
			return Fail(prog, stderr, err)
		}
		fmt.Fprintf(stdout, "deleted connector %s (a running server drops it at its next start)\n", c.ID)
		return ExitOK
	}
	return connectorAdd(ctx, c, cfgs, connectorLists{scopes, domains, groups, linkDomains, groupRoles}, *file, *noDiscover, *replace, stdout, stderr, getenv)
}

// connectorLists are add's repeated flags.
type connectorLists struct{ scopes, domains, groups, linkDomains, groupRoles repeated }

func connectorAdd(ctx context.Context, c connectorConfig, cfgs []connectorConfig, l connectorLists, file string, noDiscover, replace bool,
	stdout, stderr io.Writer, getenv func(string) string) int {
	c.Scopes, c.AllowedDomains, c.AllowedGroups, c.LinkByEmailDomains = l.scopes, l.domains, l.groups, l.linkDomains
	for _, gr := range l.groupRoles {
		i := strings.LastIndex(gr, ":")
		j := strings.LastIndex(gr[:max(i, 0)], ":")
		if i < 0 || j < 0 {
			fmt.Fprintf(stderr, "mcpauth: --group-role %q: want GROUP:ORG:ROLE\n", gr)
			return ExitUsage
		}
		c.GroupRoles = append(c.GroupRoles, federation.GroupRole{Group: gr[:j], OrgID: gr[j+1 : i], Role: gr[i+1:]})
	}
	if c.ClientSecretEnv == "" && c.ClientSecretFile == "" {
		fmt.Fprintln(stderr, "mcpauth: --client-secret-env or --client-secret-file is required (the secret is never a flag)")
		return ExitUsage
	}
	if _, err := c.check(); err != nil {
		fmt.Fprintln(stderr, "mcpauth:", err)
		return ExitUsage
	}
	i := slices.IndexFunc(cfgs, func(x connectorConfig) bool { return x.ID == c.ID })
	if i >= 0 && !replace {
		return Fail("mcpauth", stderr, fmt.Errorf("connector %q is in %s already (--replace to replace it)", c.ID, file))
	}
	issuer := getenv("MCPAUTH_ISSUER")
	if !noDiscover {
		if _, err := federation.NewOIDC(ctx, federation.OIDCConfig{ID: c.ID, Name: c.Name, Issuer: c.Issuer, ClientID: c.ClientID,
			RedirectURL: issuer + oauth.CallbackPath(c.ID), Scopes: c.Scopes}); err != nil {
			return Fail("mcpauth", stderr, fmt.Errorf("connector %s: %w (--no-discover to add it anyway)", c.ID, err))
		}
	}
	if i >= 0 {
		cfgs[i] = c
	} else {
		cfgs = append(cfgs, c)
	}
	if err := writeConnectors(file, cfgs); err != nil {
		return Fail("mcpauth", stderr, err)
	}
	if !isOrigin(issuer) {
		issuer = "https://<mcpauth's issuer>"
	}
	fmt.Fprintf(stdout, "added connector %s to %s\nregister this redirect URI at the provider: %s%s\n", c.ID, file, issuer, oauth.CallbackPath(c.ID))
	return ExitOK
}

// readConnectors reads the connectors file (none yet: an empty list).
func readConnectors(file string) ([]connectorConfig, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cfgs []connectorConfig
	if err := json.Unmarshal(b, &cfgs, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return cfgs, nil
}

// writeConnectors replaces the connectors file in one step (a temporary file renamed over it):
// a server starting meanwhile reads the old file or the new one, never half of one.
func writeConnectors(file string, cfgs []connectorConfig) error {
	if cfgs == nil {
		cfgs = []connectorConfig{}
	}
	b, err := json.Marshal(cfgs, json.OmitZeroStructFields(true), jsontext.Multiline(true), jsontext.WithIndent("  "))
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".connectors-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing left to remove
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
