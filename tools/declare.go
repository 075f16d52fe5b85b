package tools

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	mcpauth "github.com/bduf/mcpauth/mcp"
)

// tool is one of mcpauth's tools, declared once: its name, description, annotations, the rule
// the guard holds a caller to, and its handler, whose argument struct's tags declare the
// arguments (args.go). The published input schema, the checks run before the handler and the
// guard's policy (Policy) are all derived from it.
type tool struct {
	Name        string
	Description string
	// Rule is what the guard requires of a caller. A tool without one is in no policy: denied
	// to everyone.
	Rule mcpauth.Rule
	// ReadOnly is the readOnlyHint. Destructive says destructiveHint: true, which is also
	// mcp-go's default for a tool that does not say otherwise (none says false).
	ReadOnly, Destructive bool
	// Available, when set, keeps the tool out of Tools() for a set that lacks what it needs
	// (sso_login without single sign-on): a tool that can only answer "not set up here" is
	// noise in a model's list of tools.
	Available func(*Set) bool

	args *argSpec
	bind func(*Set) server.ToolHandlerFunc // the handler, bound to a tool set
}

// declare completes the declaration t with its handler h (a method expression, (*Set).login):
// the arguments are derived from h's argument type. It panics on a malformed argument tag.
func declare[A any](t tool, h func(*Set, context.Context, A) (any, error)) tool {
	t.args = argsOf(reflect.TypeFor[A]())
	name, args := t.Name, t.args
	t.bind = func(s *Set) server.ToolHandlerFunc {
		return handler(s, name, args, func(ctx context.Context, a A) (any, error) { return h(s, ctx, a) })
	}
	return t
}

// declarations are every tool of mcpauth, in the order tools/list shows them. It panics on a
// tool without a name or description, or a name declared twice.
func declarations() []tool {
	all := slices.Concat(authTools(), ssoTools(), userTools(), roleTools(), apiKeyTools(), mfaTools(), auditTools())
	seen := make(map[string]bool, len(all))
	for _, t := range all {
		switch {
		case t.Name == "" || t.Description == "":
			panic(fmt.Sprintf("tools: a tool without a name or a description: %q", t.Name))
		case seen[t.Name]:
			panic(fmt.Sprintf("tools: %s is declared twice", t.Name))
		}
		seen[t.Name] = true
	}
	return all
}

// Tools returns every tool available in s with its handler, for server.AddTools.
func (s *Set) Tools() []server.ServerTool {
	var out []server.ServerTool
	for _, t := range declarations() {
		if t.Available == nil || t.Available(s) {
			out = append(out, server.ServerTool{Tool: t.mcpTool(), Handler: t.bind(s)})
		}
	}
	return out
}

// mcpTool is the tool as tools/list publishes it. Every tool refuses arguments it does not
// declare (additionalProperties: false) and reaches nothing outside mcpauth (openWorldHint:
// false).
func (t tool) mcpTool() mcp.Tool {
	opts := []mcp.ToolOption{mcp.WithDescription(t.Description),
		mcp.WithReadOnlyHintAnnotation(t.ReadOnly), mcp.WithOpenWorldHintAnnotation(false)}
	if t.Destructive {
		opts = append(opts, mcp.WithDestructiveHintAnnotation(true))
	}
	mt := mcp.NewTool(t.Name, opts...)
	props, order, required := t.args.properties()
	mt.InputSchema = mcp.ToolInputSchema{Type: "object", Properties: props, PropertyOrder: order,
		Required: required, AdditionalProperties: false}
	return mt
}

// Policy is the guard's policy of mcpauth's tools: the rule of each, from its declaration.
// Logging in, refreshing, validating and revoking need no prior identity (holding the token is
// the authority); the rest need an identity or permissions. Over HTTP, initialize, ping and
// tools/list may arrive without a token (tools/list then shows only the public tools).
func Policy() mcpauth.Policy { return policyOf(declarations()) }

// policyOf is the policy of the tools decls. A tool without a rule gets none: the guard denies
// it (fail closed), and CheckTools logs it at start.
func policyOf(decls []tool) mcpauth.Policy {
	p := mcpauth.Policy{Tools: make(map[string]mcpauth.Rule, len(decls)),
		AnonymousMethods: []string{"initialize", "ping", "tools/list"}}
	for _, t := range decls {
		if hasRule(t.Rule) {
			p.Tools[t.Name] = t.Rule
		}
	}
	return p
}

func hasRule(r mcpauth.Rule) bool { return r.Public || r.Authenticated || len(r.AnyOf) > 0 }
