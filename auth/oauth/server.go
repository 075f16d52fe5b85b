package oauth

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/federation"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
)

// Authenticator is what the server asks of auth.Service.
type Authenticator interface {
	Authenticate(ctx context.Context, req auth.LoginRequest) (auth.User, error)
	AuthenticateSecondFactor(ctx context.Context, userID string, code auth.Secret) (auth.User, error)
	ResumeLogin(ctx context.Context, userID string, authTime time.Time, withMFA bool) (auth.User, error)
	// SSOLogin signs userID in after connector proved who they are: mfa.ErrRequired (with the
	// user) when the account has a second factor and mfaDone is false.
	SSOLogin(ctx context.Context, userID, connector string, mfaDone bool) (auth.User, error)
	OpenGrant(ctx context.Context, sessionID, userID string, g session.Grant, notAfter time.Time) (auth.Tokens, error)
	RevokeGrant(ctx context.Context, sessionID, reason string) error
	RefreshGrant(ctx context.Context, refreshToken auth.Secret, clientID string, scopes []string) (auth.Tokens, error)
	Revoke(ctx context.Context, tok auth.Secret) (bool, error)
	// Caller is the guard's check of an access token (for introspection).
	Caller(ctx context.Context, tok auth.Secret) (auth.User, token.Claims, error)
}

// Scopes is the server's scope policy. A scope is a permission ("projects:read").
type Scopes struct {
	// Supported are the scopes a token may carry (the permissions the guarded tools need);
	// others in a request are dropped.
	Supported []string
	// Default is granted when a request names no scope: the minimal set the resource's
	// metadata lists (more by step-up).
	Default []string
	// Held returns which of scopes u holds now (its live permissions allow them).
	Held func(ctx context.Context, u auth.User, scopes []string) ([]string, error)
}

// Config configures a Server.
type Config struct {
	// Issuer is the server's issuer identifier: an origin, no path, no trailing slash.
	// Resource is the one protected resource tokens are for (the MCP URL).
	Issuer, Resource string
	Auth             Authenticator
	Store            Store
	// Sealer seals what a browser carries between the pages (the pending authorization):
	// with several instances it must be the same master key everywhere.
	Sealer *token.Sealer
	Scopes Scopes
	// Registration turns RFC 7591 dynamic client registration on; RegisterLimit bounds it per
	// client address (through Limiter; default 20 a minute).
	Registration bool
	// SSO are the identity providers the login page offers, Resolver what turns their
	// identities into accounts (both nil: none).
	SSO      []SSOConnector
	Resolver *federation.Resolver
	// Documents resolves client_ids that are https URLs (client ID metadata documents); nil:
	// such clients are unknown.
	Documents     *Documents
	Limiter       throttle.Limiter
	RegisterLimit throttle.Limit
	// ClientAddr names the client address of a request for the registration limit ("" for
	// none known).
	ClientAddr func(*http.Request) string
	// UnusedClientTTL is how long a dynamically registered client may stay unused before
	// Sweep deletes it (default DefaultUnusedClientTTL).
	UnusedClientTTL time.Duration
	Audit           audit.Recorder
	Logger          *slog.Logger
	Now             func() time.Time
}

// Lifetimes.
const (
	// CodeTTL is an authorization code's lifetime (OAuth 2.1: short; MCP clients redeem at once).
	CodeTTL = 60 * time.Second
	// pageTTL bounds how long a person may take on the login, second-factor and consent pages.
	pageTTL = 10 * time.Minute
)

// Server is the authorization server's HTTP side.
type Server struct {
	cfg     Config
	log     *slog.Logger
	pages   *template.Template
	clients *lru.Cache[string, cachedClient]
}

//go:embed pages/*.html
var pageFiles embed.FS

// NewServer checks cfg and returns the server.
func NewServer(cfg Config) (*Server, error) {
	if err := checkIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.Resource == "" || cfg.Auth == nil || cfg.Store == nil || cfg.Sealer == nil || cfg.Scopes.Held == nil {
		return nil, errors.New("oauth: resource, authenticator, store, sealer and scopes are required")
	}
	if len(cfg.SSO) > 0 && cfg.Resolver == nil {
		return nil, errors.New("oauth: single sign-on connectors need a resolver")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard
	}
	if cfg.Limiter == nil {
		cfg.Limiter = throttle.NewLocalLimiter(nil)
	}
	if cfg.RegisterLimit == (throttle.Limit{}) {
		cfg.RegisterLimit = throttle.Limit{Rate: 20, Period: time.Minute, Burst: 20}
	}
	if cfg.UnusedClientTTL <= 0 {
		cfg.UnusedClientTTL = DefaultUnusedClientTTL
	}
	if cfg.ClientAddr == nil {
		cfg.ClientAddr = func(*http.Request) string { return "" }
	}
	pages, err := template.ParseFS(pageFiles, "pages/*.html")
	if err != nil {
		return nil, err
	}
	clients, _ := lru.New[string, cachedClient](clientCacheSize) // size > 0: no error
	return &Server{cfg: cfg, log: cfg.Logger, pages: pages, clients: clients}, nil
}

