package rbac

// rbac's types: roles, grants, assignments, requests and decisions. Their methods and the
// Authorizer live beside them; godoc is the API's listing.

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Store sentinels (wrapped with %w by implementations).
var (
	ErrNotFound      = errors.New("not found")
	ErrAlreadyExists = errors.New("already exists")
)

// Role is a named set of permission patterns in an organization. Built-in roles (owner, admin,
// contributor, viewer) exist in every organization and are not stored; custom roles are stored
// per organization and may carry policy conditions that every grant of the role is subject to.
type Role struct {
	OrgID       string     `bson:"org_id" json:"org_id"`
	Name        string     `bson:"name" json:"name"`
	Description string     `bson:"description,omitempty" json:"description,omitempty"`
	Permissions []string   `bson:"permissions" json:"permissions"`
	Conditions  Conditions `bson:"conditions,omitempty" json:"conditions,omitzero"`
	BuiltIn     bool       `bson:"-" json:"built_in"`
	CreatedAt   time.Time  `bson:"created_at" json:"created_at"`
}

// Conditions restrict the grants of a role: every condition that is set must hold for the
// request, or the role grants nothing for it. The zero value has no conditions.
type Conditions struct {
	// OwnerOnly: the request's Attributes.OwnerID must be the subject.
	OwnerOnly bool `bson:"owner_only,omitempty" json:"owner_only,omitempty"`
	// SourceCIDRs: the request's Attributes.SourceIP must be in one of these prefixes.
	SourceCIDRs []string `bson:"source_cidrs,omitempty" json:"source_cidrs,omitempty"`
	// TimeWindow: the request's Attributes.Time must fall inside it.
	TimeWindow *TimeWindow `bson:"time_window,omitempty" json:"time_window,omitempty"`
}

// TimeWindow is a daily window in UTC, "HH:MM" to "HH:MM" (End may be before Start: the window
// wraps midnight), optionally on some weekdays only ("mon".."sun").
type TimeWindow struct {
	Start    string   `bson:"start" json:"start"`
	End      string   `bson:"end" json:"end"`
	Weekdays []string `bson:"weekdays,omitempty" json:"weekdays,omitempty"`
}

// Assignment gives a user a role in an organization, optionally only in one project.
type Assignment struct {
	UserID    string    `bson:"user_id" json:"user_id"`
	OrgID     string    `bson:"org_id" json:"org_id"`
	Role      string    `bson:"role" json:"role"`
	ProjectID string    `bson:"project_id,omitempty" json:"project_id,omitempty"`
	CreatedAt time.Time `bson:"created_at" json:"created_at"`
}

// Grant gives a user one permission pattern directly, in an organization.
type Grant struct {
	UserID     string    `bson:"user_id" json:"user_id"`
	OrgID      string    `bson:"org_id" json:"org_id"`
	Permission string    `bson:"permission" json:"permission"`
	CreatedAt  time.Time `bson:"created_at" json:"created_at"`
}

// Store persists custom roles, assignments and direct grants. Atomic steps are inserts with a
// unique _id (FerretDB v1 updates are not atomic); see auth/mongo.go.
type Store interface {
	CreateRole(ctx context.Context, r Role) error                  // ErrAlreadyExists
	GetRole(ctx context.Context, orgID, name string) (Role, error) // ErrNotFound
	ListRoles(ctx context.Context, orgID string) ([]Role, error)   // custom roles, by name
	DeleteRole(ctx context.Context, orgID, name string) error      // ErrNotFound
	Assign(ctx context.Context, a Assignment) error                // ErrAlreadyExists
	Unassign(ctx context.Context, a Assignment) error              // ErrNotFound (matched on user, org, role, project)
	ListAssignments(ctx context.Context, userID, orgID string) ([]Assignment, error)
	DeleteRoleAssignments(ctx context.Context, orgID, role string) (int, error)
	AddGrant(ctx context.Context, g Grant) error    // ErrAlreadyExists
	RemoveGrant(ctx context.Context, g Grant) error // ErrNotFound
	ListGrants(ctx context.Context, userID, orgID string) ([]Grant, error)
	// EraseUser removes every record of userID's assignments and grants, in every organization
	// (their history included): the erasure of an account. Erasing a user without any is no
	// error.
	EraseUser(ctx context.Context, userID string) error
}

// Versions is the policy version, so that cached decisions made under an older one are never
// used: Current and Bump for a change that can concern anyone (a role defined or deleted),
// Subject and BumpSubject for a change of one subject's assignments or grants, which leaves
// every other subject's cached decisions standing. Local (one instance) or Redis (every
// instance sharing it sees a bump within a second).
type Versions interface {
	Current() uint64
	Bump(ctx context.Context) error
	// Subject is the version of subject's assignments and grants (0 until the first change).
	Subject(subject string) uint64
	BumpSubject(ctx context.Context, subject string) error
}

// Attributes are what policy conditions look at.
type Attributes struct {
	OwnerID  string     // owner of the resource acted on, if known
	SourceIP netip.Addr // the caller's address, if known
	Time     time.Time  // when; zero means now
}

// Request asks whether Subject may do Action on Resource in OrgID (and ProjectID, if set).
type Request struct {
	Subject    string
	Resource   string
	Action     string
	OrgID      string
	ProjectID  string
	Attributes Attributes
}

// Decision is the answer. Required lists the permission asked for; Granted the subject's
// patterns that matched it (empty on a deny).
type Decision struct {
	Allowed  bool     `json:"allowed"`
	Reason   string   `json:"reason"`
	Required []string `json:"required_permissions"`
	Granted  []string `json:"granted_permissions"`
}

// ReasonSystemError is the reason of every deny caused by an error: fail closed.
const ReasonSystemError = "authorization system error"
