// Package mcp assembles mcpauth's MCP server and its transports: stdio, SSE and streamable
// HTTP on one listener, with /healthz, /readyz, /metrics and the JWKS beside them; and the
// Guard, which authenticates and authorizes every tool call of any mcp-go server (tool
// middleware, tool filter, HTTP bearer middleware with RFC 9728 challenges).
//
// It reads credentials only from the Authorization header (HTTP) or the process environment
// (stdio) and never from a query string. The guard fails closed: an unmapped tool, an error or
// a panic is a deny.
package mcp
