package tools

import (
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/rbac"
)

// The tools' own argument bounds, for values whose domain package has no limit to give:
// generous for real values, tight enough that junk is refused before work.
const (
	maxTokenArg    = 8192 // an access token (a JWT), a refresh token, an API key
	maxIDArg       = 64   // an id or a name: user, organization, project, role, resource, action, event type
	maxListArg     = 64   // the roles of user_create
	maxTimeArg     = 64   // an RFC 3339 time
	maxUserCursor  = 128  // user_list's next_cursor
	maxAuditCursor = 256  // audit_query's next_cursor
)

// limits are the bounds an argument's tag names: max:"password" on a string is its maxLength,
// on a list its maxItems, on a number its maximum; itemmax:"permission" is the maxLength of each
// item of a list. This table is the one place a tool's limit is written, and it says where the
// limit comes from: the domain packages' constants first. A name not in it is a programming
// error, found when the tools are built (argsOf panics; TestShouldBuildEveryTool).
var limits = map[string]int{
	// auth
	"password":           password.MaxBytes, // bytes for bcrypt; a longer password in characters is longer in bytes
	"apikey_name":        apikey.MaxName,
	"apikey_permissions": apikey.MaxPermissions,
	"page_size":          auth.MaxPageSize,
	"identifier":         auth.MaxEmailLen, // an email, a login identifier (a username is shorter), a filter on them
	"username":           auth.MaxUsernameLen,
	"mfa_code":           mfa.MaxCode,
	// rbac
	"permission":       rbac.MaxPatternLen,
	"role_permissions": rbac.MaxRolePermissions,
	"role_description": rbac.MaxRoleDescriptionLen,
	// audit
	"audit_page_size": audit.MaxQueryLimit,
	// tools
	"token":        maxTokenArg,
	"id":           maxIDArg,
	"list":         maxListArg,
	"time":         maxTimeArg,
	"user_cursor":  maxUserCursor,
	"audit_cursor": maxAuditCursor,
}
