package rbac

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
)

// DefaultCacheLimit is how many entries each of the Authorizer's two caches (grant sets per
// subject/org/project, decisions per subject/org/project/permission) holds before it is emptied.
const DefaultCacheLimit = 100_000

// Limits on custom roles.
const (
	MaxRolePermissions    = 64
	MaxRoleDescriptionLen = 256 // characters
)

// maxCachedKeyLen bounds the bytes of subject, org and project of a cached decision, so that
// the cache's size in bytes is bounded with its size in entries (longer ids are decided, not
// cached).
const maxCachedKeyLen = 1024

var roleNameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{1,63}$`)

var builtinDescriptions = map[string]string{
	RoleOwner:       "everything, including administering projects, users, sessions and roles",
	RoleAdmin:       "reads, writes and deletes projects, requirements, analyses and tasks; manages users and sessions",
	RoleContributor: "reads and writes projects, requirements, analyses, tasks and sessions",
	RoleViewer:      "reads projects, requirements, analyses, tasks and sessions",
}

// noneGranted is the Granted of every deny: empty, not nil, so it renders as [].
var noneGranted = []string{}

// Authorizer answers authorization requests from the built-in roles and a Store of custom roles,
// assignments and direct grants, and manages them. It fails closed: a store error or a panic
// while deciding is a deny with ReasonSystemError.
//
// Decisions are cached. The compiled grant set of each (subject, org, project) is kept under the
// policy version it was read at (Versions.Current, plus this Authorizer's own change count); a
// version change makes everything cached stale at once. When the answer cannot depend on the
// request's Attributes (no conditional role has a pattern matching the permission, or an
// unconditional one already allows it), the Decision itself is cached per (subject, org,
// project, resource, action): such a hit takes a shared read lock, two atomic loads and no
// allocation.
//
// The Decisions it returns share their Required and Granted slices with the cache and with
// other callers: treat them as read-only (copy before changing one).
type Authorizer struct {
	store    Store
	versions Versions
	now      func() time.Time

	local atomic.Uint64 // changes made through this Authorizer
	// own counts the changes of one subject made through this Authorizer, at once, for
	// Versions of another package. rbac's own Versions count them themselves (localCounter):
	// then own is nil, and a decision reads one subject version, not two.
	own      *subjectVersions
	recorder audit.Recorder // nil: changes are not recorded
	limit    int            // entries per cache; 0: no caching
	logger   *slog.Logger

	scopes    versionedCache[scopeKey, *grantSet]
	decisions versionedCache[decisionKey, Decision]
}

type scopeKey struct{ subject, org, project string }

type decisionKey struct{ subject, org, project, resource, action string }

// grantSet is what a subject holds in an org (and project): the compiled form of its
// assignments, their roles and its direct grants.
type grantSet struct {
	plain       []grantSource     // patterns without conditions, in assignment order, then grants
	conditional []conditionalRole // roles whose grants hold only under their conditions
	patterns    []string          // every pattern, sorted and de-duplicated (for Permissions)
	held        []string          // the unconditional patterns, sorted and de-duplicated (for Excess)
}

type grantSource struct {
	pattern string
	by      string // "role owner", "direct grant"
}

type conditionalRole struct {
	name     string
	patterns []string
	cond     compiledConditions
}

// Config configures an Authorizer. Store is required; everything else has a default.
type Config struct {
	Store Store
	// Versions tells instances sharing the store of each other's changes (default: this
	// process's changes only, NewLocalVersions).
	Versions Versions
	// Now is the clock of time-window conditions and timestamps (default time.Now).
	Now func() time.Time
	// Logger receives the cause of every fail-closed decision (a store error, a panic); the
	// caller is only told "denied". Default: nowhere.
	Logger *slog.Logger
	// Audit records role, assignment and grant changes (default: nowhere).
	Audit audit.Recorder
	// CacheLimit is how many entries each cache holds before it is emptied: 0 means
	// DefaultCacheLimit, a negative value turns caching off.
	CacheLimit int
}

// NewAuthorizer returns an Authorizer configured by cfg.
func NewAuthorizer(cfg Config) *Authorizer {
	a := &Authorizer{store: cfg.Store, versions: cfg.Versions, now: cfg.Now, recorder: cfg.Audit, logger: cfg.Logger,
		limit: cfg.CacheLimit}
	if a.versions == nil {
		a.versions = NewLocalVersions()
	}
	if _, ok := a.versions.(localCounter); !ok {
		a.own = &subjectVersions{}
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case a.limit == 0:
		a.limit = DefaultCacheLimit
	case a.limit < 0:
		a.limit = 0
	}
	return a
}

func (a *Authorizer) stamp() stamp {
	return stamp{shared: a.versions.Current(), local: a.local.Load()}
}

// subjectVersion is the version of subject's assignments and grants: the Versions' one, plus,
// over another package's Versions, this Authorizer's own changes (which count even when the
// shared bump fails; rbac's own Versions count them themselves). A sum of two counters that only
// grow only grows.
func (a *Authorizer) subjectVersion(subject string) uint64 {
	v := a.versions.Subject(subject)
	if a.own != nil {
		v += a.own.get(subject)
	}
	return v
}

// bumpOwn counts a change of subject made here, at once: in this Authorizer's counter, or in
// the Versions' own when they keep one (localCounter).
func (a *Authorizer) bumpOwn(subject string) {
	if a.own != nil {
		a.own.bump(subject)
		return
	}
	a.versions.(localCounter).bumpLocal(subject)
}

// Authorize decides r. Allowed iff a pattern the subject holds in r.OrgID (through a role
// assigned org-wide or in r.ProjectID, or a direct grant) Matches r.Resource:r.Action, and, for
// a role with conditions, its conditions hold for r.Attributes. Never an error: anything that
// goes wrong is a deny with ReasonSystemError (the cause goes to the logger).
func (a *Authorizer) Authorize(ctx context.Context, r Request) (d Decision) {
	defer func() {
		if p := recover(); p != nil {
			a.logger.Error("rbac: panic while authorizing; denied", "panic", p, "subject", r.Subject,
				"stack", string(debug.Stack()))
			d = systemError(r)
		}
	}()
	st, sv := a.stamp(), a.subjectVersion(r.Subject)
	key := decisionKey{subject: r.Subject, org: r.OrgID, project: r.ProjectID, resource: r.Resource, action: r.Action}
	if d, ok := a.decisions.get(st, sv, key); ok {
		return d
	}
	return a.authorizeCold(ctx, st, sv, key, &r)
}

func systemError(r Request) Decision {
	return Decision{Allowed: false, Reason: ReasonSystemError, Required: []string{r.Resource + ":" + r.Action}, Granted: noneGranted}
}

func (a *Authorizer) authorizeCold(ctx context.Context, st stamp, sv uint64, key decisionKey, r *Request) Decision {
	required := r.Resource + ":" + r.Action
	deny := func(reason string) Decision {
		return Decision{Reason: reason, Required: []string{required}, Granted: noneGranted}
	}
	if r.Subject == "" {
		return deny("no subject")
	}
	if _, _, ok := splitPermission(required); !ok || !validPattern(required) {
		return deny("invalid permission " + clip(required))
	}
	gs, err := a.grantSet(ctx, st, sv, scopeKey{subject: r.Subject, org: r.OrgID, project: r.ProjectID})
	if err != nil {
		a.logger.Warn("rbac: store error while authorizing; denied", "error", err, "subject", r.Subject, "org_id", r.OrgID)
		return systemError(*r)
	}
	d, cacheable := a.evaluate(gs, r, required)
	if cacheable && len(key.subject)+len(key.org)+len(key.project) <= maxCachedKeyLen {
		a.decisions.put(st, sv, key, d, a.limit)
	}
	return d
}

// evaluate decides r on gs. cacheable is false when the decision depends on r.Attributes.
func (a *Authorizer) evaluate(gs *grantSet, r *Request, required string) (d Decision, cacheable bool) {
	var granted []string
	by := ""
	for _, s := range gs.plain {
		if Match(s.pattern, required) {
			if by == "" {
				by = s.by
			}
			if !slices.Contains(granted, s.pattern) {
				granted = append(granted, s.pattern)
			}
		}
	}
	if by != "" {
		return Decision{Allowed: true, Reason: "granted by " + by, Required: []string{required}, Granted: granted}, true
	}
	conditional, unmet := false, ""
	var at time.Time
	for i := range gs.conditional {
		cr := &gs.conditional[i]
		if !slices.ContainsFunc(cr.patterns, func(p string) bool { return Match(p, required) }) {
			continue
		}
		conditional = true
		if at.IsZero() {
			at = r.Attributes.Time
			if at.IsZero() {
				at = a.now()
			}
		}
		if why := cr.cond.unmet(r, at); why != "" {
			if unmet == "" {
				unmet = why
			}
			continue
		}
		if by == "" {
			by = "role " + cr.name + " (conditions met)"
		}
		for _, p := range cr.patterns {
			if Match(p, required) && !slices.Contains(granted, p) {
				granted = append(granted, p)
			}
		}
	}
	switch {
	case by != "":
		return Decision{Allowed: true, Reason: "granted by " + by, Required: []string{required}, Granted: granted}, false
	case conditional:
		return Decision{Reason: "condition not met: " + unmet, Required: []string{required}, Granted: noneGranted}, false
	default:
		return Decision{Reason: "no role or grant of the subject allows " + required, Required: []string{required}, Granted: noneGranted}, true
	}
}

// subjectReader is what a store may offer to read a subject's assignments and grants in an
// org in one go (MongoStore: one read of the subject's latest version instead of two).
type subjectReader interface {
	ReadSubject(ctx context.Context, userID, orgID string) ([]Assignment, []Grant, error)
}

func (a *Authorizer) subject(ctx context.Context, userID, orgID string) ([]Assignment, []Grant, error) {
	if sr, ok := a.store.(subjectReader); ok {
		as, gs, err := sr.ReadSubject(ctx, userID, orgID)
		if err != nil {
			return nil, nil, fmt.Errorf("read assignments and grants: %w", err)
		}
		return as, gs, nil
	}
	assignments, err := a.store.ListAssignments(ctx, userID, orgID)
	if err != nil {
		return nil, nil, fmt.Errorf("list assignments: %w", err)
	}
	grants, err := a.store.ListGrants(ctx, userID, orgID)
	if err != nil {
		return nil, nil, fmt.Errorf("list grants: %w", err)
	}
	return assignments, grants, nil
}

// grantSet returns the compiled grant set of k under st and the subject's version sv, from the
// cache or the store.
func (a *Authorizer) grantSet(ctx context.Context, st stamp, sv uint64, k scopeKey) (*grantSet, error) {
	if gs, ok := a.scopes.get(st, sv, k); ok {
		return gs, nil
	}
	assignments, grants, err := a.subject(ctx, k.subject, k.org)
	if err != nil {
		return nil, err
	}
	gs := &grantSet{}
	done := map[string]bool{}
	for _, as := range assignments {
		if as.ProjectID != "" && as.ProjectID != k.project {
			continue // a project assignment applies only in its project
		}
		if done[as.Role] {
			continue
		}
		done[as.Role] = true
		by := "role " + as.Role
		if perms, ok := builtin[as.Role]; ok {
			for _, p := range perms {
				gs.plain = append(gs.plain, grantSource{pattern: p, by: by})
			}
			continue
		}
		role, err := a.store.GetRole(ctx, k.org, as.Role)
		if errors.Is(err, ErrNotFound) {
			continue // the role was deleted and this assignment not yet: it grants nothing
		}
		if err != nil {
			return nil, fmt.Errorf("get role %q: %w", as.Role, err)
		}
		if as.CreatedAt.Before(role.CreatedAt) {
			// An assignment of an earlier role of this name, left by a deletion whose sweep
			// failed: a role made again does not inherit its predecessor's holders.
			done[as.Role] = false
			continue
		}
		if role.Conditions.IsZero() {
			for _, p := range role.Permissions {
				gs.plain = append(gs.plain, grantSource{pattern: p, by: by})
			}
			continue
		}
		gs.conditional = append(gs.conditional, conditionalRole{
			name: role.Name, patterns: role.Permissions, cond: compileConditions(role.Conditions)})
	}
	for _, g := range grants {
		gs.plain = append(gs.plain, grantSource{pattern: g.Permission, by: "direct grant"})
	}
	gs.held = make([]string, 0, len(gs.plain))
	for _, s := range gs.plain {
		gs.held = append(gs.held, s.pattern)
	}
	slices.Sort(gs.held)
	gs.held = slices.Compact(gs.held)
	gs.patterns = slices.Clone(gs.held)
	for _, cr := range gs.conditional {
		gs.patterns = append(gs.patterns, cr.patterns...)
	}
	slices.Sort(gs.patterns)
	gs.patterns = slices.Compact(gs.patterns)
	if len(k.subject)+len(k.org)+len(k.project) <= maxCachedKeyLen {
		a.scopes.put(st, sv, k, gs, a.limit)
	}
	return gs, nil
}

// Permissions returns the patterns userID holds in orgID (and projectID, if set), sorted and
// de-duplicated: those of its roles (conditional roles included: they are what the user may
// hold) and its direct grants.
func (a *Authorizer) Permissions(ctx context.Context, userID, orgID, projectID string) ([]string, error) {
	if userID == "" {
		return nil, apierr.Field("user_id", "is required")
	}
	gs, err := a.grantSet(ctx, a.stamp(), a.subjectVersion(userID), scopeKey{subject: userID, org: orgID, project: projectID})
	if err != nil {
		return nil, apierr.Internalf("permissions: %w", err)
	}
	return slices.Clone(gs.patterns), nil
}

// Assignments returns userID's role assignments in orgID.
func (a *Authorizer) Assignments(ctx context.Context, userID, orgID string) ([]Assignment, error) {
	as, err := a.store.ListAssignments(ctx, userID, orgID)
	if err != nil {
		return nil, apierr.Internalf("assignments: %w", err)
	}
	if as == nil {
		as = []Assignment{}
	}
	return as, nil
}

func builtinRole(orgID, name string) Role {
	return Role{OrgID: orgID, Name: name, Description: builtinDescriptions[name],
		Permissions: PermissionsOf([]string{name}), BuiltIn: true}
}

func roleNotFound(name string) error {
	return apierr.Newf(apierr.NotFound, "role %q not found", clip(name))
}

// GetRole returns a built-in role (BuiltIn set) or a custom role of orgID.
func (a *Authorizer) GetRole(ctx context.Context, orgID, name string) (Role, error) {
	if IsBuiltinRole(name) {
		return builtinRole(orgID, name), nil
	}
	if !roleNameRE.MatchString(name) {
		return Role{}, roleNotFound(name)
	}
	r, err := a.store.GetRole(ctx, orgID, name)
	if errors.Is(err, ErrNotFound) {
		return Role{}, roleNotFound(name)
	}
	if err != nil {
		return Role{}, apierr.Internalf("get role: %w", err)
	}
	return r, nil
}

// ListRoles returns the built-in roles, then orgID's custom roles by name.
func (a *Authorizer) ListRoles(ctx context.Context, orgID string) ([]Role, error) {
	custom, err := a.store.ListRoles(ctx, orgID)
	if err != nil {
		return nil, apierr.Internalf("list roles: %w", err)
	}
	out := make([]Role, 0, len(BuiltinRoles())+len(custom))
	for _, name := range BuiltinRoles() {
		out = append(out, builtinRole(orgID, name))
	}
	return append(out, custom...), nil
}

// CreateRole validates and stores a custom role and returns it as stored (permissions sorted
// and de-duplicated, conditions in canonical form, CreatedAt set). The name is
// ^[a-z][a-z0-9_-]{1,63}$ and not a built-in's; 1 to 64 valid patterns; a description of at
// most 256 characters. A name taken in the organization is CONFLICT.
func (a *Authorizer) CreateRole(ctx context.Context, r Role) (Role, error) {
	if r.OrgID == "" {
		return Role{}, apierr.Field("org_id", "is required")
	}
	if IsBuiltinRole(r.Name) {
		return Role{}, apierr.Newf(apierr.Conflict, "%q is a built-in role", r.Name)
	}
	if !roleNameRE.MatchString(r.Name) {
		return Role{}, apierr.Field("name", "2 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter")
	}
	if utf8.RuneCountInString(r.Description) > MaxRoleDescriptionLen {
		return Role{}, apierr.Field("description", "at most %d characters", MaxRoleDescriptionLen)
	}
	perms, err := normalizePatterns(r.Permissions)
	if err != nil {
		return Role{}, err
	}
	cond, err := normalizeConditions(r.Conditions)
	if err != nil {
		return Role{}, err
	}
	role := Role{OrgID: r.OrgID, Name: r.Name, Description: r.Description, Permissions: perms, Conditions: cond,
		CreatedAt: a.now().UTC().Truncate(time.Millisecond)}
	if err := a.store.CreateRole(ctx, role); errors.Is(err, ErrAlreadyExists) {
		return Role{}, apierr.Newf(apierr.Conflict, "role %q already exists", r.Name)
	} else if err != nil {
		return Role{}, apierr.Internalf("create role: %w", err)
	}
	return role, a.changed(ctx, "", audit.Event{Type: audit.RoleCreated, OrgID: role.OrgID,
		Details: map[string]any{"role": role.Name, "permissions": role.Permissions}})
}

func normalizePatterns(perms []string) ([]string, error) {
	if len(perms) == 0 || len(perms) > MaxRolePermissions {
		return nil, apierr.Field("permissions", "a role has 1 to %d permissions", MaxRolePermissions)
	}
	out := make([]string, 0, len(perms))
	for _, p := range perms {
		if err := ValidatePattern(p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// DeleteRole deletes a custom role and then its assignments. A built-in role cannot be deleted
// (INVALID_ARGUMENT). Should the assignments' deletion fail after the role's, the leftovers grant
// nothing (an assignment of a missing role is ignored); deleting the role again (NOT_FOUND) does
// not remove them, so the error is INTERNAL and names the step.
func (a *Authorizer) DeleteRole(ctx context.Context, orgID, name string) error {
	if IsBuiltinRole(name) {
		return apierr.Field("name", "the built-in role %q cannot be deleted", name)
	}
	if !roleNameRE.MatchString(name) {
		return roleNotFound(name)
	}
	if err := a.store.DeleteRole(ctx, orgID, name); errors.Is(err, ErrNotFound) {
		return roleNotFound(name)
	} else if err != nil {
		return apierr.Internalf("delete role: %w", err)
	}
	_, delErr := a.store.DeleteRoleAssignments(ctx, orgID, name)
	bumpErr := a.changed(ctx, "", audit.Event{Type: audit.RoleDeleted, Severity: audit.Warning, OrgID: orgID,
		Details: map[string]any{"role": name}})
	if delErr != nil {
		return apierr.Internalf("role deleted, its assignments not: %w", delErr)
	}
	return bumpErr
}

// Assign gives a user a role (built-in or custom, which must exist: NOT_FOUND otherwise) in an
// organization, optionally only in one project. The same assignment twice is CONFLICT.
func (a *Authorizer) Assign(ctx context.Context, as Assignment) error {
	if err := requireUserOrg(as.UserID, as.OrgID); err != nil {
		return err
	}
	custom := !IsBuiltinRole(as.Role)
	as.CreatedAt = a.now().UTC().Truncate(time.Millisecond)
	if custom {
		role, err := a.GetRole(ctx, as.OrgID, as.Role)
		if err != nil {
			return err
		}
		// Never older than the role (an instance whose clock is behind): an assignment older
		// than its role is one of an earlier role of that name, and grants nothing.
		if as.CreatedAt.Before(role.CreatedAt) {
			as.CreatedAt = role.CreatedAt
		}
		if err := a.replaceStale(ctx, as, role); err != nil {
			return err
		}
	}
	if err := a.store.Assign(ctx, as); errors.Is(err, ErrAlreadyExists) {
		return apierr.New(apierr.Conflict, "the user already has this role here")
	} else if err != nil {
		return apierr.Internalf("assign: %w", err)
	}
	if custom {
		// A DeleteRole racing this Assign may have swept the role's assignments just before the
		// insert: look again, and take the assignment back if the role is gone.
		if _, err := a.store.GetRole(ctx, as.OrgID, as.Role); errors.Is(err, ErrNotFound) {
			if err := a.store.Unassign(ctx, as); err != nil && !errors.Is(err, ErrNotFound) {
				_ = a.changed(ctx, as.UserID) // the assignment stays (granting nothing while the role is missing)
				return apierr.Internalf("undo assignment of a deleted role: %w", err)
			}
			return roleNotFound(as.Role)
		}
	}
	return a.changed(ctx, as.UserID, audit.Event{Type: audit.RoleAssigned, Subject: as.UserID, OrgID: as.OrgID,
		Details: map[string]any{"role": as.Role, "project_id": as.ProjectID}})
}

// replaceStale takes back an assignment like as that is older than role: one of an earlier
// role of the name that deleting it left behind (its sweep failed), which grants nothing and
// would otherwise make assigning the new role a CONFLICT.
func (a *Authorizer) replaceStale(ctx context.Context, as Assignment, role Role) error {
	held, err := a.store.ListAssignments(ctx, as.UserID, as.OrgID)
	if err != nil {
		return apierr.Internalf("assign: %w", err)
	}
	for _, h := range held {
		if h.Role == as.Role && h.ProjectID == as.ProjectID && h.CreatedAt.Before(role.CreatedAt) {
			if err := a.store.Unassign(ctx, h); err != nil && !errors.Is(err, ErrNotFound) {
				return apierr.Internalf("assign: take back a stale assignment: %w", err)
			}
		}
	}
	return nil
}

// Unassign takes a role assignment back (matched on user, org, role and project; NOT_FOUND if
// there is none).
func (a *Authorizer) Unassign(ctx context.Context, as Assignment) error {
	if err := requireUserOrg(as.UserID, as.OrgID); err != nil {
		return err
	}
	if err := a.store.Unassign(ctx, as); errors.Is(err, ErrNotFound) {
		return apierr.New(apierr.NotFound, "no such role assignment")
	} else if err != nil {
		return apierr.Internalf("unassign: %w", err)
	}
	return a.changed(ctx, as.UserID, audit.Event{Type: audit.RoleRevoked, Severity: audit.Warning, Subject: as.UserID, OrgID: as.OrgID,
		Details: map[string]any{"role": as.Role, "project_id": as.ProjectID}})
}

// AddGrant gives a user one valid permission pattern directly in an organization (CONFLICT if
// the user has that very grant already).
func (a *Authorizer) AddGrant(ctx context.Context, g Grant) error {
	if err := requireUserOrg(g.UserID, g.OrgID); err != nil {
		return err
	}
	if err := ValidatePattern(g.Permission); err != nil {
		return err
	}
	g.CreatedAt = a.now().UTC().Truncate(time.Millisecond)
	if err := a.store.AddGrant(ctx, g); errors.Is(err, ErrAlreadyExists) {
		return apierr.New(apierr.Conflict, "the user already has this grant")
	} else if err != nil {
		return apierr.Internalf("add grant: %w", err)
	}
	return a.changed(ctx, g.UserID, audit.Event{Type: audit.PermissionGranted, Subject: g.UserID, OrgID: g.OrgID,
		Details: map[string]any{"permission": g.Permission}})
}

// RemoveGrant takes a direct grant back (NOT_FOUND if there is none).
func (a *Authorizer) RemoveGrant(ctx context.Context, g Grant) error {
	if err := requireUserOrg(g.UserID, g.OrgID); err != nil {
		return err
	}
	if err := a.store.RemoveGrant(ctx, g); errors.Is(err, ErrNotFound) {
		return apierr.New(apierr.NotFound, "no such grant")
	} else if err != nil {
		return apierr.Internalf("remove grant: %w", err)
	}
	return a.changed(ctx, g.UserID, audit.Event{Type: audit.PermissionRevoked, Severity: audit.Warning, Subject: g.UserID, OrgID: g.OrgID,
		Details: map[string]any{"permission": g.Permission}})
}

// EraseUser removes every assignment and grant of userID in every organization, their history
// included (the erasure of an account; take its roles back with Unassign first, so that each
// is audited). The user's cached decisions go stale at once.
func (a *Authorizer) EraseUser(ctx context.Context, userID string) error {
	if userID == "" {
		return apierr.Field("user_id", "is required")
	}
	if err := a.store.EraseUser(ctx, userID); err != nil {
		return apierr.Internalf("erase assignments: %w", err)
	}
	return a.changed(ctx, userID)
}

func requireUserOrg(userID, orgID string) error {
	if userID == "" {
		return apierr.Field("user_id", "is required")
	}
	if orgID == "" {
		return apierr.Field("org_id", "is required")
	}
	return nil
}

// changed records a change that has been stored: what this Authorizer cached of it goes stale at
// once, and the shared version is bumped so that every instance's does. A change of one
// subject's assignments or grants (subject set) bumps only that subject's version: every other
// subject's decisions stay cached. A change of a role (subject "") bumps the version of all.
// If the bump fails the change has still happened (it is in the store) but other instances may
// not see it until their next version change: the error is INTERNAL and says so.
//
// Each event is recorded durably first: a role change is not done until its record is.
func (a *Authorizer) changed(ctx context.Context, subject string, events ...audit.Event) error {
	bump := a.versions.Bump
	if subject != "" {
		a.bumpOwn(subject)
		bump = func(ctx context.Context) error { return a.versions.BumpSubject(ctx, subject) }
	} else {
		a.local.Add(1)
	}
	var auditErr error
	if rec := a.recorder; rec != nil {
		for _, e := range events {
			if err := rec.RecordDurable(ctx, e); err != nil && auditErr == nil {
				auditErr = apierr.New(apierr.Internal, "the change was saved, but its audit record was not").Wrap(err)
			}
		}
	}
	if err := bump(ctx); err != nil {
		return apierr.New(apierr.Internal, "the change was saved, but other instances may not see it yet").Wrap(err)
	}
	return auditErr
}
