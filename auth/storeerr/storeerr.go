// Package storeerr holds the sentinels every auth store answers with: the auth package and
// each capability package (apikey, mfa, session, token) declare their own small store
// interface, and one pair of sentinels lets a caller test any of them with errors.Is.
// Implementations wrap them with %w.
package storeerr

import "errors"

var (
	// ErrNotFound: there is no such record.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a record with that id (or unique field) exists. Atomic steps are
	// unique inserts, so this is also how a store says "someone else did it first".
	ErrAlreadyExists = errors.New("already exists")
)
