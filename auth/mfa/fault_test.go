package mfa_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func sealer(t *testing.T) *token.Sealer {
	t.Helper()
	s, err := token.NewSealer(make([]byte, token.MasterKeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A store that has lost its database fails every call, and Factors answers each one INTERNAL:
// never "no second factor" for an account it could not read.
func TestShouldFailClosedWhenTheStoreIsGone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, lose := mongotest.LosableDatabase(t)
	store, err := mfa.NewMongoStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	factors := mfa.NewFactors(store, sealer(t), "mcpauth", func() time.Time { return now })
	e, err := factors.Enroll(ctx, "usr_1", "ada@example.com")
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(e.Secret, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := factors.Confirm(ctx, "usr_1", code); err != nil {
		t.Fatal(err)
	}
	m, err := factors.EnabledFactor(ctx, "usr_1")
	if err != nil {
		t.Fatal(err)
	}
	lose()

	for call, err := range map[string]error{
		"PutMFA":            store.PutMFA(ctx, m),
		"DeleteMFA":         store.DeleteMFA(ctx, "usr_1"),
		"ClaimTOTPStep":     store.ClaimTOTPStep(ctx, "usr_1", 1, now),
		"SpendRecoveryCode": store.SpendRecoveryCode(ctx, "usr_1", "h", now),
		"EraseUser":         store.EraseUser(ctx, "usr_1"),
		"GetMFA":            second(store.GetMFA(ctx, "usr_1")),
		"LastTOTPStep":      second(store.LastTOTPStep(ctx, "usr_1")),
	} {
		if err == nil || errors.Is(err, storeerr.ErrNotFound) || errors.Is(err, storeerr.ErrAlreadyExists) {
			t.Errorf("store %s without a database: %v, want the database's error", call, err)
		}
	}
	now = now.Add(time.Minute) // a fresh step
	code, _ = totp.GenerateCode(e.Secret, now)
	_, enrollErr := factors.Enroll(ctx, "usr_2", "bob@example.com")
	_, confirmErr := factors.Confirm(ctx, "usr_1", code)
	_, _, enabledErr := factors.Enabled(ctx, "usr_1")
	_, factorErr := factors.EnabledFactor(ctx, "usr_1")
	_, totpErr := factors.Check(ctx, m, code)
	_, recoveryErr := factors.Check(ctx, m, "aaaaaaaa-bbbbbbbb")
	for call, err := range map[string]error{
		"Enroll": enrollErr, "Confirm": confirmErr, "Enabled": enabledErr, "EnabledFactor": factorErr,
		"Check (TOTP)": totpErr, "Remove": factors.Remove(ctx, "usr_1"),
	} {
		if apierr.CodeOf(err) != apierr.Internal {
			t.Errorf("%s without a database: %v, want INTERNAL", call, err)
		}
	}
	if apierr.CodeOf(recoveryErr) != apierr.InvalidMFACode { // not one of the user's codes: no store read needed
		t.Errorf("an unknown recovery code without a database: %v, want INVALID_MFA_CODE", recoveryErr)
	}
}

func second[T any](_ T, err error) error { return err }

// Without the master key there is no MFA: enrolling, confirming and checking say so, and a
// user without a factor is simply not asked for one.
func TestShouldRefuseMFAWithoutAMasterKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := mfa.NewMongoStore(ctx, mongotest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	factors := mfa.NewFactors(store, nil, "mcpauth", time.Now)
	_, enrollErr := factors.Enroll(ctx, "usr_1", "ada@example.com")
	_, confirmErr := factors.Confirm(ctx, "usr_1", "123456")
	_, checkErr := factors.Check(ctx, mfa.Factor{UserID: "usr_1", Enabled: true}, "123456")
	for call, err := range map[string]error{"Enroll": enrollErr, "Confirm": confirmErr, "Check": checkErr} {
		if !errors.Is(err, mfa.ErrUnconfigured) {
			t.Errorf("%s without a master key: %v, want ErrUnconfigured", call, err)
		}
	}
	if _, on, err := factors.Enabled(ctx, "usr_1"); on || err != nil {
		t.Errorf("a user without a factor: on=%v, %v", on, err)
	}
}

// A second factor sealed with another master key (or altered at rest) never verifies a code.
func TestShouldRefuseACodeWhenTheSecretCannotBeOpened(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := mfa.NewMongoStore(ctx, mongotest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	factors := mfa.NewFactors(store, sealer(t), "mcpauth", time.Now)
	m := mfa.Factor{UserID: "usr_1", SecretSealed: []byte("not sealed by this key"), Enabled: true}
	if _, err := factors.Check(ctx, m, "123456"); apierr.CodeOf(err) != apierr.Internal {
		t.Errorf("a code against a secret that cannot be opened: %v, want INTERNAL", err)
	}
	for _, code := range []string{"12345", "1234567", "abcdef"} {
		if _, err := factors.Check(ctx, m, code); apierr.CodeOf(err) != apierr.InvalidMFACode {
			t.Errorf("code %q: %v, want INVALID_MFA_CODE", code, err)
		}
	}
}
