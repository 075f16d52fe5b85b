package oauthtest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
)

// NewBrowserSession returns a browser session of userID with every field set.
func NewBrowserSession(hash, userID string, at time.Time) oauth.BrowserSession {
	return oauth.BrowserSession{Hash: hash, UserID: userID, AuthTime: at.Add(-time.Second), MFA: true,
		CreatedAt: at, ExpiresAt: at.Add(8 * time.Hour), GrantUntil: at.Add(24 * time.Hour)}
}

func mustBrowserSession(t *testing.T, what string, got, want oauth.BrowserSession) {
	t.Helper()
	conformance.MustTime(t, what+" auth_time", got.AuthTime, want.AuthTime)
	conformance.MustTime(t, what+" created_at", got.CreatedAt, want.CreatedAt)
	conformance.MustTime(t, what+" expires_at", got.ExpiresAt, want.ExpiresAt)
	conformance.MustTime(t, what+" grant_until", got.GrantUntil, want.GrantUntil)
	got.AuthTime, got.CreatedAt, got.ExpiresAt, got.GrantUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	want.AuthTime, want.CreatedAt, want.ExpiresAt, want.GrantUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func testBrowserSessionRoundTrip(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	withMFA, without := NewBrowserSession("bs_1", "usr_1", t0), NewBrowserSession("bs_2", "usr_1", t0)
	without.MFA = false
	for _, b := range []oauth.BrowserSession{withMFA, without} {
		conformance.MustOK(t, "create "+b.Hash, s.CreateBrowserSession(ctx, b))
	}
	for _, want := range []oauth.BrowserSession{withMFA, without} {
		got, err := s.GetBrowserSession(ctx, want.Hash)
		conformance.MustOK(t, "get "+want.Hash, err)
		mustBrowserSession(t, want.Hash, got, want)
	}
}

func testDuplicateBrowserSession(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	first := NewBrowserSession("bs_1", "usr_1", t0)
	conformance.MustOK(t, "create", s.CreateBrowserSession(ctx, first))
	conformance.MustErr(t, "a second session with the same hash", s.CreateBrowserSession(ctx, NewBrowserSession("bs_1", "usr_attacker", t0)),
		storeerr.ErrAlreadyExists)
	got, err := s.GetBrowserSession(ctx, "bs_1")
	conformance.MustOK(t, "get", err)
	mustBrowserSession(t, "the session after a refused create", got, first)
}

func testEndBrowserSession(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	for _, b := range []oauth.BrowserSession{NewBrowserSession("bs_1", "usr_1", t0), NewBrowserSession("bs_2", "usr_1", t0)} {
		conformance.MustOK(t, "create "+b.Hash, s.CreateBrowserSession(ctx, b))
	}
	conformance.MustOK(t, "delete", s.DeleteBrowserSession(ctx, "bs_1"))
	_, err := s.GetBrowserSession(ctx, "bs_1")
	conformance.MustErr(t, "get an ended session", err, storeerr.ErrNotFound)
	conformance.MustErr(t, "delete it again", s.DeleteBrowserSession(ctx, "bs_1"), storeerr.ErrNotFound)
	_, err = s.GetBrowserSession(ctx, "bs_2")
	conformance.MustOK(t, "the other session", err)
	_, err = s.GetBrowserSession(ctx, "bs_")
	conformance.MustErr(t, "get a prefix of a hash", err, storeerr.ErrNotFound)
}

func testConsents(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	_, err := s.GetConsent(ctx, "usr_1", "cl_1")
	conformance.MustErr(t, "a consent never given", err, storeerr.ErrNotFound)
	given := []oauth.Consent{
		{UserID: "usr_1", ClientID: "cl_1", Scopes: []string{"projects:read"}, UpdatedAt: t0},
		{UserID: "usr_1", ClientID: "cl_2", Scopes: []string{"audit:read"}, UpdatedAt: t0},
		{UserID: "usr_2", ClientID: "cl_1", Scopes: []string{}, UpdatedAt: t0},
		{UserID: "usr_1", ClientID: "https://client.example/metadata.json", Scopes: []string{"users:read"}, UpdatedAt: t0},
	}
	for _, c := range given {
		conformance.MustOK(t, "put "+c.UserID+" "+c.ClientID, s.PutConsent(ctx, c))
	}
	// The user's later answer replaces the earlier one; the others stay.
	wider := oauth.Consent{UserID: "usr_1", ClientID: "cl_1", Scopes: []string{"projects:read", "projects:write"}, UpdatedAt: t0.Add(time.Minute)}
	conformance.MustOK(t, "put again", s.PutConsent(ctx, wider))
	given[0] = wider
	for _, want := range given {
		got, err := s.GetConsent(ctx, want.UserID, want.ClientID)
		conformance.MustOK(t, "get "+want.UserID+" "+want.ClientID, err)
		conformance.MustTime(t, "updated_at", got.UpdatedAt, want.UpdatedAt)
		if got.UserID != want.UserID || got.ClientID != want.ClientID || !reflect.DeepEqual(got.Scopes, want.Scopes) {
			t.Errorf("consent %s %s = %+v, want %+v", want.UserID, want.ClientID, got, want)
		}
	}
	_, err = s.GetConsent(ctx, "usr_2", "cl_2")
	conformance.MustErr(t, "another user's client", err, storeerr.ErrNotFound)
}
