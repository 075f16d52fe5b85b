package auth

import (
	"context"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/token"
)

// CreateAPIKey stores a new key and returns it with the key string, which is shown only here.
// Permissions must already be checked against the creator's (rbac: a key never holds more
// than its creator). Audited durably.
func (s *Service) CreateAPIKey(ctx context.Context, r apikey.Request) (apikey.Key, Secret, error) {
	k, key, err := s.apiKeys.Create(ctx, r)
	if err != nil {
		return apikey.Key{}, "", err
	}
	s.log.InfoContext(ctx, "api key created", "user_id", k.UserID, "key_id", k.ID)
	if err := s.recordDurable(ctx, audit.Event{Type: audit.APIKeyCreated, Subject: k.UserID, OrgID: k.OrgID,
		Details: map[string]any{"key_id": k.ID, "name": k.Name, "permissions": k.Permissions}}); err != nil {
		return apikey.Key{}, "", apierr.Internalf("audit api key creation: %w", err)
	}
	return k, Secret(key), nil
}

// ListAPIKeys returns a user's keys, revoked and expired ones included (but for the oldest of
// them past 2×MaxPerUser keys: see apikey.Store).
func (s *Service) ListAPIKeys(ctx context.Context, userID string) ([]apikey.Key, error) {
	return s.apiKeys.List(ctx, userID)
}

// RevokeAPIKey revokes one of userID's keys. It reports whether this call revoked it.
func (s *Service) RevokeAPIKey(ctx context.Context, userID, id string) (bool, error) {
	k, done, err := s.apiKeys.Revoke(ctx, userID, id)
	if k.ID == "" {
		return false, err
	}
	if err != nil {
		return done, err
	}
	s.log.InfoContext(ctx, "api key revoked", "user_id", userID, "key_id", id)
	if err := s.recordDurable(ctx, audit.Event{Type: audit.APIKeyRevoked, Subject: userID, OrgID: k.OrgID, Details: map[string]any{"key_id": id}}); err != nil {
		return done, apierr.Internalf("audit api key revocation: %w", err)
	}
	return done, nil
}

// RevokeAPIKeysOf revokes every active API key of userID and returns how many it revoked. It
// goes on past a failure and returns the first error.
func (s *Service) RevokeAPIKeysOf(ctx context.Context, userID string) (int, error) {
	all, err := s.apiKeys.List(ctx, userID)
	if err != nil {
		return 0, err
	}
	now := s.cfg.Now()
	count := 0
	var first error
	for _, k := range all {
		if !k.Active(now) {
			continue
		}
		done, err := s.RevokeAPIKey(ctx, userID, k.ID)
		if err != nil && first == nil {
			first = err
		}
		if done {
			count++
		}
	}
	return count, first
}

// validateAPIKey authenticates with a key, rate-limiting the failures of each client address.
func (s *Service) validateAPIKey(ctx context.Context, key string) (apikey.Key, token.Claims, error) {
	// A key whose checksum does not hold is a typo or garbage, never a guess at a real key's
	// secret: refused before any look-up, always as TOKEN_INVALID, and it does not count against
	// the address's guesses. Its record does: anyone can send garbage, so an address's
	// malformed keys are recorded only within the failure limit, in a bucket of their own
	// (past it the limiter counts the refusal in its metric; if the limiter fails, the event is
	// recorded).
	keyID, _, wellFormed := apikey.Parse(key) // the id only is ever recorded, never the secret
	if !wellFormed {
		if err := s.allow(ctx, "apikey_malformed:addr:"+limitAddr(ctx), s.cfg.Limits.APIKeyFailures); apierr.CodeOf(err) != apierr.RateLimited {
			s.record(ctx, audit.Event{Type: audit.APIKeyUsedFailed, Severity: audit.Warning, Details: map[string]any{"reason": "malformed"}})
		}
		return apikey.Key{}, token.Claims{}, apikey.ErrMalformed
	}
	// An address that keeps presenting bad keys is refused before any look-up.
	failKey := "apikey_fail:addr:" + limitAddr(ctx)
	d, err := s.cfg.Limiter.Check(ctx, failKey, s.cfg.Limits.APIKeyFailures)
	if err != nil {
		return apikey.Key{}, token.Claims{}, limiterDown(s.cfg.Limiter.Name(), err)
	}
	if !d.Allowed {
		return apikey.Key{}, token.Claims{}, RateLimited(d.RetryAfter)
	}
	k, err := s.apiKeys.Check(ctx, key)
	if err != nil {
		if apierr.CodeOf(err) == apierr.TokenInvalid {
			s.record(ctx, audit.Event{Type: audit.APIKeyUsedFailed, Severity: audit.Warning, Details: map[string]any{"key_id": keyID}})
			if _, lerr := s.cfg.Limiter.Allow(ctx, failKey, s.cfg.Limits.APIKeyFailures); lerr != nil {
				return apikey.Key{}, token.Claims{}, limiterDown(s.cfg.Limiter.Name(), lerr)
			}
		}
		return apikey.Key{}, token.Claims{}, err
	}
	if err := s.apiKeys.Used(ctx, k); err != nil {
		s.log.WarnContext(ctx, "could not record api key use", "key_id", k.ID, "error", err)
	}
	return k, k.Claims(), nil
}
