package oauth

import (
	"context"
	"time"
)

// What the store keeps of what no longer works, and for how long.
const (
	// DefaultUnusedClientTTL is how long a dynamically registered client may go without its
	// first code redemption or refresh before a sweep deletes it. Registration is open to
	// anyone (rate-limited per address), so without it a stranger's registrations would pile
	// up for good; a real client redeems its first code within minutes of registering. A
	// client used once is kept until deleted (mcpauth client delete).
	DefaultUnusedClientTTL = 24 * time.Hour
	// DefaultSweepInterval is how often RunSweeps sweeps.
	DefaultSweepInterval = time.Hour
	// redemptionKeep is how long a code's redemption record is kept: far beyond the longest
	// code lifetime (CodeTTL; an sso_login's 2×DeviceTTL) and any clock skew between
	// instances, so that the record outlives every code it could guard.
	redemptionKeep = 24 * time.Hour
)

// Sweep deletes from the store the codes and browser sessions that have expired, the
// redemption records older than redemptionKeep, and the dynamically registered clients left
// unused for longer than Config.UnusedClientTTL. Each instance may sweep: the deletions
// are idempotent.
//
// The clients it deletes leave this instance's client cache too (others drop theirs within
// clientCacheTTL): a client of the cache still marked unused is dropped when the sweep's
// cutoff has passed it, whether the store deleted it or another instance saw it used, in
// which case the next request reads it again.
func (s *Server) Sweep(ctx context.Context) (Swept, error) {
	now := s.now()
	sw := Sweep{Expired: now, Redeemed: now.Add(-redemptionKeep), Unused: now.Add(-s.cfg.UnusedClientTTL)}
	swept, err := s.cfg.Store.Sweep(ctx, sw)
	for _, id := range s.clients.Keys() {
		if e, ok := s.clients.Peek(id); ok && e.client.Unused && e.client.CreatedAt.Before(sw.Unused) {
			s.clients.Remove(id)
		}
	}
	return swept, err
}

// RunSweeps sweeps every interval until ctx ends, logging what each sweep deleted (a failed
// sweep is logged and tried again at the next).
func (s *Server) RunSweeps(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		swept, err := s.Sweep(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.ErrorContext(ctx, "oauth store sweep", "error", err)
		case swept != Swept{}:
			s.log.InfoContext(ctx, "oauth store swept", "codes", swept.Codes, "redemptions", swept.Redemptions,
				"browser_sessions", swept.BrowserSessions, "unused_clients", swept.Clients)
		}
	}
}

// markUsed clears a dynamically registered client's Unused mark at its first redemption or
// refresh (one write in the client's life), in the cache too. Best effort: a mark left in
// place only lets a sweep delete the client later, which then registers again.
func (s *Server) markUsed(ctx context.Context, c Client) {
	if !c.Unused {
		return
	}
	if err := s.cfg.Store.MarkClientUsed(ctx, c.ID); err != nil {
		s.log.WarnContext(ctx, "mark an oauth client used", "client_id", c.ID, "error", err)
		return
	}
	c.Unused = false
	if e, ok := s.clients.Peek(c.ID); ok {
		s.clients.Add(c.ID, cachedClient{client: c, until: e.until})
	}
}
