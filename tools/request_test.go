package tools

import (
	"encoding/json"
	"strings"
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
		{"no password", loginArgs{Email: "ada@example.com"}, "password"},
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

// The handler's length checks count what the published schema's maxLength counts: code points.
// A limit in bytes refused a 40-character name in a script of three-byte characters that the
// schema allows.
func TestShouldCountArgumentLengthsInCharactersAsTheSchemaDoes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value string
		ok    bool
	}{
		{"at the limit in three-byte characters", strings.Repeat("名", 100), true},
		{"one character past the limit", strings.Repeat("名", 101), false},
		{"at the limit in ASCII", strings.Repeat("a", 100), true},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := requireString("name", tc.value, 100)
			if (err == nil) != tc.ok {
				t.Fatalf("requireString(%d characters, %d bytes) = %v, want ok %v", len([]rune(tc.value)), len(tc.value), err, tc.ok)
			}
			if err != nil && apierr.From(err).Details["field"] != "name" {
				t.Fatalf("the error does not name the argument: %v", err)
			}
		})
	}
}
