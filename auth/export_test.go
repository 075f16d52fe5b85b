package auth

// MintAccessToken signs an access token as a login would, without the login: benchmarks need
// thousands of distinct tokens.
func MintAccessToken(s *Service, sub, sid, org string, scopes []string) (string, error) {
	tok, _, err := s.codec.Sign(sub, sid, org, scopes, s.cfg.Now(), s.cfg.Now())
	return tok, err
}

// WellFormedAPIKey returns a key whose shape and checksum hold but which was never issued: a
// guess, as opposed to a typo.
func WellFormedAPIKey() string {
	key, _, _ := newAPIKey()
	return key
}