// checkIssuer holds the issuer to the one form every client compares byte for byte: an
// http(s) origin without path, query, fragment or trailing slash.
func checkIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(issuer, "/") {
		return errors.New("oauth: the issuer must be an origin such as https://auth.example.com (no path, no trailing slash)")
	}
	return nil
}

// Paths of the endpoints, relative to the issuer.
const (
	MetadataPath     = "/.well-known/oauth-authorization-server"
	AuthorizePath    = "/authorize"
	loginPath        = "/authorize/login"
	secondFactorPath = "/authorize/mfa"
	consentPath      = "/authorize/consent"
	switchPath       = "/authorize/switch"
	TokenPath        = "/token"
	RegistrationPath = "/register"
	RevocationPath   = "/revoke"
	IntrospectPath   = "/introspect"
	JWKSPath         = "/.well-known/jwks.json"
	maxFormBytes     = 64 << 10
)

// Register adds the endpoints to mux, each behind wrap (the transport's per-request context)
// and counted by instrument.
func (s *Server) Register(mux *http.ServeMux, wrap func(http.Handler) http.Handler) {
	handle := func(pattern, name string, h http.HandlerFunc) { mux.Handle(pattern, wrap(instrument(name, h))) }
	handle(MetadataPath, "metadata", s.cors(s.metadata))
	handle(MetadataPath+"/", "metadata", s.cors(s.metadata)) // the path-suffixed form some clients build
	handle(AuthorizePath, "authorize", s.authorize)
	handle("POST "+loginPath, "login", s.login)
	handle("POST "+secondFactorPath, "second_factor", s.secondFactor)
	handle("POST "+consentPath, "consent", s.consent)
	handle("POST "+switchPath, "switch_account", s.switchAccount)
	if len(s.cfg.SSO) > 0 {
		handle("POST "+ssoPath, "sso_start", s.ssoStart)
		handle("GET "+ssoBasis+"{connector}/callback", "sso_callback", s.ssoCallback)
		handle("GET "+ssoBasis+"{connector}/link", "sso_link", s.ssoLink)
		handle("POST "+ssoBasis+"{connector}/link", "sso_link", s.ssoLink)
		handle(DevicePath, "sso_device", s.device)
	}
	for _, e := range []struct {
		path, name string
		h          http.HandlerFunc
	}{{TokenPath, "token", s.token}, {RevocationPath, "revoke", s.revoke}, {IntrospectPath, "introspect", s.introspect},
		{RegistrationPath, "register", s.register}} {
		if e.path == RegistrationPath && !s.cfg.Registration {
			continue
		}
		handle("POST "+e.path, e.name, s.cors(e.h))
		handle("OPTIONS "+e.path, e.name, s.cors(nil)) // the preflight: answered by cors
	}
}

// cors lets browser-based clients (the MCP Inspector) call an endpoint: any origin, never
// with credentials (none of these endpoints reads a cookie).
func (s *Server) cors(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next(w, r)
	}
}

// Metadata is the RFC 8414 authorization server metadata.
type Metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethods     []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	IntrospectionEndpointAuthMethods  []string `json:"introspection_endpoint_auth_methods_supported"`
	IssParameterSupported             bool     `json:"authorization_response_iss_parameter_supported"`
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported"`
}

