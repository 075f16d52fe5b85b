// Package tools defines mcpauth's MCP tools: for each, its input schema and a thin handler that
// decodes and validates the arguments, resolves the caller, calls auth (later rbac and audit)
// and renders the result. It holds no authentication logic of its own, and no authorization
// rule: what a caller may do with its arguments is asked of rbac with the caller's credential
// (Caller.Credential: the user narrowed to its token's scopes or its API key's permissions).
//
// Every failure is a tool result with isError and {"error": {"code", "message", ...}}, using
// the apierr codes; JSON-RPC errors stay for protocol faults. A handler never panics outward.
package tools
