package rbac_test

import (
	"strings"
	"testing"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/rbac"
)

func TestShouldMatchPermissionsAsTheSeedDoes(t *testing.T) {
	tests := []struct {
		name       string
		pattern    string
		permission string
		want       bool
	}{
		{"an exact pattern matches the same permission", "projects:read", "projects:read", true},
		{"an exact pattern does not match another action", "projects:read", "projects:write", false},
		{"an exact pattern does not match another resource", "projects:read", "tasks:read", false},
		{"a resource wildcard matches every action of the resource", "projects:*", "projects:delete", true},
		{"a resource wildcard does not match another resource", "projects:*", "tasks:read", false},
		{"a star matches everything", "*", "audit:read", true},
		{"star colon star matches everything", "*:*", "users:admin", true},
		{"an action wildcard over every resource matches that action", "*:read", "tasks:read", true},
		{"an action wildcard over every resource does not match another action", "*:read", "tasks:write", false},
		{"a pattern without a colon means every action of it", "projects", "projects:read", true},
		{"a pattern without a colon does not match another resource", "projects", "tasks:read", false},
		{"a prefix without a colon matches resources starting with it", "proj*", "projects:read", true},
		{"a prefix without a colon does not match other resources", "proj*", "tasks:read", false},
		{"a resource prefix with an exact action matches", "proj*:read", "projects:read", true},
		{"a resource prefix with an exact action checks the action", "proj*:read", "projects:write", false},
		{"an action prefix matches actions starting with it", "projects:re*", "projects:read", true},
		{"an action prefix does not match other actions", "projects:re*", "projects:write", false},
		{"a prefix matches the prefix itself", "proj*", "proj:read", true},
		{"matching is case-sensitive in the resource", "projects:read", "Projects:read", false},
		{"matching is case-sensitive in the action", "projects:read", "projects:READ", false},
		{"matching is case-sensitive in a prefix", "Proj*", "projects:read", false},
		{"a star in the middle is not a wildcard", "pro*ts:read", "projects:read", false},
		{"an empty permission matches nothing", "*", "", false},
		{"a permission without a colon matches nothing", "*", "projects", false},
		{"a permission with an empty action matches nothing", "*", "projects:", false},
		{"a permission with an empty resource matches nothing", "*", ":read", false},
		{"a bare colon matches nothing", "*", ":", false},
		{"a permission with two colons matches nothing", "*", "projects:read:x", false},
		{"an empty pattern matches nothing", "", "projects:read", false},
		{"a colon pattern matches nothing", ":", "projects:read", false},
		{"a pattern with an empty action matches nothing", "projects:", "projects:read", false},
		{"a requested wildcard is granted by a star", "*", "projects:*", true},
		{"a requested wildcard is granted by the same wildcard", "projects:*", "projects:*", true},
		{"a requested wildcard is granted by a wider prefix", "proj*", "projects:*", true},
		{"a requested wildcard is not granted by one action", "projects:read", "projects:*", false},
		{"star colon star is granted only by star", "projects:*", "*:*", false},
		{"star colon star is granted by star colon star", "*:*", "*:*", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rbac.Match(tt.pattern, tt.permission); got != tt.want {
				t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.permission, got, tt.want)
			}
		})
	}
}

func TestShouldTellWhichPatternsAHolderCovers(t *testing.T) {
	tests := []struct {
		name    string
		holder  string
		pattern string
		want    bool
	}{
		{"a resource wildcard covers one of its permissions", "projects:*", "projects:read", true},
		{"a resource wildcard covers itself", "projects:*", "projects:*", true},
		{"a resource wildcard covers a narrower action prefix", "projects:*", "projects:re*", true},
		{"a resource prefix covers a resource wildcard under it", "proj*", "projects:*", true},
		{"a resource prefix covers a longer prefix", "proj*", "projects*:read", true},
		{"a resource prefix does not cover a shorter prefix", "projects*", "proj*", false},
		{"one permission covers itself", "projects:read", "projects:read", true},
		{"one permission does not cover the resource wildcard", "projects:read", "projects:*", false},
		{"one permission does not cover the bare resource", "projects:read", "projects", false},
		{"one permission does not cover another", "projects:read", "projects:write", false},
		{"a bare resource covers its wildcard", "projects", "projects:*", true},
		{"a resource wildcard does not cover another resource", "projects:*", "tasks:read", false},
		{"a resource wildcard does not cover everything", "projects:*", "*", false},
		{"an action over every resource does not cover everything", "*:read", "*", false},
		{"an action over every resource covers that action of one resource", "*:read", "tasks:read", true},
		{"star covers star", "*", "*", true},
		{"star colon star covers star", "*:*", "*", true},
		{"star covers star colon star", "*", "*:*", true},
		{"star covers any permission", "*", "users:admin", true},
		{"nothing covers an empty pattern", "*", "", false},
		{"nothing covers an invalid pattern", "*", "pro*ts:read", false},
		{"an empty holder covers nothing", "", "projects:read", false},
		{"an invalid holder covers nothing", "pro*ts:read", "projects:read", false},
		{"covering is case-sensitive", "projects:*", "Projects:read", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rbac.Covers(tt.holder, tt.pattern); got != tt.want {
				t.Errorf("Covers(%q, %q) = %v, want %v", tt.holder, tt.pattern, got, tt.want)
			}
		})
	}
}

func TestShouldValidatePermissionPatterns(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		valid   bool
	}{
		{"a permission is valid", "projects:read", true},
		{"a resource wildcard is valid", "projects:*", true},
		{"a star is valid", "*", true},
		{"star colon star is valid", "*:*", true},
		{"a bare resource is valid", "projects", true},
		{"a prefix at the end of each part is valid", "proj*:re*", true},
		{"digits, dots, dashes and underscores are valid", "v2.api-docs_x:read_all", true},
		{"upper case is valid", "Projects:Read", true},
		{"exactly 128 bytes is valid", strings.Repeat("a", 64) + ":" + strings.Repeat("b", 63), true},
		{"129 bytes is too long", strings.Repeat("a", 64) + ":" + strings.Repeat("b", 64), false},
		{"empty is invalid", "", false},
		{"a star in the middle of a part is invalid", "pro*ts:read", false},
		{"a star at the start of a longer part is invalid", "*s:read", false},
		{"two stars are invalid", "**", false},
		{"two colons are invalid", "projects:read:x", false},
		{"an empty resource is invalid", ":read", false},
		{"an empty action is invalid", "projects:", false},
		{"a bare colon is invalid", ":", false},
		{"a space is invalid", "projects: read", false},
		{"a slash is invalid", "projects/1:read", false},
		{"a non-ASCII letter is invalid", "prøjects:read", false},
		{"a NUL byte is invalid", "projects:read\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := rbac.ValidatePattern(tt.pattern)
			if tt.valid {
				if err != nil {
					t.Fatalf("ValidatePattern(%q) = %v, want nil", tt.pattern, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidatePattern(%q) accepted it", tt.pattern)
			}
			e := apierr.From(err)
			if e.Code != apierr.InvalidArgument || e.Details["field"] != "permissions" {
				t.Errorf("ValidatePattern(%q) = %v (details %v), want INVALID_ARGUMENT on field permissions", tt.pattern, err, e.Details)
			}
		})
	}
}

func TestShouldMatchWithoutAllocating(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		_ = rbac.Match("proj*:read", "projects:read")
		_ = rbac.Covers("proj*", "projects:*")
	})
	if allocs != 0 {
		t.Errorf("Match and Covers allocate %v times per run", allocs)
	}
}
