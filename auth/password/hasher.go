package password

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"time"
)

// Defaults for Config.
const (
	defaultQueuePerWorker = 64
	DefaultWait           = 2 * time.Second
)

// ErrBusy is Acquire's answer when no worker is free in time or the queue is full: the caller
// answers RATE_LIMITED without hashing anything.
var ErrBusy = errors.New("too many password checks in progress")

// Config configures a Hasher. Zero values take the defaults.
type Config struct {
	// Cost is bcrypt's cost for new hashes and the dummy hash (default DefaultCost).
	Cost int
	// Workers bounds concurrent bcrypt work (default GOMAXPROCS); Queue bounds the checks
	// waiting for a worker (default 64 per worker) and Wait how long one waits (default
	// DefaultWait).
	Workers int
	Queue   int
	Wait    time.Duration
}

// Hasher runs bcrypt on a bounded pool of workers, so that a flood of logins queues for a
// worker instead of taking every core from token validation and the guard (a bcrypt compare is
// ~50 ms of CPU; a cached validation is ~1 µs).
//
// A login takes its worker right after the account look-up, before anything that depends on
// whether the account exists: the answer under overload is the same for every identifier,
// known or not, and a refused login never counts against an account's lockout. (The look-up
// itself stays outside, so a slow store does not hold a worker.)
type Hasher struct {
	slots   chan struct{} // one per worker
	waiting chan struct{} // one per queued check
	wait    time.Duration
	cost    int
	dummy   []byte
}

// NewHasher returns a Hasher; the dummy hash it compares against for unknown accounts has the
// configured cost, so an unknown account costs one real bcrypt compare.
func NewHasher(cfg Config) (*Hasher, error) {
	if cfg.Cost == 0 {
		cfg.Cost = DefaultCost
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Queue <= 0 {
		cfg.Queue = defaultQueuePerWorker * cfg.Workers
	}
	if cfg.Wait <= 0 {
		cfg.Wait = DefaultWait
	}
	dummy, err := hash("dummy password for unknown users "+rand.Text(), cfg.Cost)
	if err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	return &Hasher{slots: make(chan struct{}, cfg.Workers), waiting: make(chan struct{}, cfg.Queue),
		wait: cfg.Wait, cost: cfg.Cost, dummy: dummy}, nil
}

// Acquire waits for a worker: ErrBusy when none is free in time, the context's error when the
// request ends first. Call release when the hashing is done.
func (h *Hasher) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case h.slots <- struct{}{}: // a worker is free: no queueing
		return h.release, nil
	default:
	}
	select {
	case h.waiting <- struct{}{}:
	default:
		return nil, ErrBusy
	}
	defer func() { <-h.waiting }()
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case h.slots <- struct{}{}:
		return h.release, nil
	case <-timer.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a password worker: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash bcrypts a new password (one that passed CheckPolicy) on a worker.
func (h *Hasher) Hash(ctx context.Context, p string) ([]byte, error) {
	release, err := h.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	return hash(p, h.cost)
}

// CompareDummy costs what a compare against a real hash costs, and answers nothing: the check
// of an unknown or locked account. The caller holds a worker.
func (h *Hasher) CompareDummy(p string) { _, _ = Matches(h.dummy, p) }
