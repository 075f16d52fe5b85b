package audit

// audit's types: events, their severities, types and reasons, the Recorder interface, queries
// and verification results. The writer, the chain and the stores live beside them; godoc is the
// API's listing.

import (
	"context"
	"errors"
	"time"
)

// Severity of an event.
type Severity string

// Severities.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Critical Severity = "critical"
)

// Event types (the seed's, at least). AUTH_FAILED carries details["reason"], one of the Reason*
// constants.
const (
	AuthSuccess        = "AUTH_SUCCESS"
	AuthFailed         = "AUTH_FAILED"
	AuthRateLimited    = "AUTH_RATE_LIMITED"
	AccountLocked      = "ACCOUNT_LOCKED"
	AccountUnlocked    = "ACCOUNT_UNLOCKED"
	MFAChallengeSent   = "MFA_CHALLENGE_SENT"
	MFAEnabled         = "MFA_ENABLED"
	MFADisabled        = "MFA_DISABLED"
	TokenRefreshed     = "TOKEN_REFRESHED"
	TokenReuseDetected = "TOKEN_REUSE_DETECTED"
	TokenRevoked       = "TOKEN_REVOKED"
	SessionRevoked     = "SESSION_REVOKED"
	APIKeyCreated      = "API_KEY_CREATED"
	APIKeyRevoked      = "API_KEY_REVOKED"
	APIKeyUsedFailed   = "API_KEY_USED_FAILED"
	AuthzGranted       = "AUTHZ_GRANTED"
	AuthzDenied        = "AUTHZ_DENIED"
	AuthzError         = "AUTHZ_ERROR"
	RoleCreated        = "ROLE_CREATED"
	RoleDeleted        = "ROLE_DELETED"
	RoleAssigned       = "ROLE_ASSIGNED"
	RoleRevoked        = "ROLE_REVOKED"
	PermissionGranted  = "PERMISSION_GRANTED"
	PermissionRevoked  = "PERMISSION_REVOKED"
	UserCreated        = "USER_CREATED"
	UserUpdated        = "USER_UPDATED"
	UserDisabled       = "USER_DISABLED"
	UserDeleted        = "USER_DELETED"
	KeyRotated         = "KEY_ROTATED"
	// The authorization server's (auth/oauth): a client registered, an authorization the user
	// granted or refused on the consent page, a code redeemed for tokens, a code presented again.
	OAuthClientRegistered = "OAUTH_CLIENT_REGISTERED"
	OAuthAuthorized       = "OAUTH_AUTHORIZED"
	OAuthConsentDenied    = "OAUTH_CONSENT_DENIED"
	OAuthTokenIssued      = "OAUTH_TOKEN_ISSUED"
	OAuthCodeReused       = "OAUTH_CODE_REUSED"
	// Single sign-on (auth/federation): a sign-in through an identity provider, the account it
	// made (JIT) or linked (by email), and a refusal with its reason.
	SSOLogin        = "SSO_LOGIN"
	SSOUserCreated  = "SSO_USER_CREATED"
	SSOLinked       = "SSO_LINKED"
	SSOLoginRefused = "SSO_LOGIN_REFUSED"
	SSORolesChanged = "SSO_ROLES_CHANGED" // a connector's group rules gave or took back roles
	// OAuthDocumentRefused: a client ID metadata document could not be fetched or used.
	OAuthDocumentRefused = "OAUTH_CIMD_FETCH_FAILED"
	// RetentionAnchor is written by retention: it carries the hash of the last deleted event, so
	// the chain of what remains still verifies. (Anchors are documents of their own, in
	// audit_anchors, not events of the chain; MongoStore.Last returns one as an Event of this
	// type for a chain whose events retention has all deleted.)
	RetentionAnchor = "RETENTION_ANCHOR"
)

// AUTH_FAILED reasons.
const (
	ReasonUserNotFound    = "USER_NOT_FOUND"
	ReasonInvalidPassword = "INVALID_PASSWORD"
	ReasonAccountInactive = "ACCOUNT_INACTIVE"
	ReasonInvalidMFA      = "INVALID_MFA"
	ReasonSystemError     = "SYSTEM_ERROR"
)

