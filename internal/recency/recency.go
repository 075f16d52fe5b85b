// Package recency spares an LRU cache's hot entries a move to the front on every hit.
//
// A least-recently-used list moves an entry on every hit, which rewrites the list nodes of its
// two neighbours: on the guard's path, three caches (verified tokens, live users, the rate
// limiter's keys) did that on every tool call, for neighbours cold in the CPU's cache, under a
// lock every reader takes exclusively. An entry whose Uses says a hit is not Due is read
// without a move (Peek, under the cache's shared lock); one hit in Every moves it. The order
// becomes approximate: an entry used at least Every times while the cache fills with new ones
// still survives them, which is what a cache of the hot path (and the limiter's hot-key
// guarantee) needs.
package recency

import "sync/atomic"

// Every is how many hits of an entry move it to the front once.
const Every = 8

// Uses counts an entry's hits. The zero value is ready; it is safe for concurrent use (entries
// are read under a shared lock).
type Uses struct{ n atomic.Uint32 }

// Due counts a hit and reports whether this one is to move the entry to the front.
func (u *Uses) Due() bool { return u.n.Add(1)%Every == 0 }
