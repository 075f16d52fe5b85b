package mcp

import (
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/bduf/mcpauth/apierr"
)

func TestShouldEchoOnlyTheIdOfASingleRequest(t *testing.T) {
	for _, tt := range []struct {
		name, body, want string
	}{
		{"a number", `{"jsonrpc":"2.0","id":42,"method":"tools/list"}`, "42"},
		{"a string", ` {"jsonrpc":"2.0","id":"a-1","method":"ping"}`, `"a-1"`},
		{"a negative number", `{"id":-3}`, "-3"},
		{"no id (a notification)", `{"jsonrpc":"2.0","method":"notifications/initialized"}`, "null"},
		{"an id that is an object", `{"id":{"x":1}}`, "null"},
		{"an id that is true", `{"id":true}`, "null"},
		{"a batch", `[{"id":1},{"id":2}]`, "null"},
		{"not JSON", `{"id":1`, "null"},
		{"no body (a GET)", ``, "null"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(requestID([]byte(tt.body))); got != tt.want {
				t.Fatalf("requestID(%s) = %s, want %s", tt.body, got, tt.want)
			}
		})
	}
}

func TestShouldRenderErrorsWithoutInternalCauses(t *testing.T) {
	res := ErrorResult(apierr.Internalf("mongo at 10.1.2.3 refused"))
	if !res.IsError {
		t.Fatal("not an error result")
	}
	body := res.StructuredContent.(map[string]any)["error"].(map[string]any)
	if body["code"] != "INTERNAL" || body["message"] != "internal error" {
		t.Fatalf("body = %v", body)
	}
	text := res.Content[0].(mcpgo.TextContent).Text
	if want := `{"error":{"code":"INTERNAL","message":"internal error"}}`; text != want {
		t.Fatalf("text = %s, want %s", text, want)
	}
}
