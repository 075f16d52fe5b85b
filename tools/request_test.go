package tools

import (
	"encoding/json"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/bduf/mcpauth/apierr"
)

func callWith(raw string) mcp.CallToolRequest {
	var req mcp.CallToolRequest
	req.Params.RawArguments = json.RawMessage(raw)
	return req
}

func TestShouldDecodeArgumentsStrictly(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		wantField string // "" with wantErr: error without a field
		wantErr   bool
	}{
		{"valid arguments", `{"email":"a@b.c","password":"pw","remember_me":true}`, "", false},
		{"no arguments at all", ``, "", false},
		{"null arguments", `null`, "", false},
		{"unknown argument is named", `{"email":"a@b.c","passwd":"x"}`, "passwd", true},
		{"wrong type is named", `{"password":123}`, "password", true},
		{"boolean as string is named", `{"remember_me":"yes"}`, "remember_me", true},
		{"an array is not an object", `["a"]`, "", true},
		{"trailing data", `{"email":"a"} {"email":"b"}`, "", true},
		{"malformed JSON", `{"email":`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeArgs[loginArgs](callWith(tt.raw))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			e := apierr.From(err)
			if e.Code != apierr.InvalidArgument {
				t.Fatalf("code = %s, want INVALID_ARGUMENT", e.Code)
			}
			if got, _ := e.Details["field"].(string); got != tt.wantField {
				t.Fatalf("field = %q, want %q (%v)", got, tt.wantField, e)
			}
		})
	}
}

func TestShouldLookUpTheAccountByTheArgumentGiven(t *testing.T) {
	s := &Set{} // every case below is refused before the service is reached
	tests := []struct {
		name      string
		args      loginArgs
		wantField string
	}{
		{"a username in the email argument", loginArgs{Email: "viewer1", Password: "pw"}, "email"},
		{"an email in the username argument", loginArgs{Username: "ada@example.com", Password: "pw"}, "username"},
		{"both arguments", loginArgs{Email: "ada@example.com", Username: "ada", Password: "pw"}, "email"},
		{"neither argument", loginArgs{Password: "pw"}, "email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.login(t.Context(), tt.args)
			e := apierr.From(err)
			if e == nil || e.Code != apierr.InvalidArgument || e.Details["field"] != tt.wantField {
				t.Fatalf("err = %v, want INVALID_ARGUMENT on %s", err, tt.wantField)
			}
		})
	}
}
