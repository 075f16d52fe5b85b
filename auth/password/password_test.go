package password_test

import (
	"context"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth/password"
)

func TestShouldRefuseAPasswordThePolicyForbidsAndNeverEchoIt(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, password string
		ok             bool
	}{
		{"eight code points", "ñññññññx", true},
		{"a passphrase", "correct horse battery staple", true},
		{"seven code points", "ñññññññ", false},
		{"empty", "", false},
		{"73 bytes", strings.Repeat("Tr0ub4dor&3", 7)[:73], false},
		{"37 two-byte code points (74 bytes)", strings.Repeat("é", 37), false},
		{"1 MiB", strings.Repeat("a", 1<<20), false},
		{"not UTF-8", "abcdefgh\xff\xfe", false},
		{"common", "password1", false},
		{"common in other letter case", "TrustNo1", false},
		{"common after NFKC (fullwidth letters)", "ｐａｓｓｗｏｒｄ１", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := password.CheckPolicy("new_password", tc.password)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if apierr.CodeOf(err) != apierr.InvalidArgument {
				t.Fatalf("got %v, want INVALID_ARGUMENT", err)
			}
			if f, _ := apierr.From(err).Details["field"].(string); f != "new_password" {
				t.Errorf("field %q, want new_password", f)
			}
			if tc.password != "" && strings.Contains(err.Error(), tc.password) {
				t.Errorf("the error echoes the password: %v", err)
			}
		})
	}
}

func TestShouldBoundAPresentedPasswordBeforeAnyWork(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, password string
		ok             bool
	}{
		{"a short one (login checks, never the policy)", "short", true},
		{"72 bytes", strings.Repeat("a", 72), true},
		{"missing", "", false},
		{"73 bytes", strings.Repeat("a", 73), false},
		{"1 MiB", strings.Repeat("a", 1<<20), false},
	} {
		err := password.CheckPresented("current_password", tc.password)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestShouldMatchTheSamePasswordTypedOnAnotherKeyboard(t *testing.T) {
	t.Parallel()
	h, err := password.NewHasher(password.Config{Cost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(context.Background(), "café au lait") // é precomposed
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, password string
		want           bool
	}{
		{"the same bytes", "café au lait", true},
		{"e and a combining accent (NFKC)", "cafe\u0301 au lait", true},
		{"another password", "cafe au lait", false},
	} {
		got, err := password.Matches(hash, tc.password)
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	if _, err := password.Matches([]byte("not a bcrypt hash"), "café au lait"); err == nil {
		t.Error("a corrupt hash matched or mismatched: want an error (fail closed)")
	}
	if n := password.CommonCount(); n < 10000 {
		t.Errorf("the block list has %d entries, want at least 10000", n)
	}
}
