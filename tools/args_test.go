package tools

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/password"
	mcpauth "github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
)

type embeddedPointer struct{ *stepUpPassword }

// tagged is a struct type of one string field with tag, which the compiler would let through
// but go vet refuses in source.
func tagged(tag string) reflect.Type {
	return reflect.StructOf([]reflect.StructField{{Name: "A", Type: reflect.TypeFor[string](), Tag: reflect.StructTag(tag)}})
}

// A mistake in an argument declaration stops the tools from being built, with a message that
// says what is wrong; nothing is published or checked wrongly.
func TestShouldRefuseAMalformedArgumentDeclaration(t *testing.T) {
	tests := []struct {
		name string
		args any // a value of the arguments type, or the reflect.Type itself
		want string
	}{
		{"an unknown limit", struct {
			A string `json:"a" desc:"x" max:"nope"`
		}{}, `"nope" is not a limit of the limits table`},
		{"a limit written as a number", struct {
			A string `json:"a" desc:"x" max:"64"`
		}{}, `"64" is not a limit of the limits table`},
		{"a tag key misspelt", struct {
			A string `json:"a" desc:"x" maxx:"id"`
		}{}, "tag maxx is not one of"},
		{"a value not quoted", tagged(`json:"a" desc:"x" max:id`), "malformed tag"},
		{"a value not terminated", tagged(`json:"a" desc:"x" max:"id`), "unterminated value of max"},
		{"a tag given twice", tagged(`json:"a" desc:"x" max:"id" max:"token"`), "tag max given twice"},
		{"required other than true", struct {
			A string `json:"a" desc:"x" required:"yes"`
		}{}, `required:"yes"`},
		{"a required boolean", struct {
			A bool `json:"a" desc:"x" required:"true"`
		}{}, "cannot be told absent"},
		{"max on a boolean", struct {
			A bool `json:"a" desc:"x" max:"id"`
		}{}, "max does not apply to a bool"},
		{"itemmax on a string", struct {
			A string `json:"a" desc:"x" itemmax:"id"`
		}{}, "itemmax does not apply to a string"},
		{"min not a number", struct {
			A []string `json:"a" desc:"x" min:"one"`
		}{}, `min:"one" is not a number`},
		{"min above max", struct {
			A []string `json:"a" desc:"x" min:"100" max:"list"`
		}{}, "min 100 is above max 64"},
		{"an empty enum value", struct {
			A string `json:"a" desc:"x" enum:"totp,"`
		}{}, "has an empty value"},
		{"no description", struct {
			A string `json:"a" max:"id"`
		}{}, "needs a desc"},
		{"no json name", struct {
			A string `desc:"x"`
		}{}, "needs a json name"},
		{"an unsupported type", struct {
			A map[string]string `json:"a" desc:"x"`
		}{}, "is not an argument type"},
		{"a name given twice through an embedded struct", struct {
			Password string `json:"password" desc:"x"`
			stepUpArgs
		}{}, `two fields named "password"`},
		{"an embedded pointer", embeddedPointer{}, "must be an untagged struct"},
		{"a malformed tag in an object argument", struct {
			A struct {
				B string `json:"b" desc:"x" max:"nope"`
			} `json:"a" desc:"x"`
		}{}, `"nope" is not a limit`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tt.want) {
					t.Fatalf("argsOf panicked with %v, want a panic saying %q", r, tt.want)
				}
			}()
			typ, ok := tt.args.(reflect.Type)
			if !ok {
				typ = reflect.TypeOf(tt.args)
			}
			argsOf(typ)
		})
	}
}

// Every limit of the table is a real bound: a zero would refuse every value, or say nothing.
func TestShouldResolveEveryLimitToAPositiveBound(t *testing.T) {
	for name, n := range limits {
		if n <= 0 {
			t.Errorf("limit %s = %d", name, n)
		}
	}
	if limits["password"] != password.MaxBytes || limits["permission"] != rbac.MaxPatternLen {
		t.Errorf("the domain limits are not the domain packages' constants: %v", limits)
	}
}

// A tool declared without a rule gets none in the policy: the guard denies it to everyone, and
// says so at start (fail closed, never open).
func TestShouldLeaveAToolWithoutARuleOutOfThePolicy(t *testing.T) {
	noop := func(*Set, context.Context, noArgs) (any, error) { return "ok", nil }
	decls := []tool{
		declare(tool{Name: "ruled", Description: "x", Rule: mcpauth.Authenticated()}, noop),
		declare(tool{Name: "forgotten", Description: "x"}, noop),
	}
	p := policyOf(decls)
	if _, ok := p.Tools["forgotten"]; ok || len(p.Tools) != 1 {
		t.Fatalf("policy %+v: want only the ruled tool", p.Tools)
	}
	g, err := mcpauth.NewGuard(mcpauth.GuardConfig{Logger: slog.New(slog.DiscardHandler), Auth: (*auth.Service)(nil), Authz: denyAll{}, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	s := &Set{}
	st := make([]server.ServerTool, len(decls))
	for i, d := range decls {
		st[i] = server.ServerTool{Tool: d.mcpTool(), Handler: d.bind(s)}
	}
	if unruled := g.CheckTools(mcpauth.NewServer("test", "1", g, st...)); len(unruled) != 1 || unruled[0] != "forgotten" {
		t.Fatalf("tools the guard denies to everyone: %v, want [forgotten]", unruled)
	}
}

type denyAll struct{}

func (denyAll) Decide(context.Context, rbac.Credential, rbac.Request) rbac.Decision {
	return rbac.Decision{}
}

// The schema of an object argument of ours is derived like the tool's own (user_update's fields).
func TestShouldDeriveAnObjectArgumentsSchemaFromItsFields(t *testing.T) {
	props, _, _ := argsOf(reflect.TypeFor[userUpdateArgs]()).properties()
	b, _ := json.Marshal(props["fields"])
	var fields struct {
		Properties           map[string]map[string]any `json:"properties"`
		AdditionalProperties *bool                     `json:"additionalProperties"`
		MinProperties        int                       `json:"minProperties"`
	}
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if fields.Properties["email"]["maxLength"] != float64(auth.MaxEmailLen) || fields.Properties["disabled"]["type"] != "boolean" ||
		fields.AdditionalProperties == nil || *fields.AdditionalProperties || fields.MinProperties != 1 {
		t.Fatalf("fields schema %s", b)
	}
}