// Metadata returns the server's metadata document.
func (s *Server) Metadata() Metadata {
	m := Metadata{
		Issuer:                            s.cfg.Issuer,
		AuthorizationEndpoint:             s.cfg.Issuer + AuthorizePath,
		TokenEndpoint:                     s.cfg.Issuer + TokenPath,
		RevocationEndpoint:                s.cfg.Issuer + RevocationPath,
		JWKSURI:                           s.cfg.Issuer + JWKSPath,
		ScopesSupported:                   slices.Clone(s.cfg.Scopes.Supported),
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{GrantAuthorizationCode, GrantRefreshToken},
		CodeChallengeMethodsSupported:     []string{"S256"},
		TokenEndpointAuthMethodsSupported: []string{AuthNone, AuthSecretBasic, AuthSecretPost},
		RevocationEndpointAuthMethods:     []string{AuthNone, AuthSecretBasic, AuthSecretPost},
		IntrospectionEndpoint:             s.cfg.Issuer + IntrospectPath,
		IntrospectionEndpointAuthMethods:  []string{AuthSecretBasic, AuthSecretPost},
		IssParameterSupported:             true,
		ClientIDMetadataDocumentSupported: s.cfg.Documents != nil,
	}
	if s.cfg.Registration {
		m.RegistrationEndpoint = s.cfg.Issuer + RegistrationPath
	}
	return m
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// The path-suffixed form names the resource's path (RFC 8414 §3.1): answer it for ours.
	if suffix := strings.TrimPrefix(r.URL.Path, MetadataPath); suffix != "" && suffix != resourcePath(s.cfg.Resource) {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, s.Metadata())
}

func resourcePath(resource string) string {
	if u, err := url.Parse(resource); err == nil {
		return u.Path
	}
	return ""
}

// codeHash is how a code is stored and looked up: its SHA-256, hex.
func codeHash(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// grantSession is the id of the session a code opens: derived from the code's hash, so that a
// second redemption finds what the first issued without the first writing anything more.
func grantSession(hash string) string {
	sum := sha256.Sum256([]byte("mcpauth oauth grant session\x00" + hash))
	return "ses_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:16]))
}

// secretHash is how a client secret is stored: its SHA-256, hex (a secret is 256 random bits,
// so a fast hash is enough).
func secretHash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// NewClientSecret returns a new client secret (256 random bits) and the hash to store.
func NewClientSecret() (secret, hash string) {
	secret = randomToken()
	return secret, secretHash(secret)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sameSecretHash(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// record writes an audit event; a failure is logged (the flows do not depend on it).
func (s *Server) record(ctx context.Context, e audit.Event) {
	if err := s.cfg.Audit.Record(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit event not recorded", "type", e.Type, "error", err)
	}
}

func (s *Server) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

// lookupClient reads a client: a registered one from the store, one whose client_id is an https
// URL from its metadata document (fetched at most at the registration rate per address).
// Unknown ones are errUnknownClient, a document that cannot be used a *DocumentError.
func (s *Server) lookupClient(r *http.Request, id string) (Client, error) {
	ctx := r.Context()
	if id == "" || len(id) > 2048 {
		return Client{}, errUnknownClient
	}
	if IsDocumentID(id) {
		if s.cfg.Documents == nil {
			return Client{}, errUnknownClient
		}
		fresh := !s.cfg.Documents.Cached(id)
		if fresh {
			d, err := s.cfg.Limiter.Allow(ctx, "oauth:register:"+cmp.Or(s.cfg.ClientAddr(r), "local"), s.cfg.RegisterLimit)
			if err != nil {
				return Client{}, apierr.Internalf("document fetch limit: %w", err)
			}
			if !d.Allowed {
				return Client{}, documentError("too many new clients from this address; try again later")
			}
		}
		c, err := s.cfg.Documents.Client(ctx, id)
		if de := (*DocumentError)(nil); errors.As(err, &de) && fresh {
			s.log.WarnContext(ctx, "client metadata document refused", "client_id", id, "reason", de.Reason)
			s.record(ctx, audit.Event{Type: audit.OAuthDocumentRefused, Severity: audit.Warning,
				Details: map[string]any{"client_id": id, "reason": de.Reason}})
		}
		return c, err
	}
	if len(id) > 256 {
		return Client{}, errUnknownClient
	}
	if e, ok := s.clients.Get(id); ok && s.now().Before(e.until) {
		return e.client, nil
	}
	c, err := s.cfg.Store.GetClient(ctx, id)
	if errors.Is(err, storeerr.ErrNotFound) {
		return Client{}, errUnknownClient
	}
	if err != nil {
		return Client{}, apierr.Internalf("read client: %w", err)
	}
	s.clients.Add(id, cachedClient{client: c, until: s.now().Add(clientCacheTTL)})
	return c, nil
}

// A registered client does not change, so the server keeps the ones it read: a sign-in reads
// its client four times (the request, each page, the token request). A client deleted through
// another process is still known here for clientCacheTTL at most. Unknown ids are not kept: a
// stranger's guesses cannot fill the cache.
const (
	clientCacheTTL  = time.Minute
	clientCacheSize = 4096
)

type cachedClient struct {
	client Client
	until  time.Time
}

var errUnknownClient = errors.New("unknown client")

// scopeList splits a space-separated scope parameter, dropping empty and repeated entries.
func scopeList(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}
