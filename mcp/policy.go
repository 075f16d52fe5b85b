package mcp

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/bduf/mcpauth/rbac"
)

// Rule is what calling one tool takes: nothing (Public), any valid identity (Authenticated), or
// at least one of the permissions in AnyOf.
type Rule struct {
	Public        bool
	Authenticated bool
	AnyOf         []string
}

// Public lets anyone call the tool.
func Public() Rule { return Rule{Public: true} }

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
	// bearer token (e.g. initialize, tools/list). Calls of public tools may too. Default: none.
	AnonymousMethods []string `json:"anonymous_methods"`
}

// Validate checks every rule: permissions must be concrete "resource:action" (no wildcards:
// a rule names what a tool needs, patterns are for grants).
func (p Policy) Validate() error {
	for name, r := range p.Tools {
		if r.Public || r.Authenticated {
			continue
		}
		if len(r.AnyOf) == 0 {
			return fmt.Errorf("policy: tool %s: a rule needs at least one permission", name)
		}
		for _, perm := range r.AnyOf {
			res, act, ok := strings.Cut(perm, ":")
			if !ok || res == "" || act == "" || strings.Contains(perm, "*") || rbac.ValidatePattern(perm) != nil {
				return fmt.Errorf("policy: tool %s: %q is not a permission (resource:action, no wildcards)", name, perm)
			}
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
