package rbac

import (
	"context"
	"sync"
	"sync/atomic"
)

// LocalVersions is the policy version of a single instance: an atomic counter. Use RedisVersions
// when several instances share a store.
type LocalVersions struct {
	v        atomic.Uint64
	subjects subjectVersions
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

// Subject returns the version of subject's assignments and grants (lock-free).
func (l *LocalVersions) Subject(subject string) uint64 { return l.subjects.get(subject) }

// BumpSubject advances subject's version; it never fails.
func (l *LocalVersions) BumpSubject(_ context.Context, subject string) error {
	l.subjects.bump(subject)
	return nil
}

// localCounter is what rbac's own Versions are: a subject's version advances in this process
// at once (bumpLocal, and BumpSubject before anything shared can fail), so an Authorizer over
// them needs no counter of its own beside theirs.
type localCounter interface{ bumpLocal(subject string) }

func (l *LocalVersions) bumpLocal(subject string) { l.subjects.bump(subject) }

// subjectVersions counts the changes of each subject that has had one. Entries are never
// removed: a version that went back to 0 would make entries cached before a change current
// again. One counter per user ever changed is small.
type subjectVersions struct{ m sync.Map } // string → *atomic.Uint64

func (s *subjectVersions) get(subject string) uint64 {
	if v, ok := s.m.Load(subject); ok {
		return v.(*atomic.Uint64).Load()
	}
	return 0
}

func (s *subjectVersions) bump(subject string) {
	v, _ := s.m.LoadOrStore(subject, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}
