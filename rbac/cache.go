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
	m     map[K]V
}

func (c *versionedCache[K, V]) get(s stamp, k K) (V, bool) {
	g := c.gen.Load()
	if g == nil || g.stamp != s {
		var zero V
		return zero, false
	}
	g.mu.RLock()
	v, ok := g.m[k]
	g.mu.RUnlock()
	return v, ok
}

// put stores v under s, unless s is older than what the cache holds. When the cache reaches
// limit entries it is emptied first (a bound, not an LRU: refilling is cheap). A limit below 1
// turns caching off.
func (c *versionedCache[K, V]) put(s stamp, k K, v V, limit int) {
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
		g = &generation[K, V]{stamp: s, m: make(map[K]V)}
		c.gen.Store(g)
	}
	g.mu.Lock()
	if len(g.m) >= limit {
		clear(g.m)
	}
	g.m[k] = v
	g.mu.Unlock()
}
