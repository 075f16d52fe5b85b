package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/federation"
	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/random"
	"github.com/bduf/mcpauth/rbac"
	"github.com/bduf/mcpauth/tools"
)

// connectorConfig is one identity provider of the --sso-connectors file. Its client secret
// comes from the environment (client_secret_env) or a file of its own (client_secret_file),
// never from the file itself or a flag, so that the file can be shared and kept in a repository.
type connectorConfig struct {
	ID                 string   `json:"id"`
	Name               string   `json:"name"`
	Issuer             string   `json:"issuer"`
	ClientID           string   `json:"client_id"`
	ClientSecretEnv    string   `json:"client_secret_env"`
	ClientSecretFile   string   `json:"client_secret_file"`
	Scopes             []string `json:"scopes"`
	EmailClaim         string   `json:"email_claim"`
	UsernameClaim      string   `json:"username_claim"`
	GroupsClaim        string   `json:"groups_claim"`
	JIT                bool     `json:"jit"`
	Org                string   `json:"org"`
	DefaultRole        string   `json:"default_role"`
	AllowedDomains     []string `json:"allowed_domains"`
	AllowedGroups      []string `json:"allowed_groups"`
	LinkByEmailDomains []string `json:"link_by_email_domains"`
	TrustMFA           bool     `json:"trust_mfa"`
	// GroupRoles map the provider's groups to roles ([{"group", "org", "role"}]).
	GroupRoles []federation.GroupRole `json:"group_roles"`
	// SessionTTL bounds what a sign-in through it leads to, e.g. "8h" (default 24h).
	SessionTTL string `json:"session_ttl"`
}

// connectorIDPattern is what a connector may be called: it is a path segment of its callback.
var connectorIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// loadConnectors reads the connectors file and discovers each provider. A mistake in the file
// stops the start; a provider that cannot be discovered now (down, or naming another issuer) is
// logged as an error and left off the login page, so that an outage of one provider does not
// keep everyone else (passwords, other providers, API keys) out: a restart offers it again.
func loadConnectors(ctx context.Context, path, issuer string, getenv func(string) string, logger *slog.Logger) ([]oauth.SSOConnector, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--sso-connectors: %w", err)
	}
	var cfgs []connectorConfig
	if err := json.Unmarshal(b, &cfgs, json.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("--sso-connectors %s: %w", path, err)
	}
	var out []oauth.SSOConnector
	seen := map[string]bool{}
	for i, c := range cfgs {
		lifetime, err := c.check()
		if err != nil {
			return nil, fmt.Errorf("--sso-connectors: connector %d (%q): %w", i+1, c.ID, err)
		}
		if seen[c.ID] {
			return nil, fmt.Errorf("--sso-connectors: connector %d: id %q is given twice", i+1, c.ID)
		}
		seen[c.ID] = true
		secret := getenv(c.ClientSecretEnv)
		if c.ClientSecretFile != "" {
			f, err := os.ReadFile(c.ClientSecretFile)
			if err != nil {
				return nil, fmt.Errorf("--sso-connectors: connector %s: client_secret_file: %w", c.ID, err)
			}
			secret = strings.TrimSpace(string(f))
		}
		conn, err := federation.NewOIDC(ctx, federation.OIDCConfig{ID: c.ID, Name: c.Name, Issuer: c.Issuer, ClientID: c.ClientID,
			ClientSecret: secret, RedirectURL: issuer + oauth.CallbackPath(c.ID), Scopes: c.Scopes,
			EmailClaim: c.EmailClaim, UsernameClaim: c.UsernameClaim, GroupsClaim: c.GroupsClaim})
		if err != nil {
			logger.Error("single sign-on connector left out: its provider cannot be discovered", "id", c.ID, "issuer", c.Issuer, "error", err)
			continue
		}
		origin := c.Issuer
		if u, err := url.Parse(conn.LoginURL("s", "n", "v")); err == nil {
			origin = u.Scheme + "://" + u.Host
		}
		out = append(out, oauth.SSOConnector{Connector: conn, Origin: origin, Policy: federation.Policy{JIT: c.JIT, OrgID: c.Org,
			DefaultRole: c.DefaultRole, AllowedDomains: c.AllowedDomains, AllowedGroups: c.AllowedGroups,
			LinkByEmailDomains: c.LinkByEmailDomains, TrustMFA: c.TrustMFA, GroupRoles: c.GroupRoles, Lifetime: lifetime}})
		logger.Info("single sign-on connector", "id", c.ID, "issuer", c.Issuer, "jit", c.JIT, "org", c.Org)
	}
	return out, nil
}

