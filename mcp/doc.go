// Package mcp assembles mcpauth's MCP server and its transports: stdio, SSE and streamable
// HTTP on one listener, with /healthz and the JWKS beside them. (The Guard — tool middleware,
// tool filter, HTTP bearer middleware — lands here with the RBAC issue.)
//
// It reads credentials only from the Authorization header (HTTP) or the process environment
// (stdio) and never from a query string.
package mcp
