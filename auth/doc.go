// Package auth owns identities and credentials: users and their bcrypt passwords, signed access
// tokens (JWT) and their key set, refresh-token sessions with rotation and reuse detection, API
// keys, TOTP second factors, revocations, rate limits and lockout.
//
// It never stores a secret in the clear (refresh tokens and API keys by SHA-256 hash, signing
// keys and TOTP secrets encrypted with the master key), never says whether an account exists,
// and never trusts a key a token names for itself. It owns its store interface (Store) and the
// MongoDB implementation of it.
//
// The per-call path (Validate, Caller) is cached, never at the price of an answer: verified
// tokens by the hash of the token, with revocation and the key checked on every call; user
// records for a second, dropped on any change made here (cache.go). Password hashing runs on a
// bounded pool so that a flood of logins cannot starve it (hashpool.go).
//
// Every check of a password or a second factor (login, password change, step-up, MFA) goes
// through one sequence (proof.go): reserved with the lockout per account and client address,
// counted and audited when it fails, cleared only by a whole proof.
package auth
