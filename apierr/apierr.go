// Package apierr is mcpauth's one error model: a stable code from the design's list, a message
// that is safe to show a caller, optional public details, and a wrapped internal cause that is
// logged but never shown. Every layer returns these; tools map them to MCP tool errors and the
// HTTP layer to 401/403. It imports nothing of ours.
package apierr

import (
	"errors"
	"fmt"
	"maps"
)

// Code is a stable, documented error code. Clients switch on it; never rename one.
type Code string

// The design's codes.
const (
	InvalidArgument    Code = "INVALID_ARGUMENT"
	Unauthenticated    Code = "UNAUTHENTICATED"
	InvalidCredentials Code = "INVALID_CREDENTIALS"
	AccountDisabled    Code = "ACCOUNT_DISABLED"
	AccountLocked      Code = "ACCOUNT_LOCKED"
	RateLimited        Code = "RATE_LIMITED"
	MFARequired        Code = "MFA_REQUIRED"
	InvalidMFACode     Code = "INVALID_MFA_CODE"
	TokenInvalid       Code = "TOKEN_INVALID"
	TokenExpired       Code = "TOKEN_EXPIRED"
	TokenRevoked       Code = "TOKEN_REVOKED"
	PermissionDenied   Code = "PERMISSION_DENIED"
	NotFound           Code = "NOT_FOUND"
	Conflict           Code = "CONFLICT"
	Internal           Code = "INTERNAL"
)

// Error is an error with a public code and message. Values are immutable: the With* methods
// return copies, so package-level sentinels can be shared safely.
type Error struct {
	Code    Code
	Message string
	// Details are public, machine-readable extras (e.g. "field", "required_permissions").
	Details map[string]any
	cause   error
}

// New returns an error with the given code and public message.
func New(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// Newf is New with a formatted message. The message is public: never format a secret into it.
func Newf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error renders code, message and the internal cause, for logs.
func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.cause)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap exposes the internal cause to errors.Is/As.
func (e *Error) Unwrap() error { return e.cause }

// Is lets errors.Is(err, sentinel) match on code and message, so copies made by the With*
// methods still match the sentinel they came from.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == e.Message
}

// Wrap returns a copy carrying cause as its internal (never shown) cause.
func (e *Error) Wrap(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// With returns a copy with one public detail added.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Details = maps.Clone(e.Details)
	if c.Details == nil {
		c.Details = make(map[string]any, 1)
	}
	c.Details[key] = value
	return &c
}

// Field is the common INVALID_ARGUMENT shape: it names the offending argument.
func Field(field, format string, args ...any) *Error {
	return Newf(InvalidArgument, "%s: "+format, append([]any{field}, args...)...).With("field", field)
}

// Internalf wraps an unexpected failure. The public message is fixed; the cause is for logs.
func Internalf(format string, args ...any) *Error {
	return New(Internal, "internal error").Wrap(fmt.Errorf(format, args...))
}

// From returns err as an *Error, mapping anything unexpected to INTERNAL (fail closed: an
// unclassified error is never shown and never treated as success).
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return New(Internal, "internal error").Wrap(err)
}

// CodeOf returns the code of err, INTERNAL for a non-apierr error, "" for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	return From(err).Code
}

// Public is what a caller is shown of e, the same on every transport: {"code", "message",
// ...details}. A tool error carries it under "error"; an HTTP refusal as its JSON-RPC error's
// data. The cause never appears.
func (e *Error) Public() map[string]any {
	body := make(map[string]any, 2+len(e.Details))
	for k, v := range e.Details {
		body[k] = v
	}
	body["code"], body["message"] = string(e.Code), e.Message
	return body
}
