package apierr_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/bduf/mcpauth/apierr"
)

func TestShouldKeepSentinelsImmutable(t *testing.T) {
	sentinel := apierr.New(apierr.NotFound, "user not found")
	detailed := sentinel.With("id", "u1").Wrap(errors.New("db said no"))

	if sentinel.Details != nil || sentinel.Unwrap() != nil {
		t.Fatalf("With/Wrap changed the sentinel: %+v", sentinel)
	}
	if !errors.Is(detailed, sentinel) {
		t.Fatalf("copy no longer matches its sentinel")
	}
	if detailed.Details["id"] != "u1" {
		t.Fatalf("detail lost: %+v", detailed.Details)
	}
}

func TestShouldMapUnknownErrorsToInternalWithoutShowingThem(t *testing.T) {
	cause := errors.New("connection refused to 10.0.0.7")
	got := apierr.From(fmt.Errorf("loading user: %w", cause))
	if got.Code != apierr.Internal {
		t.Fatalf("code = %s, want INTERNAL", got.Code)
	}
	if got.Message != "internal error" {
		t.Fatalf("public message leaks the cause: %q", got.Message)
	}
	if !errors.Is(got, cause) {
		t.Fatalf("cause not kept for logs")
	}
}

func TestShouldFindWrappedAPIErrors(t *testing.T) {
	inner := apierr.Field("password", "must be at least %d characters", 8)
	wrapped := fmt.Errorf("create user: %w", inner)
	if apierr.CodeOf(wrapped) != apierr.InvalidArgument {
		t.Fatalf("code = %s", apierr.CodeOf(wrapped))
	}
	if apierr.From(wrapped).Details["field"] != "password" {
		t.Fatalf("field detail missing")
	}
	if apierr.CodeOf(nil) != "" {
		t.Fatalf("nil error has a code")
	}
}
