package oauth

import (
	"net/http"
	"strings"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
)

// introspection is an RFC 7662 §2.2 answer. An inactive token is {"active": false} and nothing
// else: why it is not active (unknown, expired, revoked, its user disabled) is not the asking
// client's to learn.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Username  string `json:"username,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Aud       string `json:"aud,omitempty"`
	Iss       string `json:"iss,omitempty"`
	Jti       string `json:"jti,omitempty"`
}

// introspect is RFC 7662 introspection for resource servers that do not verify the JWTs
// themselves. Only a confidential client may ask (the spec requires the endpoint to be
// protected; a public client proves nothing), and only access tokens are answered: API keys
// and refresh tokens are mcpauth's own and read inactive. The answer is the guard's view of
// the token: signature, expiry, the session's revocation and the live user record.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	if client.Public() {
		s.writeTokenError(w, tokenError{http.StatusUnauthorized, "invalid_client", "introspection is for confidential clients (resource servers with a secret)"})
		return
	}
	tok := form.Get("token")
	if tok == "" {
		s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", "token is required"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if strings.HasPrefix(tok, apikey.Prefix) || strings.Count(tok, ".") != 2 {
		writeJSON(w, http.StatusOK, introspection{})
		return
	}
	u, c, err := s.cfg.Auth.Caller(r.Context(), auth.Secret(tok))
	if err != nil {
		if apierr.CodeOf(err) == apierr.Internal {
			s.writeTokenError(w, *s.serverError(r.Context(), "introspect", err))
			return
		}
		writeJSON(w, http.StatusOK, introspection{})
		return
	}
	writeJSON(w, http.StatusOK, introspection{Active: true, Scope: strings.Join(c.Scopes, " "), ClientID: c.ClientID,
		Username: u.Email, TokenType: "Bearer", Exp: c.ExpiresAt.Unix(), Iat: c.IssuedAt.Unix(), Sub: c.Subject,
		Aud: s.cfg.Resource, Iss: s.cfg.Issuer, Jti: c.TokenID})
}
