package rbac

import "sync"

// stamp is the policy version a cached value was computed under: the shared Versions value
// and the Authorizer's own change count (which advances even when Versions.Bump fails).
type stamp struct{ shared, local uint64 }

// olderThan reports whether s was read before o (both counters only grow).
func (s stamp) olderThan(o stamp) bool { return s.shared < o.shared || s.local < o.local }

// versionedCache maps keys to values computed under one stamp. A lookup under another stamp
// misses; the first insert under a newer stamp drops everything older. Readers share an RLock
// and never allocate (the key is a struct of strings, hashed in place); writers are rare.
type versionedCache[K comparable, V any] struct {
	mu    sync.RWMutex
	stamp stamp
	m     map[K]V
}

func (c *versionedCache[K, V]) get(s stamp, k K) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[k]
	current := c.stamp == s
	c.mu.RUnlock()
	if !ok || !current {
		var zero V
		return zero, false
	}
	return v, true
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
	if c.stamp != s {
		if s.olderThan(c.stamp) {
			return // computed under a policy already replaced
		}
		clear(c.m)
		c.stamp = s
	}
	if c.m == nil {
		c.m = make(map[K]V)
	}
	if len(c.m) >= limit {
		clear(c.m)
	}
	c.m[k] = v
}

// reset drops everything.
func (c *versionedCache[K, V]) reset() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
