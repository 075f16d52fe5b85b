package rbac

import (
	"sync"
	"sync/atomic"
)

// stamp is the policy version a cached value was computed under: the shared Versions value
// and the Authorizer's own change count (which advances even when Versions.Bump fails).
type stamp struct{ shared, local uint64 }

// olderThan reports whether s was read before o (both counters only grow).
func (s stamp) olderThan(o stamp) bool { return s.shared < o.shared || s.local < o.local }

// versionedCache maps keys to values computed under one stamp. A lookup under another stamp
// misses; the first insert under a newer stamp starts a new generation and drops everything
// older. The stamp is compared without a lock (the generation is an atomic pointer); readers
// of the current generation's map share an RLock and never allocate (the key is a struct of
// strings, hashed in place); writers are rare.
type versionedCache[K comparable, V any] struct {
	gen atomic.Pointer[generation[K, V]]
	mu  sync.Mutex // serializes writers
}

type generation[K comparable, V any] struct {
	stamp stamp
	mu    sync.RWMutex
	m     map[K]entry[V]
}

// entry is a cached value with the version of its subject's assignments and grants it was
// computed under (Versions.Subject): a change of one subject makes only its entries stale.
type entry[V any] struct {
	v       V
	subject uint64
}

func (c *versionedCache[K, V]) get(s stamp, subject uint64, k K) (V, bool) {
	g := c.gen.Load()
	if g == nil || g.stamp != s {
		var zero V
		return zero, false
	}
	g.mu.RLock()
	e, ok := g.m[k]
	g.mu.RUnlock()
	if !ok || e.subject != subject {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put stores v under s, unless s is older than what the cache holds. When the cache reaches
// limit entries it is emptied first (a bound, not an LRU: refilling is cheap). A limit below 1
// turns caching off.
func (c *versionedCache[K, V]) put(s stamp, subject uint64, k K, v V, limit int) {
	if limit < 1 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gen.Load()
	if g == nil || g.stamp != s {
		if g != nil && s.olderThan(g.stamp) {
			return // computed under a policy already replaced
		}
		g = &generation[K, V]{stamp: s, m: make(map[K]entry[V])}
		c.gen.Store(g)
	}
	g.mu.Lock()
	if len(g.m) >= limit {
		clear(g.m)
	}
	if e, ok := g.m[k]; ok && e.subject > subject {
		g.mu.Unlock()
		return // computed under a version of the subject already replaced
	}
	g.m[k] = entry[V]{v: v, subject: subject}
	g.mu.Unlock()
}
