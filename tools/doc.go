// Package tools defines mcpauth's MCP tools: for each, its declaration and a thin handler that
// resolves the caller, calls auth, rbac and audit, and renders the result. It holds no
// authentication logic of its own, and no authorization rule of its own: what a caller may do
// with its arguments is asked of rbac with the caller's credential (Caller.Credential: the user
// narrowed to its token's scopes or its API key's permissions).
//
// Each tool is declared once (declare.go): its name, description, annotations, the guard's rule
// for it (mcp.Rule) and its handler, func(ctx, args A) (any, error). The argument struct A says
// everything about the arguments in its fields' tags (args.go): name, description, required,
// limits by name from one table of the domain packages' constants (limits.go). From the
// declaration come the published input schema (Set.Tools), the checks run on the decoded
// arguments before the handler (presence, lengths in characters, list sizes, ranges, enums),
// and the guard's policy (Policy): a tool cannot be published without its rule, nor checked
// otherwise than its schema says. A malformed declaration panics when the tools are built (a
// test builds them all). What a schema cannot say (an RFC 3339 time, a permission pattern,
// "email or username, not both") the handler checks.
//
// Every failure is a tool result with isError and {"error": {"code", "message", ...}}, using
// the apierr codes; JSON-RPC errors stay for protocol faults. A handler never panics outward.
package tools