// Event is one audit record. The writer fills ID, Instance, Seq, Time (if zero), PrevHash and
// Hash; callers fill the rest. Details must never hold a secret: values that are secrets must be
// of a type that redacts itself when marshalled (auth.Secret does).
//
// The writer bounds what an event carries, since clients choose some of it (a request id, a
// tool name): each request field (ClientAddr, Transport, RequestID, Subject, Actor, OrgID,
// SessionID) is stored cut to MaxFieldLen (256) bytes, and each string inside Details, at any
// depth of its maps and lists, to MaxDetailLen (1024) bytes. A cut string ends with
// TruncationMarker ("…(truncated)"), is cut at a rune boundary (valid UTF-8) and is what is
// hashed. Events within the bounds are stored as recorded.
type Event struct {
	ID         string         `bson:"_id" json:"id"`
	Instance   string         `bson:"instance" json:"instance"` // the chain this event is in
	Seq        int64          `bson:"seq" json:"seq"`           // position in its chain, from 1
	Type       string         `bson:"type" json:"type"`
	Severity   Severity       `bson:"severity" json:"severity"`
	Time       time.Time      `bson:"time" json:"time"`
	Subject    string         `bson:"subject,omitempty" json:"subject,omitempty"` // whom it is about
	Actor      string         `bson:"actor,omitempty" json:"actor,omitempty"`     // who did it
	OrgID      string         `bson:"org_id,omitempty" json:"org_id,omitempty"`
	ClientAddr string         `bson:"client_addr,omitempty" json:"client_addr,omitempty"`
	Transport  string         `bson:"transport,omitempty" json:"transport,omitempty"`
	RequestID  string         `bson:"request_id,omitempty" json:"request_id,omitempty"`
	SessionID  string         `bson:"session_id,omitempty" json:"session_id,omitempty"`
	Details    map[string]any `bson:"details,omitempty" json:"details,omitempty"`
	PrevHash   string         `bson:"prev_hash" json:"prev_hash"`
	Hash       string         `bson:"hash" json:"hash"`
}

// Recorder is what the rest of mcpauth needs of the audit trail. Record never drops an event:
// it blocks (back-pressure) while the queue is full, until ctx ends. RecordDurable returns only
// once the event is in MongoDB or fsynced to the spill file. An event takes the request fields it
// leaves empty (client address, transport, request id, actor, session) from ctx (WriterConfig.Request),
// and severity Info when it names none: callers set only what is theirs to say.
type Recorder interface {
	Record(ctx context.Context, e Event) error
	RecordDurable(ctx context.Context, e Event) error
}

// Store keeps the hash chains: all the writer needs of where events go. MongoStore is the one
// on MongoDB (and the embedded FerretDB); storetest is the suite every Store passes.
type Store interface {
	// Append stores events at their positions (Instance, Seq), in order. An event already
	// stored exactly as given (same position, ID and Hash: a replay after a lost acknowledgement)
	// counts as stored; a different event at a taken position is ErrChainConflict, and nothing
	// after it is stored.
	Append(ctx context.Context, events []Event) error
	// Last is where an instance's chain stands: its last event (or the RetentionAnchor standing
	// for events retention deleted); ok is false for a chain never written.
	Last(ctx context.Context, instance string) (last Event, ok bool, err error)
}

// Query selects events for audit_query: newest first, cursor-paged.
type Query struct {
	Type    string
	Subject string // user_id
	OrgID   string
	Since   time.Time
	Until   time.Time
	Limit   int
	Cursor  string
}

// VerifyResult is what audit_verify reports.
type VerifyResult struct {
	OK      bool  `json:"ok"`
	Checked int64 `json:"checked"`
	Chains  int   `json:"chains"`
	// FirstBad locates the first broken link: the chain (instance), the position expected, and
	// what is wrong ("edited", "missing", "out of order").
	FirstBad *BadLink `json:"first_bad,omitempty"`
}

// BadLink is a broken link of a chain.
type BadLink struct {
	Instance string `json:"instance"`
	Seq      int64  `json:"seq"`
	EventID  string `json:"event_id,omitempty"`
	Problem  string `json:"problem"`
}

// ErrClosed is returned by a writer that has been closed.
var ErrClosed = errors.New("audit: writer closed")
