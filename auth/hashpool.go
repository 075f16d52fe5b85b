package auth

import (
	"context"
	"runtime"
	"time"

	"github.com/bduf/mcpauth/apierr"
)

// Defaults for the password-hashing pool (Config.HashWorkers, HashQueue, HashWait).
const (
	defaultHashQueuePerWorker = 64
	DefaultHashWait           = 2 * time.Second
)

// hashPool bounds the bcrypt work in flight to the cores: a flood of logins queues for a
// worker instead of taking every core from token validation and the guard (a bcrypt compare
// is ~50 ms of CPU; a cached validation is ~1 µs). A login that cannot get a worker within
// the wait, or finds the queue full, is answered RATE_LIMITED without hashing anything.
//
// A login takes its worker right after the account look-up, before anything that depends on
// whether the account exists: the answer under overload is the same for every identifier,
// known or not, and a refused login never counts against an account's lockout. (The look-up
// itself stays outside, so a slow store does not hold a worker.)
type hashPool struct {
	slots   chan struct{} // one per worker
	waiting chan struct{} // one per queued login
	wait    time.Duration
}

func newHashPool(workers, queue int, wait time.Duration) *hashPool {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if queue <= 0 {
		queue = defaultHashQueuePerWorker * workers
	}
	if wait <= 0 {
		wait = DefaultHashWait
	}
	return &hashPool{slots: make(chan struct{}, workers), waiting: make(chan struct{}, queue), wait: wait}
}

// errHashBusy is the answer when no worker is free in time.
func errHashBusy() error {
	return RateLimited(time.Second).With("reason", "too many logins in progress")
}

// acquire waits for a worker; release it when the hashing is done.
func (p *hashPool) acquire(ctx context.Context) (release func(), err error) {
	select {
	case p.slots <- struct{}{}: // a worker is free: no queueing
		return p.release, nil
	default:
	}
	select {
	case p.waiting <- struct{}{}:
	default:
		return nil, errHashBusy()
	}
	defer func() { <-p.waiting }()
	timer := time.NewTimer(p.wait)
	defer timer.Stop()
	select {
	case p.slots <- struct{}{}:
		return p.release, nil
	case <-timer.C:
		return nil, errHashBusy()
	case <-ctx.Done():
		return nil, apierr.New(apierr.Internal, "request ended while waiting to check the password").Wrap(ctx.Err())
	}
}

func (p *hashPool) release() { <-p.slots }

// hash bcrypts a new password on a worker of the pool.
func (s *Service) hash(ctx context.Context, password Secret) ([]byte, error) {
	release, err := s.hashing.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	h, err := hashPassword(password, s.cfg.BcryptCost)
	if err != nil {
		return nil, apierr.Internalf("%w", err)
	}
	return h, nil
}
