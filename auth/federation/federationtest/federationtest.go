// Package federationtest is the conformance suite of federation.Store: every backend runs Run
// against a fresh store per test and must pass it unchanged.
package federationtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth/federation"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
)

// Run runs the whole suite; newStore returns a fresh, empty store per subtest.
func Run(t *testing.T, newStore func(t *testing.T) federation.Store) {
	if _, ok := newStore(t).(federation.GrantStore); ok {
		t.Run("ShouldKeepEachConnectorsGrantsPerUser", func(t *testing.T) {
			testGrants(t, newStore(t).(federation.GrantStore))
		})
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s federation.Store)
	}{
		{"ShouldCreateAndGetALink", testRoundTrip},
		{"ShouldKeepTheFirstLinkOfAnIdentity", testDuplicate},
		{"ShouldTellIdentitiesApartByIssuerAndSubject", testDistinct},
		{"ShouldForgetADeletedLinkOnly", testDelete},
		{"ShouldLetExactlyOneOfConcurrentFirstLinksWin", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t)) })
	}
}

// NewLink returns a link of (issuer, subject) to userID.
func NewLink(issuer, subject, userID string, at time.Time) federation.Link {
	return federation.Link{Issuer: issuer, Subject: subject, ConnectorID: "okta", UserID: userID, CreatedAt: at}
}

func mustLink(t *testing.T, what string, got, want federation.Link) {
	t.Helper()
	conformance.MustTime(t, what+" created_at", got.CreatedAt, want.CreatedAt)
	if got.Issuer != want.Issuer || got.Subject != want.Subject || got.ConnectorID != want.ConnectorID || got.UserID != want.UserID ||
		got.ID != federation.LinkID(want.Issuer, want.Subject) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func testRoundTrip(t *testing.T, s federation.Store) {
	ctx := context.Background()
	l := NewLink("https://idp.example", "00u1", "usr_1", conformance.Now())
	conformance.MustOK(t, "create", s.CreateLink(ctx, l))
	got, err := s.GetLink(ctx, l.Issuer, l.Subject)
	conformance.MustOK(t, "get", err)
	mustLink(t, "the link", got, l)
}

func testDuplicate(t *testing.T, s federation.Store) {
	ctx := context.Background()
	first := NewLink("https://idp.example", "00u1", "usr_1", conformance.Now())
	conformance.MustOK(t, "create", s.CreateLink(ctx, first))
	conformance.MustErr(t, "link the identity to another account",
		s.CreateLink(ctx, NewLink("https://idp.example", "00u1", "usr_attacker", conformance.Now())), storeerr.ErrAlreadyExists)
	got, err := s.GetLink(ctx, first.Issuer, first.Subject)
	conformance.MustOK(t, "get", err)
	mustLink(t, "the link after a refused second one", got, first)
}

func testDistinct(t *testing.T, s federation.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	// The same subject at two providers, and subjects that only differ by a suffix, are
	// different people; so are an issuer+subject split differently.
	links := []federation.Link{
		NewLink("https://idp.example", "00u1", "usr_1", t0), NewLink("https://other.example", "00u1", "usr_2", t0),
		NewLink("https://idp.example", "00u10", "usr_3", t0), NewLink("https://idp.example0", "0u1", "usr_4", t0),
	}
	for _, l := range links {
		conformance.MustOK(t, "create "+l.Issuer+" "+l.Subject, s.CreateLink(ctx, l))
	}
	for _, l := range links {
		got, err := s.GetLink(ctx, l.Issuer, l.Subject)
		conformance.MustOK(t, "get "+l.Issuer+" "+l.Subject, err)
		mustLink(t, l.Issuer+" "+l.Subject, got, l)
	}
	_, err := s.GetLink(ctx, "https://idp.example", "00u")
	conformance.MustErr(t, "an unknown subject", err, storeerr.ErrNotFound)
}

func testDelete(t *testing.T, s federation.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	for _, l := range []federation.Link{NewLink("https://idp.example", "a", "usr_1", t0), NewLink("https://idp.example", "b", "usr_2", t0)} {
		conformance.MustOK(t, "create", s.CreateLink(ctx, l))
	}
	conformance.MustOK(t, "delete", s.DeleteLink(ctx, "https://idp.example", "a"))
	_, err := s.GetLink(ctx, "https://idp.example", "a")
	conformance.MustErr(t, "get a deleted link", err, storeerr.ErrNotFound)
	conformance.MustErr(t, "delete it again", s.DeleteLink(ctx, "https://idp.example", "a"), storeerr.ErrNotFound)
	_, err = s.GetLink(ctx, "https://idp.example", "b")
	conformance.MustOK(t, "the other link", err)
}

func testConcurrent(t *testing.T, s federation.Store) {
	ctx := context.Background()
	const racers = 50
	results := make(chan error, racers)
	conformance.Race(racers, func(i int) {
		results <- s.CreateLink(ctx, NewLink("https://idp.example", "00u1", fmt.Sprintf("usr_%02d", i), conformance.Now()))
	})
	close(results)
	won := 0
	for err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, storeerr.ErrAlreadyExists):
			t.Errorf("a losing first link: %v, want ErrAlreadyExists", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d concurrent first links won, want exactly 1", won, racers)
	}
}

func testGrants(t *testing.T, s federation.GrantStore) {
	ctx := context.Background()
	got, err := s.GetGrants(ctx, "okta", "usr_1")
	conformance.MustOK(t, "get before any", err)
	if len(got) != 0 {
		t.Fatalf("grants before any: %v", got)
	}
	admin, viewer := federation.OrgRole{OrgID: "acme", Role: "admin"}, federation.OrgRole{OrgID: "globex", Role: "viewer"}
	conformance.MustOK(t, "put", s.PutGrants(ctx, "okta", "usr_1", []federation.OrgRole{admin, viewer}))
	conformance.MustOK(t, "put another connector's", s.PutGrants(ctx, "google", "usr_1", []federation.OrgRole{viewer}))
	conformance.MustOK(t, "put another user's", s.PutGrants(ctx, "okta", "usr_2", []federation.OrgRole{admin}))
	conformance.MustOK(t, "replace", s.PutGrants(ctx, "okta", "usr_1", []federation.OrgRole{viewer}))
	for _, tc := range []struct {
		connector, user string
		want            []federation.OrgRole
	}{{"okta", "usr_1", []federation.OrgRole{viewer}}, {"google", "usr_1", []federation.OrgRole{viewer}}, {"okta", "usr_2", []federation.OrgRole{admin}}} {
		got, err := s.GetGrants(ctx, tc.connector, tc.user)
		conformance.MustOK(t, "get "+tc.connector+" "+tc.user, err)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("grants of %s by %s = %v, want %v", tc.user, tc.connector, got, tc.want)
		}
	}
	conformance.MustOK(t, "put none", s.PutGrants(ctx, "okta", "usr_2", []federation.OrgRole{}))
	if got, err := s.GetGrants(ctx, "okta", "usr_2"); err != nil || len(got) != 0 {
		t.Errorf("grants put to none: %v %v", got, err)
	}
}
