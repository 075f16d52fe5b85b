// Package auth owns identities and credentials: users and their bcrypt passwords, signed access
// tokens (JWT) and their key set, refresh-token sessions with rotation and reuse detection.
//
// It never stores a secret in the clear (refresh tokens by SHA-256 hash, signing keys encrypted
// with the master key), never says whether an account exists, and never trusts a key a token
// names for itself. It owns its store interface (Store) and the MongoDB implementation of it.
package auth
