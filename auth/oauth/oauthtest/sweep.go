package oauthtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/conformance"
)

func testMarkClientUsed(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	t0 := conformance.Now()
	unused, other := NewClient("cl_unused", t0), NewClient("cl_other", t0)
	unused.Unused, other.Unused = true, true
	for _, c := range []oauth.Client{unused, other} {
		conformance.MustOK(t, "create "+c.ID, s.CreateClient(ctx, c))
	}
	conformance.MustOK(t, "mark used", s.MarkClientUsed(ctx, unused.ID))
	got, err := s.GetClient(ctx, unused.ID)
	conformance.MustOK(t, "get", err)
	used := unused
	used.Unused = false
	mustClient(t, "the client after its first use", got, used)
	conformance.MustOK(t, "mark it used again", s.MarkClientUsed(ctx, unused.ID))
	got, err = s.GetClient(ctx, unused.ID)
	conformance.MustOK(t, "get", err)
	mustClient(t, "the client after a second mark", got, used)
	got, err = s.GetClient(ctx, other.ID)
	conformance.MustOK(t, "get the other", err)
	mustClient(t, "another client", got, other)
	conformance.MustOK(t, "mark an unknown client", s.MarkClientUsed(ctx, "cl_nope"))
	_, err = s.GetClient(ctx, "cl_nope")
	conformance.MustErr(t, "an unknown client after its mark", err, storeerr.ErrNotFound)
}

// testSweep stores, of each kind, what a sweep must delete beside what it must keep: the same
// kinds a minute apart on each side of its bounds.
func testSweep(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	now := conformance.Now()
	sw := oauth.Sweep{Expired: now, Redeemed: now.Add(-24 * time.Hour), Unused: now.Add(-24 * time.Hour)}

	expiredCode, liveCode := NewCode("code_expired", "cl_1", now.Add(-2*time.Minute)), NewCode("code_live", "cl_1", now)
	for _, c := range []oauth.Code{expiredCode, liveCode} {
		conformance.MustOK(t, "create "+c.Hash, s.CreateCode(ctx, c))
	}
	conformance.MustOK(t, "an old redemption", s.RedeemCode(ctx, "old_redemption", sw.Redeemed.Add(-time.Minute)))
	conformance.MustOK(t, "a recent redemption", s.RedeemCode(ctx, "recent_redemption", sw.Redeemed.Add(time.Minute)))
	expiredBrowser := NewBrowserSession("bs_expired", "usr_1", now.Add(-9*time.Hour))
	liveBrowser := NewBrowserSession("bs_live", "usr_1", now.Add(-7*time.Hour))
	for _, b := range []oauth.BrowserSession{expiredBrowser, liveBrowser} {
		conformance.MustOK(t, "create "+b.Hash, s.CreateBrowserSession(ctx, b))
	}
	old, recent := sw.Unused.Add(-time.Minute), sw.Unused.Add(time.Minute)
	clients := map[string]oauth.Client{
		"cl_unused_old": NewClient("cl_unused_old", old), "cl_unused_recent": NewClient("cl_unused_recent", recent),
		"cl_used_old": NewClient("cl_used_old", old), "cl_config_old": NewClient("cl_config_old", old)}
	for id, c := range clients {
		c.Unused = id == "cl_unused_old" || id == "cl_unused_recent"
		if id == "cl_config_old" {
			c.Source = oauth.SourceConfig
		}
		clients[id] = c
		conformance.MustOK(t, "create "+id, s.CreateClient(ctx, c))
	}

	swept, err := s.Sweep(ctx, sw)
	conformance.MustOK(t, "sweep", err)
	if want := (oauth.Swept{Codes: 1, Redemptions: 1, BrowserSessions: 1, Clients: 1}); swept != want {
		t.Errorf("swept %+v, want %+v", swept, want)
	}
	_, err = s.GetCode(ctx, expiredCode.Hash)
	conformance.MustErr(t, "the expired code", err, storeerr.ErrNotFound)
	got, err := s.GetCode(ctx, liveCode.Hash)
	conformance.MustOK(t, "the live code", err)
	mustCode(t, "the live code", got, liveCode)
	// A redemption record kept refuses a second redemption; a swept one lets it in again.
	conformance.MustErr(t, "redeem the recent one again", s.RedeemCode(ctx, "recent_redemption", now), storeerr.ErrAlreadyExists)
	conformance.MustOK(t, "redeem the swept one again", s.RedeemCode(ctx, "old_redemption", now))
	_, err = s.GetBrowserSession(ctx, expiredBrowser.Hash)
	conformance.MustErr(t, "the expired browser session", err, storeerr.ErrNotFound)
	gotB, err := s.GetBrowserSession(ctx, liveBrowser.Hash)
	conformance.MustOK(t, "the live browser session", err)
	mustBrowserSession(t, "the live browser session", gotB, liveBrowser)
	for id, want := range clients {
		got, err := s.GetClient(ctx, id)
		if id == "cl_unused_old" {
			conformance.MustErr(t, id, err, storeerr.ErrNotFound)
			continue
		}
		conformance.MustOK(t, id, err)
		mustClient(t, id, got, want)
	}

	swept, err = s.Sweep(ctx, sw)
	if err != nil || swept != (oauth.Swept{}) {
		t.Errorf("a second sweep = %+v, %v; want nothing deleted", swept, err)
	}
}

// testSweepWhileInUse sweeps while codes are issued and redeemed, browser sessions opened and
// clients registered: none of what is live is deleted.
func testSweepWhileInUse(t *testing.T, s oauth.Store) {
	ctx := context.Background()
	now := conformance.Now()
	sw := oauth.Sweep{Expired: now, Redeemed: now.Add(-24 * time.Hour), Unused: now.Add(-24 * time.Hour)}
	const n = 20
	errs := make(chan error, 4*n)
	conformance.Race(n, func(i int) {
		id := string(rune('a' + i))
		c := NewClient("cl_"+id, now)
		c.Unused = true
		errs <- s.CreateClient(ctx, c)
		errs <- s.CreateCode(ctx, NewCode("code_"+id, c.ID, now))
		errs <- s.CreateBrowserSession(ctx, NewBrowserSession("bs_"+id, "usr_1", now))
		if _, err := s.Sweep(ctx, sw); err != nil {
			errs <- err
		}
	})
	close(errs)
	for err := range errs {
		conformance.MustOK(t, "write or sweep", err)
	}
	for i := range n {
		id := string(rune('a' + i))
		_, err1 := s.GetClient(ctx, "cl_"+id)
		_, err2 := s.GetCode(ctx, "code_"+id)
		_, err3 := s.GetBrowserSession(ctx, "bs_"+id)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Errorf("live records of %s after the sweeps: %v", id, err)
		}
	}
}