// useSSO turns the sso_login tool on: its sign-ins finish on the authorization server's pages,
// this process's over HTTP, another's (the issuer's, sharing the store and the master key)
// over stdio.
func (a *app) useSSO(c config, sso []oauth.SSOConnector, stdio bool, logger *slog.Logger) {
	if !isOrigin(c.Issuer) || (!stdio && !c.oauthOn(false)) {
		logger.Warn("single sign-on connectors are configured but the authorization server's pages are not served at the issuer: sso_login is off",
			"issuer", c.Issuer)
		return
	}
	conns := make([]oauth.DeviceConnector, len(sso))
	for i, s := range sso {
		conns[i] = oauth.DeviceConnector{ID: s.Connector.ID(), Name: s.Connector.Name()}
	}
	a.tools.UseSSO(&oauth.Devices{Issuer: c.Issuer, Store: a.oauthStore, Sealer: a.sealer, Auth: a.auth, Connectors: conns})
}

// check holds c to what a connector may be, filling in its defaults, and returns its session
// lifetime (0: the default): the one rule of the connectors file and "mcpauth connector add".
func (c *connectorConfig) check() (time.Duration, error) {
	if !connectorIDPattern.MatchString(c.ID) {
		return 0, fmt.Errorf("id %q: want 1 to 64 lower-case letters, digits, '_' or '-' (it is in the callback URL)", c.ID)
	}
	switch {
	case c.Issuer == "" || c.ClientID == "":
		return 0, errors.New("issuer and client_id are required")
	case c.ClientSecretEnv != "" && c.ClientSecretFile != "":
		return 0, errors.New("give client_secret_env or client_secret_file, not both")
	}
	if c.DefaultRole == "" {
		c.DefaultRole = rbac.RoleViewer
	}
	if !rbac.IsBuiltinRole(c.DefaultRole) {
		return 0, fmt.Errorf("default_role %q is not a built-in role", c.DefaultRole)
	}
	if c.Org == "" {
		c.Org = auth.DefaultOrgID
	}
	for _, g := range c.GroupRoles {
		if g.Group == "" || g.OrgID == "" || g.Role == "" {
			return 0, fmt.Errorf("a group role needs group, org and role: %+v", g)
		}
	}
	if c.SessionTTL == "" {
		return 0, nil
	}
	lifetime, err := time.ParseDuration(c.SessionTTL)
	if err != nil || lifetime < 5*time.Minute || lifetime > 720*time.Hour {
		return 0, fmt.Errorf("session_ttl %q: want a duration from 5m to 720h", c.SessionTTL)
	}
	return lifetime, nil
}

// ssoAccounts are auth's accounts as federation's resolver asks for them; a JIT account gets
// its connector's default role through rbac.
type ssoAccounts struct{ a *app }

func (s ssoAccounts) AccountByID(ctx context.Context, id string) (federation.Account, error) {
	u, err := s.a.auth.GetUser(ctx, id)
	return accountOf(u, err)
}

func (s ssoAccounts) AccountByEmail(ctx context.Context, email string) (federation.Account, error) {
	u, err := s.a.auth.FindUser(ctx, email, "")
	return accountOf(u, err)
}

func (s ssoAccounts) CreateAccount(ctx context.Context, id, email, username, orgID, role string) (federation.Account, error) {
	u, err := s.a.auth.CreateUser(ctx, auth.NewUser{ID: id, Email: email, Username: username, OrgID: orgID, NoPassword: true,
		Provision: tools.AssignRoles(s.a.authz, []string{role})})
	if apierr.CodeOf(err) == apierr.Conflict { // the id or the email is taken
		return federation.Account{}, storeerr.ErrAlreadyExists
	}
	return accountOf(u, err)
}

func accountOf(u auth.User, err error) (federation.Account, error) {
	if apierr.CodeOf(err) == apierr.NotFound {
		return federation.Account{}, storeerr.ErrNotFound
	}
	if err != nil {
		return federation.Account{}, err
	}
	return federation.Account{ID: u.ID, Email: u.Email, OrgID: u.OrgID, Disabled: u.Disabled}, nil
}

// resolver is the SSO resolver on the app's stores.
func (a *app) resolver() *federation.Resolver {
	return &federation.Resolver{Store: a.links, Accounts: ssoAccounts{a}, Roles: ssoRoles{a}, Grants: a.links,
		NewID: func() string { return random.ID("usr") }}
}

// ssoRoles are rbac's assignments as the group mapping asks for them.
type ssoRoles struct{ a *app }

func (s ssoRoles) Assign(ctx context.Context, userID string, r federation.OrgRole) (bool, error) {
	err := s.a.authz.Assign(ctx, rbac.Assignment{UserID: userID, OrgID: r.OrgID, Role: r.Role})
	if apierr.CodeOf(err) == apierr.Conflict {
		return true, nil // held already (by hand, or by another connector): not this rule's
	}
	return false, err
}

func (s ssoRoles) Unassign(ctx context.Context, userID string, r federation.OrgRole) error {
	err := s.a.authz.Unassign(ctx, rbac.Assignment{UserID: userID, OrgID: r.OrgID, Role: r.Role})
	if apierr.CodeOf(err) == apierr.NotFound {
		return nil // taken back meanwhile by hand
	}
	return err
}
