// Package auth owns identities and credentials and orchestrates the flows that use them: login,
// refresh, revocation, logout, step-up, user administration. Each credential is a capability
// package of its own, with its own small store interface, MongoDB implementation and
// conformance suite:
//
//   - token: the signing key set (rotation, sealing with the master key, JWKS), the JWT codec
//     and the verified-token cache.
//   - password: NIST SP 800-63B rules, bcrypt on a bounded pool of workers, the dummy compare.
//   - session: sessions, refresh rotation with reuse detection, the revocation sets.
//   - apikey: API keys (format, records, cache, shared revocation).
//   - mfa: TOTP and recovery codes.
//   - throttle: rate limits and lockout (in process or Redis).
//
// The authorization server (auth/oauth) and the SSO connectors (auth/federation) are to be
// packages of the same kind. What stays here is what joins them: the users (User, UserStore),
// the audit trail of every flow, the limits and lockout applied to each check, and the one
// sequence every check of a password or a second factor goes through (proof.go: reserved
// with the lockout per account and client address, counted and audited when it fails, cleared
// only by a whole proof), used by login, password change, step-up and MFA verification.
//
// It never stores a secret in the clear (refresh tokens and API keys by SHA-256 hash, signing
// keys and TOTP secrets encrypted with the master key), never says whether an account exists,
// and never trusts a key a token names for itself. Store is the union of the capability
// packages' stores and UserStore; MongoStore implements it by embedding theirs.
//
// The per-call path (Validate, Caller) is cached, never at the price of an answer: verified
// tokens by the hash of the token (token.Codec), with revocation and the key checked on every
// call; user records for a second, dropped on any change made here (cache.go).
package auth
