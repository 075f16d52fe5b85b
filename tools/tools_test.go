package tools_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/auth"
	mcpauth "github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
	"github.com/bduf/mcpauth/tools"
)

// Building the tools derives every tool's schema and checks from its argument tags: a
// malformed tag or an unknown limit panics here, not in production.
func TestShouldBuildEveryTool(t *testing.T) {
	list := allTools()
	if len(list) == 0 {
		t.Fatal("no tools")
	}
	for _, st := range list {
		if st.Handler == nil || st.Tool.Description == "" || st.Tool.InputSchema.Type != "object" {
			t.Errorf("%s: incomplete declaration: %+v", st.Tool.Name, st.Tool)
		}
	}
}

// The guard's policy comes from the same declarations as the tools: one rule per tool, no rule
// without a tool, each a rule the guard accepts. A tool without a rule would be denied to
// everyone (CheckTools names it).
func TestShouldGiveEveryToolExactlyOneRule(t *testing.T) {
	list := allTools()
	names := make([]string, len(list))
	for i, st := range list {
		names[i] = st.Tool.Name
	}
	p := tools.Policy()
	if ruled := slices.Sorted(maps.Keys(p.Tools)); !slices.Equal(ruled, slices.Sorted(slices.Values(names))) {
		t.Fatalf("rules for %v, tools %v", ruled, names)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"initialize", "ping", "tools/list"}; !slices.Equal(p.AnonymousMethods, want) {
		t.Errorf("anonymous methods %v, want %v", p.AnonymousMethods, want)
	}
	g, err := mcpauth.NewGuard(mcpauth.GuardConfig{Logger: slog.New(slog.DiscardHandler), Auth: (*auth.Service)(nil), Authz: noAuthz{}, Policy: p})
	if err != nil {
		t.Fatal(err)
	}
	if unruled := g.CheckTools(mcpauth.NewServer("mcpauth", "test", g, list...)); len(unruled) > 0 {
		t.Errorf("tools without a rule, denied to everyone: %v", unruled)
	}
}

type noAuthz struct{}

func (noAuthz) Decide(_ context.Context, _ rbac.Credential, _ rbac.Request) rbac.Decision {
	return rbac.Decision{}
}

// toolError is a refused call's error.
type toolError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

