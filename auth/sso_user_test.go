package auth_test

import (
	"context"
	"testing"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
)

// An account made by single sign-on has no password: no password logs into it (answered as a
// wrong one, never as an error that would tell it apart), until an administrator sets one.
func TestShouldRefuseEveryPasswordOfAnAccountWithoutOne(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const id = "usr_abcdefghijklmnopqrstuvwxyz"
	u, err := e.svc.CreateUser(ctx, auth.NewUser{ID: id, Email: "sso@example.com", NoPassword: true})
	if err != nil || u.ID != id || len(u.PasswordHash) != 0 {
		t.Fatalf("create a passwordless account: %+v %v", u, err)
	}
	for _, pw := range []auth.Secret{"", "correct horse battery staple", "x"} {
		_, _, err := e.svc.Login(ctx, auth.LoginRequest{Identifier: "sso@example.com", Password: pw})
		if code := apierr.CodeOf(err); code != apierr.InvalidCredentials && code != apierr.InvalidArgument {
			t.Errorf("login with %q: %v, want INVALID_CREDENTIALS", pw, err)
		}
	}
	if _, err := e.svc.ResetPassword(ctx, id, "an administrator's new password"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.Login(ctx, auth.LoginRequest{Identifier: "sso@example.com", Password: "an administrator's new password"}); err != nil {
		t.Errorf("login after the reset: %v", err)
	}
	if _, err := e.svc.CreateUser(ctx, auth.NewUser{ID: "usr_../../etc", Email: "bad@example.com", NoPassword: true}); apierr.CodeOf(err) != apierr.InvalidArgument {
		t.Errorf("a malformed id: %v", err)
	}
}
