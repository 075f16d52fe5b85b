package tools

// user_update, user_delete and user_set_password: account administration. The guard checks the
// tool's permission (users:write, users:admin, authenticated); the handlers check what depends
// on the arguments: users:admin for disabling or for another user's password, the target in
// the caller's organization (NOT_FOUND otherwise, as user_get), and no escalation (the caller
// holds every permission of the target). Every argument is checked before anything changes.

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/call"
	"github.com/bduf/mcpauth/rbac"
)

type userUpdateArgs struct {
	userIDArgs
	Fields   userFields `json:"fields" desc:"The fields to change, at least one: email, username, disabled." required:"true" min:"1"`
	Password string     `json:"password" desc:"Changing your own email: your current password, unless you logged in within the last few minutes." max:"password"`
	stepUpMFACode
}

func (a userUpdateArgs) stepUp() stepUpArgs {
	return stepUpArgs{stepUpPassword: stepUpPassword{Password: a.Password}, stepUpMFACode: a.stepUpMFACode}
}

func (s *Set) userUpdate(ctx context.Context, a userUpdateArgs) (any, error) {
	ch, err := a.Fields.changes()
	if err != nil {
		return nil, err
	}
	if err := a.stepUp().check(); err != nil {
		return nil, err
	}
	caller, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	org, _ := callerOrg(caller, "")
	if ch.Disabled != nil {
		if err := s.requirePermission(ctx, caller, org, "users:admin", "disabling or enabling a user needs users:admin"); err != nil {
			return nil, err
		}
		if *ch.Disabled && a.ID == caller.User.ID {
			return nil, apierr.Field("fields.disabled", "you cannot disable your own account")
		}
	}
	target, err := s.manageable(ctx, caller, org, a.ID)
	if err != nil {
		return nil, err
	}
	if target.ID == caller.User.ID && ch.Email != nil && *ch.Email != target.Email {
		// One's own email is where the account is reached: a credential change.
		if err := s.stepUp(ctx, caller, a.stepUp(), "user_update"); err != nil {
			return nil, err
		}
	}
	u, changed, err := s.auth.UpdateUser(ctx, target.ID, ch)
	if err != nil {
		return nil, err
	}
	view, err := s.view(ctx, u)
	if err != nil {
		return nil, err
	}
	return map[string]any{"user": view, "changed": changed}, nil
}

// userFields are user_update's fields. Which of them are given matters (a null email is not an
// absent one), so the type decodes itself: an object of its fields only, each of its type, each
// error naming the field (fields.email). Their lengths are then checked as declared here, and
// changes normalizes them as at creation.
type userFields struct {
	Email    *string `json:"email" desc:"New email address (unique, case-insensitive)." max:"identifier"`
	Username *string `json:"username" desc:"New username: 3-64 of a-z 0-9 . _ - (unique)." max:"username"`
	Disabled *bool   `json:"disabled" desc:"true disables the account (needs users:admin), false enables it again."`
	given    bool    // an object was sent (null is none)
}

var userFieldsArgs = sync.OnceValue(func() *argSpec { return argsOf(reflect.TypeFor[userFields]()) })

func (f *userFields) UnmarshalJSON(raw []byte) error {
	spec := userFieldsArgs()
	names := strings.Join(spec.names(), ", ")
	raw = bytes.TrimSpace(raw)
	if bytes.Equal(raw, []byte("null")) { // as if absent
		return nil
	}
	var m map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return apierr.Field("fields", "must be an object with any of %s", names)
	}
	*f = userFields{given: true}
	keys := slices.Sorted(maps.Keys(m))
	at := make([]argField, len(keys))
	for i, k := range keys {
		n := slices.IndexFunc(spec.fields, func(a argField) bool { return a.name == k })
		if n < 0 {
			return apierr.Field("fields."+truncate(k, maxIDArg), "is not a field user_update can change (%s)", names)
		}
		at[i] = spec.fields[n]
	}
	v := reflect.ValueOf(f).Elem()
	for i, k := range keys {
		dst := v.FieldByIndex(at[i].index) // a pointer: given is non-nil
		val := reflect.New(dst.Type().Elem())
		if b := bytes.TrimSpace(m[k]); bytes.Equal(b, []byte("null")) || json.Unmarshal(b, val.Interface()) != nil {
			return apierr.Field("fields."+k, "must be a %s", jsonType(val.Elem().Kind().String()))
		}
		dst.Set(val)
	}
	return nil
}

// changes normalizes and validates the email and username given, as at creation.
func (f userFields) changes() (auth.UserChanges, error) {
	ch := auth.UserChanges{Disabled: f.Disabled}
	if f.Email != nil {
		email, err := auth.NormalizeEmail("fields.email", *f.Email)
		if err != nil {
			return ch, err
		}
		ch.Email = &email
	}
	if f.Username != nil {
		username, err := auth.NormalizeUsername("fields.username", *f.Username)
		if err != nil {
			return ch, err
		}
		ch.Username = &username
	}
	return ch, nil
}

type userDeleteArgs struct {
	userIDArgs
	Erase bool `json:"erase" desc:"Also remove every stored record of the user (sessions, refresh tokens, API key records, second factor)."`
}

