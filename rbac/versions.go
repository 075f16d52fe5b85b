package rbac

import (
	"context"
	"sync/atomic"
)

// LocalVersions is the policy version of a single instance: an atomic counter. Use RedisVersions
// when several instances share a store.
type LocalVersions struct {
	v atomic.Uint64
}

var _ Versions = (*LocalVersions)(nil)

// NewLocalVersions returns a counter at version 0.
func NewLocalVersions() *LocalVersions { return &LocalVersions{} }

// Current returns the version (lock-free).
func (l *LocalVersions) Current() uint64 { return l.v.Load() }

// Bump advances the version; it never fails.
func (l *LocalVersions) Bump(context.Context) error {
	l.v.Add(1)
	return nil
}
