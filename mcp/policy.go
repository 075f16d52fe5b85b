package mcp

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"sigs.k8s.io/yaml"

	"github.com/bduf/mcpauth/rbac"
)

// Rule is what calling one tool takes: nothing (Public), any valid identity (Authenticated), or
// at least one of the permissions in AnyOf.
type Rule struct {
	Public        bool
	Authenticated bool
	AnyOf         []string
	// TakesCredential marks a public tool whose own argument is the credential it acts on
	// (auth_refresh, auth_revoke, auth_logout): over HTTP its call still reaches it when the
	// bearer token failed (expired, revoked), so a client can refresh on the same connection.
	// Every other request with a failed token is answered 401.
	TakesCredential bool
}

// Public lets anyone call the tool.
func Public() Rule { return Rule{Public: true} }

// Credential lets anyone call a tool whose argument is the credential it acts on, even with a
// bearer token that failed (see Rule.TakesCredential).
func Credential() Rule { return Rule{Public: true, TakesCredential: true} }

// Authenticated lets any valid identity call the tool.
func Authenticated() Rule { return Rule{Authenticated: true} }

// Require lets an identity holding any one of perms ("resource:action") call the tool.
func Require(perms ...string) Rule { return Rule{AnyOf: perms} }

// String renders the rule as in a policy file.
func (r Rule) String() string {
	switch {
	case r.Public:
		return "public"
	case r.Authenticated:
		return "authenticated"
	default:
		return strings.Join(r.AnyOf, " or ")
	}
}

// UnmarshalJSON reads "public", "authenticated", "resource:action", or a list of permissions.
func (r *Rule) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		switch one {
		case "public":
			*r = Public()
		case "authenticated":
			*r = Authenticated()
		default:
			*r = Require(one)
		}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf(`a rule is "public", "authenticated", a permission, or a list of permissions`)
	}
	*r = Require(many...)
	return nil
}

// Policy maps tool names to rules. A tool without a rule is denied to everyone.
type Policy struct {
	Tools map[string]Rule `json:"tools"`
	// AnonymousMethods are JSON-RPC methods that may reach the server over HTTP without a
	// bearer token (e.g. initialize, tools/list). Calls of public tools may too, and
	// server/discover (the 2026-07-28 handshake) wherever initialize may. Default: none.
	AnonymousMethods []string `json:"anonymous_methods"`
	// Methods are the rules of the JSON-RPC methods the tool middleware never sees: resources/*,
	// prompts/*, completion/complete, tasks/* (see GuardedMethod). The HTTP guard refuses such a
	// method without a rule, whatever the token (default: all refused).
	Methods map[string]Rule `json:"methods"`
}

// allowsAnonymous reports whether the JSON-RPC method m may arrive without a token.
func (p Policy) allowsAnonymous(m string) bool {
	if m == string(mcpgo.MethodServerDiscover) {
		m = string(mcpgo.MethodInitialize) // the 2026-07-28 handshake goes with the older one
	}
	return slices.Contains(p.AnonymousMethods, m)
}

// Validate checks every rule: permissions must be concrete "resource:action" (no wildcards:
// a rule names what a tool needs, patterns are for grants).
func (p Policy) Validate() error {
	for m, r := range p.Methods {
		if !GuardedMethod(m) {
			return fmt.Errorf("policy: methods: %q is not a resources/, prompts/, completion/ or tasks/ method (tools have tool rules)", m)
		}
		if err := validateRule("method "+m, r); err != nil {
			return err
		}
	}
	for _, m := range p.AnonymousMethods {
		if GuardedMethod(m) {
			return fmt.Errorf("policy: anonymous_methods: %q reaches a capability: give it a public rule under methods instead", m)
		}
	}
	for name, r := range p.Tools {
		if err := validateRule("tool "+name, r); err != nil {
			return err
		}
	}
	return nil
}

// validateRule checks one rule of what (a tool, a method).
func validateRule(what string, r Rule) error {
	if r.Public || r.Authenticated {
		return nil
	}
	if len(r.AnyOf) == 0 {
		return fmt.Errorf("policy: %s: a rule needs at least one permission", what)
	}
	for _, perm := range r.AnyOf {
		res, act, ok := strings.Cut(perm, ":")
		if !ok || res == "" || act == "" || strings.Contains(perm, "*") || rbac.ValidatePattern(perm) != nil {
			return fmt.Errorf("policy: %s: %q is not a permission (resource:action, no wildcards)", what, perm)
		}
	}
	return nil
}

// Merge returns p with the rules and methods of other added (other wins on a tool in both).
func (p Policy) Merge(other Policy) Policy {
	out := Policy{Tools: make(map[string]Rule, len(p.Tools)+len(other.Tools))}
	for k, v := range p.Tools {
		out.Tools[k] = v
	}
	for k, v := range other.Tools {
		out.Tools[k] = v
	}
	if len(p.Methods)+len(other.Methods) > 0 {
		out.Methods = make(map[string]Rule, len(p.Methods)+len(other.Methods))
		maps.Copy(out.Methods, p.Methods)
		maps.Copy(out.Methods, other.Methods)
	}
	out.AnonymousMethods = slices.Clone(p.AnonymousMethods)
	for _, m := range other.AnonymousMethods {
		if !slices.Contains(out.AnonymousMethods, m) {
			out.AnonymousMethods = append(out.AnonymousMethods, m)
		}
	}
	return out
}

// LoadPolicy reads a policy file, YAML or JSON:
//
//	anonymous_methods: [initialize, notifications/initialized, ping, tools/list]
//	tools:
//	  projects_list: projects:read
//	  auth_login: public
//	  auth_whoami: authenticated
//	  role_create: [users:admin, roles:write]
func LoadPolicy(path string) (Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	js, err := yaml.YAMLToJSON(b)
	if err != nil {
		return Policy{}, fmt.Errorf("policy %s: %w", path, err)
	}
	var p Policy
	dec := json.NewDecoder(strings.NewReader(string(js)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("policy %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}