func (s *Set) userDelete(ctx context.Context, a userDeleteArgs) (any, error) {
	caller, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	org, _ := callerOrg(caller, "")
	if a.ID == caller.User.ID {
		return nil, apierr.Field("id", "you cannot delete your own account")
	}
	target, err := s.manageable(ctx, caller, org, a.ID)
	if err != nil {
		return nil, err
	}
	deprovision := s.unassignAll
	if a.Erase { // and the history of its roles with the rest of its records
		deprovision = func(ctx context.Context, u auth.User) error {
			if err := s.unassignAll(ctx, u); err != nil {
				return err
			}
			return s.authz.EraseUser(ctx, u.ID)
		}
	}
	if err := s.auth.DeleteUser(ctx, target.ID, auth.DeleteUserOptions{Erase: a.Erase, Deprovision: deprovision}); err != nil {
		return nil, err
	}
	return map[string]any{"deleted": true}, nil
}

// unassignAll takes back every role assignment of u in its organization (each is audited as a
// ROLE_REVOKED by rbac).
func (s *Set) unassignAll(ctx context.Context, u auth.User) error {
	as, err := s.authz.Assignments(ctx, u.ID, u.OrgID)
	if err != nil {
		return err
	}
	for _, a := range as {
		if err := s.authz.Unassign(ctx, a); err != nil && apierr.CodeOf(err) != apierr.NotFound {
			return err
		}
	}
	return nil
}

type userSetPasswordArgs struct {
	CurrentPassword string `json:"current_password" desc:"The caller's current password (to change its own)." max:"password"`
	NewPassword     string `json:"new_password" desc:"The new password." required:"true" max:"password"`
	MFACode         string `json:"mfa_code" desc:"Changing your own password with MFA on: a TOTP code or a recovery code." max:"mfa_code"`
	ID              string `json:"id" desc:"Another user's id (usr_...), for an administrator's reset." max:"id"`
	RevokeAPIKeys   bool   `json:"revoke_api_keys" desc:"Also revoke every API key of the user whose password is set."`
}

func (s *Set) userSetPassword(ctx context.Context, a userSetPasswordArgs) (any, error) {
	caller, err := callerFrom(ctx)
	if err != nil {
		return nil, err
	}
	if a.ID == "" || a.ID == caller.User.ID {
		// One's own password: only with the current one, even for an administrator (a stolen
		// token must not be enough to take the account over).
		if a.CurrentPassword == "" {
			return nil, apierr.Field("current_password", "is required to change your own password")
		}
		n, err := s.auth.ChangePassword(ctx, caller.Claims, auth.Proof{Password: auth.Secret(a.CurrentPassword), MFACode: auth.Secret(a.MFACode)},
			auth.Secret(a.NewPassword))
		if err != nil {
			return nil, err
		}
		return s.passwordSet(ctx, caller.User.ID, n, a.RevokeAPIKeys)
	}
	if a.CurrentPassword != "" || a.MFACode != "" {
		return nil, apierr.Field("current_password", "is only for changing your own password; an administrator sets another user's with id and new_password")
	}
	org, _ := callerOrg(caller, "")
	if err := s.requirePermission(ctx, caller, org, "users:admin", "setting another user's password needs users:admin"); err != nil {
		return nil, err
	}
	target, err := s.manageable(ctx, caller, org, a.ID)
	if err != nil {
		return nil, err
	}
	n, err := s.auth.ResetPassword(ctx, target.ID, auth.Secret(a.NewPassword))
	if err != nil {
		return nil, err
	}
	return s.passwordSet(ctx, target.ID, n, a.RevokeAPIKeys)
}

// passwordSet is user_set_password's result, once the user's keys are revoked if asked.
func (s *Set) passwordSet(ctx context.Context, userID string, sessions int, revokeKeys bool) (any, error) {
	out := map[string]any{"ok": true, "sessions_revoked": sessions}
	if revokeKeys {
		n, err := s.auth.RevokeAPIKeysOf(ctx, userID)
		if err != nil {
			return nil, err
		}
		out["api_keys_revoked"] = n
	}
	return out, nil
}

// requirePermission checks, in the handler, a permission the guard's rule for the tool does not
// cover, with rbac's effective-permission rule (the caller's scopes ∩ its live grants, conditions
// evaluated for this request). Otherwise PERMISSION_DENIED naming it.
func (s *Set) requirePermission(ctx context.Context, caller Caller, org, perm, why string) error {
	res, act, _ := strings.Cut(perm, ":")
	d := s.authz.Decide(ctx, caller.Credential(), rbac.Request{Resource: res, Action: act, OrgID: org,
		Attributes: rbac.Attributes{SourceIP: call.ClientAddr(ctx)}})
	if !d.Allowed {
		return apierr.New(apierr.PermissionDenied, why).With("required_permissions", []string{perm})
	}
	return nil
}

// manageable returns the user id if the caller may administer it: the user is in the caller's
// organization (otherwise NOT_FOUND, as user_get) and holds no permission the caller's
// credential does not hold (otherwise PERMISSION_DENIED: an admin cannot disable, delete or
// reset an owner, nor a narrowed API key a user with more than the key carries).
func (s *Set) manageable(ctx context.Context, caller Caller, org, id string) (auth.User, error) {
	u, err := s.orgUser(ctx, org, id)
	if err != nil || u.ID == caller.User.ID { // oneself: what can be done to it is checked by each tool
		return u, err
	}
	excess, err := s.authz.ExcessOver(ctx, caller.Credential(), org, u.ID)
	if err != nil {
		return auth.User{}, err
	}
	if len(excess) > 0 {
		return auth.User{}, apierr.New(apierr.PermissionDenied, "you can only manage users whose permissions you hold yourself").
			With("excess_permissions", excess).With("required_permissions", excess)
	}
	return u, nil
}