// call calls tool with raw arguments through its real handler (decoding, the declared checks,
// the handler) on a tool set without services or caller: a call whose arguments pass the
// checks ends in the handler, UNAUTHENTICATED for want of a caller.
func call(t *testing.T, byName map[string]server.ToolHandlerFunc, tool, raw string) toolError {
	t.Helper()
	h, ok := byName[tool]
	if !ok {
		t.Fatalf("no tool %s", tool)
	}
	var req mcp.CallToolRequest
	req.Params.Name, req.Params.RawArguments = tool, json.RawMessage(raw)
	res, err := h(t.Context(), req)
	if err != nil || !res.IsError {
		t.Fatalf("%s(%s) = %+v, %v: want a refusal", tool, raw, res, err)
	}
	b, _ := json.Marshal(res.StructuredContent)
	var body struct {
		Error toolError `json:"error"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	return body.Error
}

// The checks derived from the argument tags, through the handler wrapper: presence, lengths in
// characters (as the schema's maxLength counts them, not bytes), list sizes and items, number
// ranges, enums, embedded structs' fields and an object argument's fields. Their messages are
// the ones the handlers wrote by hand before.
func TestShouldCheckArgumentsAsTheirTagsDeclare(t *testing.T) {
	byName := map[string]server.ToolHandlerFunc{}
	for _, st := range allTools() {
		byName[st.Tool.Name] = st.Handler
	}
	js := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	perms := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "projects:read"
		}
		return out
	}
	key := func(extra map[string]any) string { // apikey_create's arguments, valid unless changed
		a := map[string]any{"name": "ci", "permissions": []string{"projects:read"}}
		maps.Copy(a, extra)
		return js(a)
	}
	passes := toolError{Code: "UNAUTHENTICATED"} // the handler was reached: it found no caller
	field := func(name, msg string) toolError {
		return toolError{Code: "INVALID_ARGUMENT", Field: name, Message: name + ": " + msg}
	}
	tests := []struct {
		name string
		tool string
		args string
		want toolError
	}{
		{"a valid call reaches the handler", "apikey_create", key(nil), passes},
		{"a required argument missing", "apikey_create", `{"permissions":["projects:read"]}`, field("name", "is required")},
		{"a required argument empty", "apikey_create", key(map[string]any{"name": ""}), field("name", "is required")},
		{"at the limit in three-byte characters (300 bytes)", "apikey_create", key(map[string]any{"name": strings.Repeat("名", 100)}), passes},
		{"one character past the limit", "apikey_create", key(map[string]any{"name": strings.Repeat("名", 101)}), field("name", "must be at most 100 characters")},
		{"at the limit in ASCII", "apikey_create", key(map[string]any{"name": strings.Repeat("a", 100)}), passes},
		{"a list missing", "apikey_create", `{"name":"ci"}`, field("permissions", "give 1 to 64 permissions")},
		{"a list empty", "apikey_create", key(map[string]any{"permissions": []string{}}), field("permissions", "give 1 to 64 permissions")},
		{"a list at its limit", "apikey_create", key(map[string]any{"permissions": perms(64)}), passes},
		{"a list with too many items", "apikey_create", key(map[string]any{"permissions": perms(65)}), field("permissions", "give 1 to 64 permissions")},
		{"a list item too long", "apikey_create", key(map[string]any{"permissions": []string{"projects:" + strings.Repeat("r", 120)}}),
			field("permissions", "each must be at most 128 characters")},
		{"a list without a minimum, too long", "user_create", js(map[string]any{"email": "a@b.c", "password": "pw", "roles": perms(65)}),
			field("roles", "at most 64 roles")},
		{"an embedded struct's field (step-up password)", "apikey_create", key(map[string]any{"password": strings.Repeat("p", 73)}),
			field("password", "must be at most 72 characters")},
		{"an embedded struct's field (org_id)", "role_list", js(map[string]any{"org_id": strings.Repeat("o", 65)}),
			field("org_id", "must be at most 64 characters")},
		{"what the tags cannot say is the handler's", "apikey_create", key(map[string]any{"mfa_code": "123456"}),
			field("password", "is required with mfa_code")},
		{"a number below its minimum", "user_list", `{"limit":0}`, field("limit", "must be between 1 and 200")},
		{"a number above its maximum", "audit_query", `{"limit":501}`, field("limit", "must be between 1 and 500")},
		{"a number at its maximum", "user_list", `{"limit":200}`, passes},
		{"a fraction for an integer", "user_list", `{"limit":1.5}`, field("limit", "must be of type integer, not number 1.5")},
		{"an enum's other value", "mfa_enroll", `{"method":"sms"}`, field("method", `must be "totp"`)},
		{"an enum missing", "mfa_enroll", `{}`, field("method", "is required")},
		{"an object argument missing", "user_update", `{"id":"usr_1"}`, field("fields", "is required")},
		{"an object argument null", "user_update", `{"id":"usr_1","fields":null}`, field("fields", "is required")},
		{"an object argument without properties", "user_update", `{"id":"usr_1","fields":{}}`,
			field("fields", "give at least one of email, username, disabled")},
		{"an object argument's field too long", "user_update", js(map[string]any{"id": "usr_1", "fields": map[string]any{"username": strings.Repeat("u", 65)}}),
			field("fields.username", "must be at most 64 characters")},
		{"an object argument's unknown field", "user_update", `{"id":"usr_1","fields":{"role":"owner"}}`,
			field("fields.role", "is not a field user_update can change (email, username, disabled)")},
		{"an object argument's field of the wrong type", "user_update", `{"id":"usr_1","fields":{"disabled":"yes"}}`,
			field("fields.disabled", "must be a boolean")},
		{"an object argument's field null", "user_update", `{"id":"usr_1","fields":{"email":null}}`,
			field("fields.email", "must be a string")},
		{"the login password missing", "auth_login", `{"email":"ada@example.com"}`, field("password", "is required")},
		{"a token too long", "auth_validate", js(map[string]any{"token": strings.Repeat("t", 8193)}), field("token", "must be at most 8192 characters")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := call(t, byName, tt.tool, tt.args)
			if tt.want == passes {
				got.Message = ""
			}
			if got != tt.want {
				t.Fatalf("%s: %+v, want %+v", tt.tool, got, tt.want)
			}
		})
	}
}
