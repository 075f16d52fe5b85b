package session

import (
	"context"
	"testing"
	"time"
)

// A revocation holds until its tokens have expired, then the entry goes at the next revocation
// a minute on (the list grows only by revocations, so that bounds it).
func TestShouldForgetARevocationOnceItsTokensHaveExpired(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := NewLocalRevocations(func() time.Time { return now }).(localRevocations)
	if err := r.Revoke(ctx, "ses_a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if revoked, _ := r.IsRevoked(ctx, "ses_a"); !revoked {
		t.Fatal("a session just revoked is not revoked")
	}
	if revoked, _ := r.IsRevoked(ctx, "ses_other"); revoked {
		t.Fatal("a session never revoked is revoked")
	}
	now = now.Add(time.Minute)
	if revoked, _ := r.IsRevoked(ctx, "ses_a"); revoked {
		t.Fatal("still revoked once every token of the session has expired")
	}
	now = now.Add(2 * time.Minute)
	if err := r.Revoke(ctx, "ses_b", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, kept := r.list.lookup("ses_a"); kept {
		t.Error("the expired revocation is still held after a later one")
	}
	if revoked, _ := r.IsRevoked(ctx, "ses_b"); !revoked {
		t.Error("the later revocation does not hold")
	}
}
