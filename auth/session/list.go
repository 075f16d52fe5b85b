package session

import (
	"sync"
	"time"
)

// revocationList remembers revoked session ids for as long as an access token of theirs could
// still be valid (one access TTL after revocation). It is this instance's view; the store is the
// record, and the list is reloaded from it at start.
type revocationList struct {
	mu    sync.RWMutex
	until map[string]time.Time
	sweep time.Time
}

func newRevocationList() *revocationList {
	return &revocationList{until: make(map[string]time.Time)}
}

func (r *revocationList) add(sid string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.until[sid]; !ok || until.After(cur) {
		r.until[sid] = until
	}
}

func (r *revocationList) has(sid string, now time.Time) bool {
	r.mu.RLock()
	until, ok := r.until[sid]
	needSweep := now.After(r.sweep)
	r.mu.RUnlock()
	if needSweep {
		r.prune(now)
	}
	return ok && now.Before(until)
}

// prune drops entries whose tokens have all expired; it runs at most once a minute.
func (r *revocationList) prune(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !now.After(r.sweep) {
		return
	}
	for sid, until := range r.until {
		if !now.Before(until) {
			delete(r.until, sid)
		}
	}
	r.sweep = now.Add(time.Minute)
}
