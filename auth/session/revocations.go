package session

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Revocations is the set of revoked sessions every validation consults: an access token of a
// revoked session must fail at once, though the token itself stays well-formed until it expires.
// An entry is needed only for one access-token lifetime after the revocation.
type Revocations interface {
	Revoke(ctx context.Context, sessionID string, ttl time.Duration) error
	IsRevoked(ctx context.Context, sessionID string) (bool, error)
}

// NewLocalRevocations is the in-process set (one instance only).
func NewLocalRevocations(now func() time.Time) Revocations {
	return localRevocations{list: newRevocationList(), now: now}
}

type localRevocations struct {
	list *revocationList
	now  func() time.Time
}

func (l localRevocations) Revoke(_ context.Context, sid string, ttl time.Duration) error {
	now := l.now()
	l.list.add(sid, now.Add(ttl), now)
	return nil
}

func (l localRevocations) IsRevoked(_ context.Context, sid string) (bool, error) {
	until, ok := l.list.lookup(sid)
	return ok && l.now().Before(until), nil
}

// RedisRevocations shares revocations between instances: a revocation is a Redis key (expiring
// with the last token it could concern) and a message on a channel every instance listens to.
// An instance answers from what it has heard; a session it has not heard of is looked up in
// Redis at most once per recheck interval, so a revocation whose message was lost still takes
// effect everywhere within a second.
type RedisRevocations struct {
	client redis.UniversalClient
	log    *slog.Logger
	now    func() time.Time
	known  *revocationList // revoked sessions heard of, until their tokens expire
	pubsub *redis.PubSub
	done   chan struct{}

	mu      sync.Mutex
	checked map[string]time.Time // sessions found not revoked, and when
}

const (
	revokedPrefix  = "mcpauth:revoked:"
	revokedChannel = "mcpauth:revoked"
	// recheckEvery bounds how long "not revoked" is believed without asking Redis again.
	recheckEvery = 500 * time.Millisecond
	maxChecked   = 1 << 16
)

// NewRedisRevocations subscribes to revocations. Close stops it.
func NewRedisRevocations(ctx context.Context, client redis.UniversalClient, logger *slog.Logger, now func() time.Time) (*RedisRevocations, error) {
	if now == nil {
		now = time.Now
	}
	r := &RedisRevocations{client: client, log: logger, now: now, known: newRevocationList(),
		checked: map[string]time.Time{}, done: make(chan struct{})}
	r.pubsub = client.Subscribe(ctx, revokedChannel)
	if _, err := r.pubsub.Receive(ctx); err != nil {
		_ = r.pubsub.Close()
		return nil, fmt.Errorf("subscribe to revocations: %w", err)
	}
	go r.listen()
	return r, nil
}

// listen applies published revocations ("sid ttl-ms").
func (r *RedisRevocations) listen() {
	defer close(r.done)
	for msg := range r.pubsub.Channel() {
		var sid string
		var ms int64
		if _, err := fmt.Sscanf(msg.Payload, "%s %d", &sid, &ms); err != nil || ms <= 0 {
			continue
		}
		now := r.now()
		r.known.add(sid, now.Add(time.Duration(ms)*time.Millisecond), now)
		r.mu.Lock()
		delete(r.checked, sid)
		r.mu.Unlock()
	}
}

// Close stops listening.
func (r *RedisRevocations) Close() error {
	err := r.pubsub.Close()
	<-r.done
	return err
}

// Revoke records the revocation in Redis and tells every instance.
func (r *RedisRevocations) Revoke(ctx context.Context, sid string, ttl time.Duration) error {
	now := r.now()
	r.known.add(sid, now.Add(ttl), now)
	if err := r.client.Set(ctx, revokedPrefix+sid, "1", ttl).Err(); err != nil {
		return fmt.Errorf("revocations (redis): %w", err)
	}
	if err := r.client.Publish(ctx, revokedChannel, fmt.Sprintf("%s %d", sid, ttl.Milliseconds())).Err(); err != nil {
		r.log.Warn("publishing a revocation failed; other instances see it within a second by lookup", "error", err)
	}
	return nil
}

// IsRevoked answers from what this instance has heard, asking Redis about a session it has
// not checked within recheckEvery. A Redis error is returned: the caller fails closed.
func (r *RedisRevocations) IsRevoked(ctx context.Context, sid string) (bool, error) {
	now := r.now()
	if until, ok := r.known.lookup(sid); ok && now.Before(until) {
		return true, nil
	}
	r.mu.Lock()
	at, ok := r.checked[sid]
	r.mu.Unlock()
	if ok && now.Sub(at) < recheckEvery {
		return false, nil
	}
	n, err := r.client.Exists(ctx, revokedPrefix+sid).Result()
	if err != nil {
		return false, fmt.Errorf("revocations (redis): %w", err)
	}
	if n > 0 {
		ttl, _ := r.client.PTTL(ctx, revokedPrefix+sid).Result()
		r.known.add(sid, now.Add(max(ttl, time.Second)), now)
		return true, nil
	}
	r.mu.Lock()
	if len(r.checked) >= maxChecked {
		clear(r.checked)
	}
	r.checked[sid] = now
	r.mu.Unlock()
	return false, nil
}

// DegradedRevocations uses primary (Redis) and, while it fails, an in-process set (logged at
// ERROR): the operator's explicit choice to keep serving with revocations known only to this
// instance during a Redis outage (MCPAUTH_DEGRADE_LIMITS).
type DegradedRevocations struct {
	primary  Revocations
	fallback Revocations
	log      *slog.Logger
	mu       sync.Mutex
	down     bool
}

// NewDegradedRevocations wraps primary with an in-process fallback.
func NewDegradedRevocations(primary Revocations, logger *slog.Logger) *DegradedRevocations {
	return &DegradedRevocations{primary: primary, log: logger,
		fallback: localRevocations{list: newRevocationList(), now: time.Now}}
}

func (d *DegradedRevocations) note(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case err != nil && !d.down:
		d.down = true
		d.log.Error("REDIS UNREACHABLE: session revocations known to this instance only", "error", err)
	case err == nil && d.down:
		d.down = false
		d.log.Warn("session revocations use Redis again")
	}
}

// Revoke records locally, always, and in Redis when it can.
func (d *DegradedRevocations) Revoke(ctx context.Context, sid string, ttl time.Duration) error {
	_ = d.fallback.Revoke(ctx, sid, ttl)
	err := d.primary.Revoke(ctx, sid, ttl)
	d.note(err)
	return nil
}

// IsRevoked asks Redis, or this instance's own set while Redis is down.
func (d *DegradedRevocations) IsRevoked(ctx context.Context, sid string) (bool, error) {
	if revoked, _ := d.fallback.IsRevoked(ctx, sid); revoked {
		return true, nil
	}
	revoked, err := d.primary.IsRevoked(ctx, sid)
	d.note(err)
	if err != nil {
		return false, nil
	}
	return revoked, nil
}
