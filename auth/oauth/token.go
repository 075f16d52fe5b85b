package oauth

import (
	"cmp"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/random"
)

// tokenError is an RFC 6749 §5.2 error of the token, revocation or registration endpoint.
type tokenError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

var (
	// invalid_client is 401: clients (claude.ai, the TypeScript SDK) register again on it.
	errInvalidClient = tokenError{http.StatusUnauthorized, "invalid_client", "client authentication failed"}
	errBadCode       = tokenError{http.StatusBadRequest, "invalid_grant", "the code is invalid, expired or was issued to another client"}
)

func (s *Server) writeTokenError(w http.ResponseWriter, e tokenError) {
	w.Header().Set("Cache-Control", "no-store")
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="mcpauth"`)
	}
	writeJSON(w, e.status, e)
}

// tokenResponse is a successful token response (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
}

// token is the token endpoint: the authorization_code and refresh_token grants.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	var (
		tokens auth.Tokens
		terr   *tokenError
	)
	switch form.Get("grant_type") {
	case GrantAuthorizationCode:
		tokens, terr = s.redeem(r.Context(), client, form)
	case GrantRefreshToken:
		tokens, terr = s.refresh(r.Context(), client, form)
	case "":
		terr = &tokenError{http.StatusBadRequest, "invalid_request", "grant_type is required"}
	default:
		terr = &tokenError{http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"}
	}
	if terr == nil {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tokens.AccessToken, TokenType: "Bearer",
			ExpiresIn: max(int64(time.Until(tokens.ExpiresAt).Seconds()), 0), RefreshToken: tokens.RefreshToken,
			Scope: strings.Join(tokens.Scopes, " ")})
		return
	}
	s.writeTokenError(w, *terr)
}

// redeem exchanges a code. Everything is checked before the redemption is recorded, so a
// stranger's guess (a wrong verifier, another client) spends nothing of the rightful client's
// code; a second redemption of a good one revokes what the first issued.
func (s *Server) redeem(ctx context.Context, client Client, form url.Values) (auth.Tokens, *tokenError) {
	raw := form.Get("code")
	if raw == "" || len(raw) > 128 {
		return auth.Tokens{}, &tokenError{http.StatusBadRequest, "invalid_request", "code is required"}
	}
	hash := codeHash(raw)
	c, err := s.cfg.Store.GetCode(ctx, hash)
	if errors.Is(err, storeerr.ErrNotFound) {
		return auth.Tokens{}, &errBadCode
	}
	if err != nil {
		return auth.Tokens{}, s.serverError(ctx, "read a code", err)
	}
	switch {
	case c.ClientID != client.ID, s.now().After(c.ExpiresAt):
		return auth.Tokens{}, &errBadCode
	case form.Get("redirect_uri") != c.RedirectURI: // byte for byte what the request sent
		return auth.Tokens{}, &tokenError{http.StatusBadRequest, "invalid_grant", "redirect_uri is not the one of the authorization request"}
	case !ValidVerifier(form.Get("code_verifier")) || !VerifyS256(form.Get("code_verifier"), c.Challenge):
		return auth.Tokens{}, &tokenError{http.StatusBadRequest, "invalid_grant", "code_verifier does not match the code_challenge"}
	}
	if rs := form["resource"]; len(rs) > 0 && (len(rs) > 1 || rs[0] != c.Resource) {
		return auth.Tokens{}, &tokenError{http.StatusBadRequest, "invalid_target", "the resource must be the one authorized: " + c.Resource}
	}
	sid := grantSession(hash)
	if err := s.cfg.Store.RedeemCode(ctx, hash, s.now()); err != nil {
		if !errors.Is(err, storeerr.ErrAlreadyExists) {
			return auth.Tokens{}, s.serverError(ctx, "redeem a code", err)
		}
		if rerr := s.cfg.Auth.RevokeGrant(ctx, sid, "authorization code redeemed twice"); rerr != nil {
			s.log.ErrorContext(ctx, "revoke the grant of a code redeemed twice", "session_id", sid, "error", rerr)
		}
		s.record(ctx, audit.Event{Type: audit.OAuthCodeReused, Severity: audit.Critical, Subject: c.UserID, SessionID: sid,
			Details: map[string]any{"client_id": client.ID}})
		return auth.Tokens{}, &tokenError{http.StatusBadRequest, "invalid_grant", "the code was already used; what it issued is revoked"}
	}
	tokens, err := s.cfg.Auth.OpenGrant(ctx, sid, c.UserID, session.Grant{ClientID: client.ID, Resource: c.Resource,
		Scopes: c.Scopes, AuthTime: c.AuthTime}, c.GrantUntil)
	if err != nil {
		return auth.Tokens{}, s.grantError(ctx, err)
	}
	s.markUsed(ctx, client)
	if !slices.Contains(client.GrantTypes, GrantRefreshToken) {
		// A client that did not register for refresh tokens gets none (its session's stays
		// unusable: refresh refuses such a client); it signs in again when the token expires.
		tokens.RefreshToken = ""
	}
	return tokens, nil
}

func (s *Server) refresh(ctx context.Context, client Client, form url.Values) (auth.Tokens, *tokenError) {
	if !slices.Contains(client.GrantTypes, GrantRefreshToken) {
		return auth.Tokens{}, &tokenError{http.StatusBadRequest, "unauthorized_client", "the client did not register for refresh_token"}
	}
	// x/oauth2 (the Go SDK) refreshes without resource: the grant's stands.
	if rs := form["resource"]; len(rs) > 0 && (len(rs) > 1 || rs[0] != s.cfg.Resource) {
		return auth.Tokens{}, &tokenError{http.StatusBadRequest, "invalid_target", "the resource must be " + s.cfg.Resource}
	}
	raw := form.Get("refresh_token")
	if raw == "" {
		return auth.Tokens{}, &tokenError{http.StatusBadRequest, "invalid_request", "refresh_token is required"}
	}
	// A scope parameter narrows the new access token to the grant's scopes among it (never
	// wider; an unknown or ungranted scope is dropped, and the response's scope says what was
	// issued): a refusal, coming after the spend, would cost the client its refresh token.
	var scopes []string
	if form.Has("scope") {
		scopes = scopeList(form.Get("scope"))
		if scopes == nil {
			scopes = []string{}
		}
	}
	tokens, err := s.cfg.Auth.RefreshGrant(ctx, auth.Secret(raw), client.ID, scopes)
	if err != nil {
		return auth.Tokens{}, s.grantError(ctx, err)
	}
	s.markUsed(ctx, client)
	return tokens, nil
}

// grantError maps auth's answer for a grant: anything about the credential or the account is
// invalid_grant (the client must authorize again), the rest a server error.
func (s *Server) grantError(ctx context.Context, err error) *tokenError {
	switch apierr.CodeOf(err) {
	case apierr.TokenInvalid, apierr.TokenExpired, apierr.TokenRevoked, apierr.AccountDisabled, apierr.NotFound:
		return &tokenError{http.StatusBadRequest, "invalid_grant", apierr.From(err).Message}
	case apierr.RateLimited:
		return &tokenError{http.StatusTooManyRequests, "invalid_request", "too many requests; try again later"}
	}
	return s.serverError(ctx, "issue tokens", err)
}

func (s *Server) serverError(ctx context.Context, what string, err error) *tokenError {
	s.log.ErrorContext(ctx, "token endpoint: "+what, "error", err)
	return &tokenError{http.StatusInternalServerError, "server_error", "the server could not answer; try again"}
}

// readForm reads an application/x-www-form-urlencoded body (parameters in the query are not
// read: a secret in a URL ends up in logs).
func (s *Server) readForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(ct) != "application/x-www-form-urlencoded" {
		s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded"})
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", "the body is too large or unreadable"})
		return nil, false
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", "the body is not a valid form"})
		return nil, false
	}
	for _, single := range []string{"grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "client_id", "client_secret", "token", "scope"} {
		if len(form[single]) > 1 {
			s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", single + " is given more than once"})
			return nil, false
		}
	}
	return form, true
}

// clientRequest reads the form of a request to the token, revocation or introspection
// endpoint and authenticates its client; on failure it has answered.
func (s *Server) clientRequest(w http.ResponseWriter, r *http.Request) (url.Values, Client, bool) {
	form, ok := s.readForm(w, r)
	if !ok {
		return nil, Client{}, false
	}
	client, terr := s.authenticateClient(r, form)
	if terr != nil {
		s.writeTokenError(w, *terr)
		return nil, Client{}, false
	}
	return form, client, true
}

// authenticateClient finds the client of a token or revocation request: HTTP Basic
// (client_secret_basic), the form's client_id and client_secret (client_secret_post), or the
// client_id alone for a public client. A confidential client without its secret, a wrong
// secret and an unknown client are all invalid_client.
func (s *Server) authenticateClient(r *http.Request, form url.Values) (Client, *tokenError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id) // RFC 6749 §2.3.1: form-encoded before Basic
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil || (form.Get("client_id") != "" && form.Get("client_id") != id) {
			return Client{}, &errInvalidClient
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return Client{}, &tokenError{http.StatusUnauthorized, "invalid_client", "client_id is required"}
	}
	c, err := s.lookupClient(r, id)
	if de := (*DocumentError)(nil); errors.Is(err, errUnknownClient) || errors.As(err, &de) {
		return Client{}, &errInvalidClient
	}
	if err != nil {
		return Client{}, s.serverError(r.Context(), "read a client", err)
	}
	switch {
	case c.Public() && secret != "":
		return Client{}, &errInvalidClient // a secret it was never given
	case !c.Public() && (secret == "" || !sameSecretHash(secretHash(secret), c.SecretHash)):
		return Client{}, &errInvalidClient
	}
	return c, nil
}

// revoke is RFC 7009 revocation onto auth's: an access token ends its session, a refresh token
// its family. The answer is 200 whether or not there was anything to revoke.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	form, _, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	if tok := form.Get("token"); tok != "" {
		if _, err := s.cfg.Auth.Revoke(r.Context(), auth.Secret(tok)); err != nil && apierr.CodeOf(err) == apierr.Internal {
			s.writeTokenError(w, *s.serverError(r.Context(), "revoke", err))
			return
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// registrationResponse is RFC 7591 §3.2.1's.
type registrationResponse struct {
	ClientID              string   `json:"client_id"`
	ClientSecret          string   `json:"client_secret,omitempty"`
	ClientIDIssuedAt      int64    `json:"client_id_issued_at"`
	ClientSecretExpiresAt *int64   `json:"client_secret_expires_at,omitempty"`
	ClientName            string   `json:"client_name,omitempty"`
	RedirectURIs          []string `json:"redirect_uris"`
	GrantTypes            []string `json:"grant_types"`
	ResponseTypes         []string `json:"response_types"`
	AuthMethod            string   `json:"token_endpoint_auth_method"`
	ApplicationType       string   `json:"application_type"`
	Scope                 string   `json:"scope,omitempty"`
}

// register is RFC 7591 dynamic registration: open to anyone (it is how MCP clients arrive), so
// bounded per client address.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	d, err := s.cfg.Limiter.Allow(ctx, "oauth:register:"+cmp.Or(s.cfg.ClientAddr(r), "local"), s.cfg.RegisterLimit)
	if err != nil {
		s.writeTokenError(w, *s.serverError(ctx, "registration limit", err))
		return
	}
	if !d.Allowed {
		w.Header().Set("Retry-After", retryAfter(d.RetryAfter))
		s.writeTokenError(w, tokenError{http.StatusTooManyRequests, "invalid_request", "too many registrations from this address; try again later"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRegistrationBytes))
	if err != nil {
		s.writeTokenError(w, tokenError{http.StatusBadRequest, ErrCodeInvalidClientMetadata, "the registration is larger than 16 KiB"})
		return
	}
	reg, err := ParseRegistration(body)
	var rerr *RegistrationError
	if errors.As(err, &rerr) {
		s.writeTokenError(w, tokenError{http.StatusBadRequest, rerr.Code, rerr.Description})
		return
	}
	if err != nil {
		s.writeTokenError(w, tokenError{http.StatusBadRequest, ErrCodeInvalidClientMetadata, err.Error()})
		return
	}
	now := s.now()
	var secret, hash string
	if reg.AuthMethod != AuthNone {
		secret = randomToken()
		hash = secretHash(secret)
	}
	c := reg.Client(random.ID("mcp"), hash, now)
	if err := s.cfg.Store.CreateClient(ctx, c); err != nil {
		s.writeTokenError(w, *s.serverError(ctx, "store a client", err))
		return
	}
	s.record(ctx, audit.Event{Type: audit.OAuthClientRegistered,
		Details: map[string]any{"client_id": c.ID, "client_name": c.Name, "redirect_uris": c.RedirectURIs, "auth_method": c.AuthMethod}})
	resp := registrationResponse{ClientID: c.ID, ClientSecret: secret, ClientIDIssuedAt: now.Unix(), ClientName: c.Name,
		RedirectURIs: c.RedirectURIs, GrantTypes: c.GrantTypes, ResponseTypes: []string{"code"}, AuthMethod: c.AuthMethod,
		ApplicationType: c.ApplicationType, Scope: c.Scope}
	if secret != "" {
		never := int64(0)
		resp.ClientSecretExpiresAt = &never
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, resp)
}

// retryAfter is a Retry-After value: whole seconds, at least one.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(int(math.Ceil(d.Seconds())), 1))
}
