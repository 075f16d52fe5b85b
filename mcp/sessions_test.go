package mcp

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth"
)

func TestShouldLetOnlyTheSessionsPrincipalClaimIt(t *testing.T) {
	home := auth.AddrGroup(netip.MustParseAddr("192.0.2.1"))
	away := auth.AddrGroup(netip.MustParseAddr("198.51.100.7"))
	for _, tc := range []struct {
		name      string
		owner     opener
		principal string
		addr      netip.Prefix
		want      bool
		becomes   string // the session's principal after a granted claim
	}{
		{"its user, from where it was opened", opener{principal: "u1", addr: home}, "u1", home, true, "u1"},
		{"its user, from elsewhere", opener{principal: "u1", addr: home}, "u1", away, true, "u1"},
		{"another user", opener{principal: "u1", addr: home}, "u2", home, false, ""},
		{"anyone anonymous, even from its address", opener{principal: "u1", addr: home}, "", home, false, ""},
		{"an anonymous session, from its address", opener{addr: home}, "", home, true, ""},
		{"an anonymous session, from elsewhere", opener{addr: home}, "", away, false, ""},
		{"an anonymous session's login, from its address", opener{addr: home}, "u1", home, true, "u1"},
		{"an anonymous session claimed by a user elsewhere", opener{addr: home}, "u1", away, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSessions(SessionLimits{}, time.Minute)
			if err := s.admit(tc.owner.addr); err != nil {
				t.Fatal(err)
			}
			s.bind("sid", tc.owner)
			if got := s.claim("sid", tc.principal, tc.addr); got != tc.want {
				t.Fatalf("claim = %v, want %v", got, tc.want)
			}
			if got := s.principalOf(t, "sid"); tc.want && got != tc.becomes {
				t.Errorf("the session's principal is %q, want %q", got, tc.becomes)
			}
			if got := s.principalOf(t, "sid"); !tc.want && got != tc.owner.principal {
				t.Errorf("a refused claim changed the principal to %q", got)
			}
		})
	}
}

func (s *sessions) principalOf(t *testing.T, id string) string {
	t.Helper()
	o, ok := s.byID.Load(id)
	if !ok {
		t.Fatalf("no session %q", id)
	}
	return *o.(*sessionOwner).principal.Load()
}

// Users who log in with one anonymous session at once: one of them gets it, the others are
// refused, whatever the order. (The interleaving that would hand it to two cannot be forced
// from here; what is checked, every round, is that the outcome has one owner.)
func TestShouldGiveAnAnonymousSessionToOneOfTheUsersClaimingItAtOnce(t *testing.T) {
	home := auth.AddrGroup(netip.MustParseAddr("192.0.2.1"))
	for range 200 {
		s := newSessions(SessionLimits{}, time.Minute)
		if err := s.admit(home); err != nil {
			t.Fatal(err)
		}
		s.bind("sid", opener{addr: home})
		users := []string{"u1", "u2", "u3", "u4"}
		won := make([]bool, len(users))
		var wg sync.WaitGroup
		start := make(chan struct{}) // all at once, as near as goroutines get
		for i, u := range users {
			wg.Go(func() { <-start; won[i] = s.claim("sid", u, home) })
		}
		close(start)
		wg.Wait()
		var winners []string
		for i, w := range won {
			if w {
				winners = append(winners, users[i])
			}
		}
		if len(winners) != 1 || s.principalOf(t, "sid") != winners[0] {
			t.Fatalf("claims granted to %v, the session is %q's: want exactly one, and it the owner", winners, s.principalOf(t, "sid"))
		}
		if !s.claim("sid", winners[0], home) || s.claim("sid", "", home) {
			t.Fatal("after the race the session is not its winner's alone")
		}
	}
}

func TestShouldCapSessionsPerAddressAndOverall(t *testing.T) {
	s := newSessions(SessionLimits{Max: 3, PerAddress: 2}, time.Minute)
	a := auth.AddrGroup(netip.MustParseAddr("2001:db8::1"))
	sameSlash64 := auth.AddrGroup(netip.MustParseAddr("2001:db8::ffff"))
	b := auth.AddrGroup(netip.MustParseAddr("192.0.2.1"))
	c := auth.AddrGroup(netip.MustParseAddr("192.0.2.2"))
	if err := s.admit(a); err != nil {
		t.Fatal(err)
	}
	s.bind("a1", opener{addr: a})
	if err := s.admit(sameSlash64); err != nil {
		t.Fatal(err)
	}
	s.bind("a2", opener{addr: sameSlash64})
	if err := s.admit(a); err != errSessionsPerAddress {
		t.Fatalf("a third session from one /64: %v, want errSessionsPerAddress", err)
	}
	if err := s.admit(b); err != nil {
		t.Fatal(err)
	}
	if err := s.admit(c); err != errSessionsFull {
		t.Fatalf("a fourth session overall: %v, want errSessionsFull", err)
	}
	s.release(b) // b's initialize failed: its place is free again
	if err := s.admit(c); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	s.bind("c1", opener{addr: c})
	if _, err := s.Terminate("a1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Validate("a1"); err == nil {
		t.Error("a terminated session still validates")
	}
	if err := s.admit(a); err != nil {
		t.Fatalf("after a DELETE freed a place of the /64: %v", err)
	}
}

func TestShouldForgetSessionsWhoseEndWasNeverReportedWhenFull(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	s := newSessions(SessionLimits{Max: 1, PerAddress: 1}, time.Minute)
	s.now = func() time.Time { return now }
	a := auth.AddrGroup(netip.MustParseAddr("192.0.2.1"))
	if err := s.admit(a); err != nil {
		t.Fatal(err)
	}
	s.bind("old", opener{addr: a})
	if err := s.admit(a); err != errSessionsFull {
		t.Fatalf("a second session: %v, want errSessionsFull", err)
	}
	now = now.Add(2*time.Minute + time.Second)
	if err := s.admit(a); err != nil {
		t.Fatalf("after the stale session: %v", err)
	}
	if _, err := s.Validate("old"); err == nil {
		t.Error("the stale session still validates")
	}
}
