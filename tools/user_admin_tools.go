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
	"slices"
	"strings"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/call"
	"github.com/bduf/mcpauth/rbac"
)

// updatableFields are the keys of user_update's fields.
var updatableFields = []string{"email", "username", "disabled"}

type userUpdateArgs struct {
	ID     string          `json:"id"`
	Fields json.RawMessage `json:"fields"`
	stepUpArgs
}

func (s *Set) userUpdate(ctx context.Context, a userUpdateArgs) (any, error) {
	if err := requireString("id", a.ID, maxIDArg); err != nil {
		return nil, err
	}
	ch, err := parseUserFields(a.Fields)
	if err != nil {
		return nil, err
	}
	if err := a.stepUpArgs.check(); err != nil {
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
		if err := s.stepUp(ctx, caller, a.stepUpArgs, "user_update"); err != nil {
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

// parseUserFields checks user_update's fields: an object with at least one of email, username
// (normalized and validated as at creation) and disabled, and nothing else.
func parseUserFields(raw json.RawMessage) (auth.UserChanges, error) {
	var ch auth.UserChanges
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return ch, apierr.Field("fields", "is required: an object with any of email, username, disabled")
	}
	var m map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return ch, apierr.Field("fields", "must be an object with any of email, username, disabled")
	}
	if len(m) == 0 {
		return ch, apierr.Field("fields", "give at least one of email, username, disabled")
	}
	keys := slices.Sorted(maps.Keys(m))
	for _, k := range keys {
		if !slices.Contains(updatableFields, k) {
			return ch, apierr.Field("fields."+truncate(k, maxIDArg), "is not a field user_update can change (email, username, disabled)")
		}
	}
	for _, k := range keys {
		field, v := "fields."+k, bytes.TrimSpace(m[k])
		switch k {
		case "email", "username":
			var str string
			if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &str) != nil {
				return ch, apierr.Field(field, "must be a string")
			}
			if err := maxString(field, str, maxIdentifier); err != nil {
				return ch, err
			}
			if k == "email" {
				email, err := auth.NormalizeEmail(field, str)
				if err != nil {
					return ch, err
				}
				ch.Email = &email
			} else {
				username, err := auth.NormalizeUsername(field, str)
				if err != nil {
					return ch, err
				}
				ch.Username = &username
			}
		case "disabled":
			var b bool
			if (!bytes.Equal(v, []byte("true")) && !bytes.Equal(v, []byte("false"))) || json.Unmarshal(v, &b) != nil {
				return ch, apierr.Field(field, "must be a boolean")
			}
			ch.Disabled = &b
		}
	}
	return ch, nil
}

type userDeleteArgs struct {
	ID    string `json:"id"`
	Erase bool   `json:"erase"`
}

func (s *Set) userDelete(ctx context.Context, a userDeleteArgs) (any, error) {
	if err := requireString("id", a.ID, maxIDArg); err != nil {
		return nil, err
	}
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
	if err := s.auth.DeleteUser(ctx, target.ID, auth.DeleteUserOptions{Erase: a.Erase, Deprovision: s.unassignAll}); err != nil {
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
	ID              string `json:"id"`
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
	MFACode         string `json:"mfa_code"`
	RevokeAPIKeys   bool   `json:"revoke_api_keys"`
}

func (s *Set) userSetPassword(ctx context.Context, a userSetPasswordArgs) (any, error) {
	if err := maxString("id", a.ID, maxIDArg); err != nil {
		return nil, err
	}
	if err := maxString("current_password", a.CurrentPassword, maxSecretArg); err != nil {
		return nil, err
	}
	if err := requireString("new_password", a.NewPassword, maxSecretArg); err != nil {
		return nil, err
	}
	if err := maxString("mfa_code", a.MFACode, maxMFACode); err != nil {
		return nil, err
	}
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
