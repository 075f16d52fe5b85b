package auth

import "log/slog"

// Secret is a password, token or key in transit. It redacts itself in fmt and slog, so a
// secret can only reach a log by an explicit Reveal.
type Secret string

const redacted = "[REDACTED]"

// String redacts.
func (Secret) String() string { return redacted }

// GoString redacts (%#v).
func (Secret) GoString() string { return redacted }

// LogValue redacts in slog.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText redacts, so a Secret inside a struct cannot leak through JSON or BSON either.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Reveal returns the secret itself. Call it only where the value is used.
func (s Secret) Reveal() string { return string(s) }
