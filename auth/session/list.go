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

// add remembers sid as revoked until until. It also drops, at most once a minute, the entries
// whose tokens have all expired: the list grows only by adds, so pruning there bounds it, and
// a lookup (every validated token) needs no clock read for it.
func (r *revocationList) add(sid string, until, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur, ok := r.until[sid]; !ok || until.After(cur) {
		r.until[sid] = until
	}
	if !now.After(r.sweep) {
		return
	}
	for old, end := range r.until {
		if !now.Before(end) {
			delete(r.until, old)
		}
	}
	r.sweep = now.Add(time.Minute)
}

// lookup returns until when sid is revoked; whether it still is depends on the time, which the
// caller reads only for a session the list holds (a lookup of any other, the usual one, reads
// no clock).
func (r *revocationList) lookup(sid string) (until time.Time, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	until, ok = r.until[sid]
	return until, ok
}
