package auth

import "github.com/bduf/mcpauth/auth/token"

// MintAccessToken signs an access token as a login would, without the login: benchmarks need
// thousands of distinct tokens.
func MintAccessToken(s *Service, sub, sid, org string, scopes []string) (string, error) {
	tok, _, err := s.codec.Sign(token.Subject{User: sub, Session: sid, Org: org, Scopes: scopes, AuthTime: s.cfg.Now()}, s.cfg.Now())
	return tok, err
}
