// Package federation signs users in through external identity providers. A provider is a
// Connector (dex's shape): the small interface every connector has, and optional capabilities
// found by type assertion, CallbackConnector for the browser redirect flow first.
//
// An external identity is (issuer, subject), never the email: an email is an attribute the
// provider asserts, and may be reused or unverified. What an identity may do in mcpauth (which
// account it is, whether a new one is made, which roles its groups give) is the next layer's
// decision; this package only proves who the provider says the person is.
package federation

import (
	"context"
	"errors"
	"fmt"
)

// Identity is what a provider proved about a person.
type Identity struct {
	ConnectorID string
	// Issuer and Subject identify the person at the provider: the identity's key.
	Issuer, Subject string
	Email           string
	EmailVerified   bool // false when the provider did not say
	Username        string
	Groups          []string
	// AMR is how the provider authenticated the person (RFC 8176: "pwd", "mfa", "otp", "hwk"...).
	AMR []string
}

// Connector is an identity provider mcpauth can send people to.
type Connector interface {
	// ID is the connector's id in configuration and URLs; Name what the login page shows.
	ID() string
	Name() string
}

// CallbackConnector signs a person in with a browser redirect and a callback.
type CallbackConnector interface {
	Connector
	// LoginURL is where the browser goes to sign in. The caller keeps state, nonce and the
	// PKCE verifier (in the browser's sealed request) and hands them back at the callback.
	LoginURL(state, nonce, verifier string) string
	// HandleCallback redeems the provider's code and verifies what it answers: the ID token's
	// signature, issuer, audience, expiry and nonce.
	HandleCallback(ctx context.Context, code, nonce, verifier string) (Identity, error)
}

// RefusedError is a provider answer that proves nothing: Reason says why, for the log and the
// audit trail (never shown with the token's contents).
type RefusedError struct {
	Reason string
	Err    error
}

func (e *RefusedError) Error() string {
	if e.Err != nil {
		return "identity provider: " + e.Reason + ": " + e.Err.Error()
	}
	return "identity provider: " + e.Reason
}

func (e *RefusedError) Unwrap() error { return e.Err }

func refused(reason string, err error) error { return &RefusedError{Reason: reason, Err: err} }

// IsRefused reports whether err is a provider answer that was refused (not an outage).
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// errf wraps an outage (the provider unreachable, a malformed discovery document).
func errf(format string, args ...any) error { return fmt.Errorf("identity provider: "+format, args...) }
