package app

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/call"
	"github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
)

// oauthServer builds the authorization server of a serve over HTTP. Its scopes are the
// permissions of the guard's policy: a token an OAuth client gets carries the ones asked for
// that its user holds, and the guard re-checks the live grants on every call.
func (a *app) oauthServer(c config, policy mcp.Policy, sso []oauth.SSOConnector, logger *slog.Logger) (*oauth.Server, error) {
	supported := policyScopes(policy)
	var docs *oauth.Documents
	if c.OAuthDocuments {
		dc := oauth.DocumentsConfig{}
		if c.OAuthDocumentsTestCA != "" {
			pem, err := os.ReadFile(c.OAuthDocumentsTestCA)
			if err != nil {
				return nil, fmt.Errorf("MCPAUTH_OAUTH_CIMD_TEST_CA: %w", err)
			}
			dc.RootCAs = x509.NewCertPool()
			if !dc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, errors.New("MCPAUTH_OAUTH_CIMD_TEST_CA: no PEM certificate in the file")
			}
			dc.AllowPrivate = true
			logger.Warn("MCPAUTH_OAUTH_CIMD_TEST_CA is set: client metadata documents may come from loopback and private addresses (tests only)")
		}
		docs = oauth.NewDocuments(dc)
	}
	return oauth.NewServer(oauth.Config{Documents: docs, SSO: sso, Resolver: a.resolver(),
		Issuer: c.Issuer, Resource: c.Audience, Auth: a.auth, Store: a.oauthStore, Sealer: a.sealer,
		Scopes: oauth.Scopes{Supported: supported, Default: minimalScopes(supported),
			Held: func(ctx context.Context, u auth.User, scopes []string) ([]string, error) {
				held, err := a.authz.Permissions(ctx, u.ID, u.OrgID, "")
				if err != nil {
					return nil, err
				}
				return slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool {
					return !slices.ContainsFunc(held, func(p string) bool { return rbac.Match(p, sc) })
				}), nil
			}},
		Registration: c.OAuthRegistration, Limiter: a.limiter, UnusedClientTTL: c.OAuthUnusedClientTTL,
		ClientAddr: registrationAddr,
		Audit:      a.audit, Logger: logger,
	})
}

// policyScopes are the permissions any tool of the policy needs, sorted: the scopes a client
// may ask for.
func policyScopes(p mcp.Policy) []string {
	var out []string
	for _, rule := range p.Tools {
		for _, perm := range rule.AnyOf {
			if !slices.Contains(out, perm) {
				out = append(out, perm)
			}
		}
	}
	slices.Sort(out)
	return out
}

// minimalScopes is what the protected-resource metadata advertises and a request naming no
// scope gets: the read permissions (MCP's scope minimization). A client asks for more when a
// call answers 403 insufficient_scope with the scope it needs (step-up).
func minimalScopes(supported []string) []string {
	var out []string
	for _, sc := range supported {
		if _, act, _ := strings.Cut(sc, ":"); act == "read" || act == "list" {
			out = append(out, sc)
		}
	}
	return out
}

// registrationAddr is what registrations are counted by: the client's address, an IPv6 one by
// its /64 (as auth's per-address limits).
func registrationAddr(r *http.Request) string {
	ip := call.ClientAddr(r.Context())
	switch {
	case !ip.IsValid():
		return ""
	case ip.Unmap().Is4():
		return ip.Unmap().String()
	}
	return auth.AddrGroup(ip).String()
}
