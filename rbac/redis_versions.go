package rbac

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisVersionKey is the Redis key holding the shared policy version, and RedisVersionChannel
// the channel every bump is published on (with the new value as the payload).
const (
	RedisVersionKey     = "mcpauth:rbac:version"
	RedisVersionChannel = "mcpauth:rbac:version"
)

// A change of one subject's assignments or grants (BumpSubject) is a number from
// RedisSubjectSeqKey (INCR) entered with the subject in the sorted set RedisSubjectLogKey (the
// subject as member, its latest number as score) and published on RedisSubjectChannel as
// "<number> <subject>". An instance applies published changes as they arrive and, at every poll,
// reads the numbers it has not seen from the log: a lost message costs at most a poll interval.
// The log keeps the last subjectLogKeep numbers; an instance that fell further behind (or sees
// the counter go back: Redis lost it) treats everything as changed. The keys share a hash tag,
// so they live in one slot of a Redis Cluster.
const (
	RedisSubjectSeqKey  = "mcpauth:rbac:{subjects}:seq"
	RedisSubjectLogKey  = "mcpauth:rbac:{subjects}:log"
	RedisSubjectChannel = "mcpauth:rbac:subjects"
	subjectLogKeep      = 100_000
)

// redisPollInterval is how often the shared version is read, as a fallback for published
// messages lost to a reconnect; redisPollTimeout bounds one read.
const (
	redisPollInterval = 250 * time.Millisecond
	redisPollTimeout  = time.Second
)

// RedisVersions is the policy version shared by every instance through Redis. Bump increments
// the shared counter (INCR RedisVersionKey) and publishes the new value on RedisVersionChannel;
// every instance applies published values as they arrive and, as a fallback for lost messages
// and reconnects, reads the key every 250 ms, so a bump anywhere is seen everywhere within a
// second.
//
// Current is not the shared counter itself but this instance's epoch: it advances (by one)
// whenever the shared value is seen to change in any way, and on every local Bump. The shared
// value is only compared for equality, so a Redis restart that loses the key (and counts again
// from 1) still invalidates every cache, where a "maximum seen" would stay stale until the new
// counter overtook the old one. Current never goes back and never repeats a value.
//
// Fail closed: while Redis cannot be read, the epoch advances at every poll, so nothing cached
// outlives a poll interval (bumps made elsewhere cannot be seen, so nothing cached is trusted).
// Bump returns an error when Redis cannot be written; the caller must treat the change as not
// propagated (this instance's own Current has still advanced).
type RedisVersions struct {
	client redis.UniversalClient
	logger *slog.Logger
	pubsub *redis.PubSub

	epoch    atomic.Uint64 // what Current returns
	subjects subjectVersions

	mu       sync.Mutex // guards the fields below (writers only; Current never takes it)
	seen     string     // the shared value last seen ("" before the first read, "0" for no key)
	seenSeq  int64      // the last subject change number applied from the log
	failing  bool       // the last poll failed (to log transitions only)
	closed   bool
	stop     context.CancelFunc
	finished sync.WaitGroup
}

var _ Versions = (*RedisVersions)(nil)

// NewRedisVersions reads the shared version, subscribes to bumps and starts the poller. It fails
// if Redis cannot be reached. Call Close to stop; the client stays open (it is the caller's).
func NewRedisVersions(ctx context.Context, client redis.UniversalClient, logger *slog.Logger) (*RedisVersions, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	v := &RedisVersions{client: client, logger: logger}
	// Subscribe first, then read: a bump between the two is seen by one or the other.
	v.pubsub = client.Subscribe(ctx, RedisVersionChannel, RedisSubjectChannel)
	for range 2 { // one confirmation per channel
		if _, err := v.pubsub.Receive(ctx); err != nil {
			_ = v.pubsub.Close()
			return nil, fmt.Errorf("subscribe to %s: %w", RedisVersionChannel, err)
		}
	}
	shared, err := v.read(ctx)
	if err != nil {
		_ = v.pubsub.Close()
		return nil, err
	}
	if v.seenSeq, err = v.readSeq(ctx); err != nil {
		_ = v.pubsub.Close()
		return nil, err
	}
	v.observe(shared)
	runCtx, stop := context.WithCancel(context.Background())
	v.stop = stop
	v.finished.Add(2)
	go v.subscribe(v.pubsub.Channel())
	go v.poll(runCtx)
	return v, nil
}

// Current returns this instance's policy epoch (lock-free).
func (v *RedisVersions) Current() uint64 { return v.epoch.Load() }

// Bump advances the shared version: INCR of the key, then PUBLISH of the new value. This
// instance's Current advances first, whatever happens to Redis. If the INCR fails the error is
// returned (the change was not propagated); if only the PUBLISH fails, the other instances still
// see the new value at their next poll, so the failure is logged, not returned.
func (v *RedisVersions) Bump(ctx context.Context) error {
	v.epoch.Add(1)
	n, err := v.client.Incr(ctx, RedisVersionKey).Result()
	if err != nil {
		return fmt.Errorf("bump policy version: %w", err)
	}
	shared := strconv.FormatInt(n, 10)
	v.observe(shared)
	if err := v.client.Publish(ctx, RedisVersionChannel, shared).Err(); err != nil {
		v.logger.Warn("rbac: publishing the policy version failed; other instances will poll it", "error", err)
	}
	return nil
}

// Subject returns the version of subject's assignments and grants as this instance knows it
// (lock-free).
func (v *RedisVersions) Subject(subject string) uint64 { return v.subjects.get(subject) }

func (v *RedisVersions) bumpLocal(subject string) { v.subjects.bump(subject) }

// BumpSubject advances subject's version here at once, then, in one script (atomic: no poller
// ever reads a number whose log entry is not written yet), numbers the change, logs it and
// trims the log; then publishes it. If the script fails the error is returned (other instances
// may not see the change); a failed publish is only logged (they read the log at their next
// poll).
func (v *RedisVersions) BumpSubject(ctx context.Context, subject string) error {
	v.subjects.bump(subject)
	n, err := logSubjectChange.Run(ctx, v.client, []string{RedisSubjectSeqKey, RedisSubjectLogKey}, subject, subjectLogKeep).Int64()
	if err != nil {
		return fmt.Errorf("log a policy change: %w", err)
	}
	if err := v.client.Publish(ctx, RedisSubjectChannel, strconv.FormatInt(n, 10)+" "+subject).Err(); err != nil {
		v.logger.Warn("rbac: publishing a subject's policy change failed; other instances will poll it", "error", err)
	}
	return nil
}

// logSubjectChange numbers a change of subject ARGV[1] (KEYS[1]), logs it with that number
// (KEYS[2]) and drops the entries more than ARGV[2] numbers old.
var logSubjectChange = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], n, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (n - tonumber(ARGV[2])))
return n
`)

// readSeq returns the last subject change number (0 when there is none).
func (v *RedisVersions) readSeq(ctx context.Context) (int64, error) {
	n, err := v.client.Get(ctx, RedisSubjectSeqKey).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read policy change number: %w", err)
	}
	return n, nil
}

// catchUp applies the subject changes numbered after the last one applied, up to seq.
func (v *RedisVersions) catchUp(ctx context.Context, seq int64) error {
	v.mu.Lock()
	last := v.seenSeq
	v.mu.Unlock()
	switch {
	case seq == last:
		return nil
	case seq < last || seq-last > subjectLogKeep:
		// The counter went back (Redis lost it) or the log no longer reaches back to what this
		// instance saw: any subject may have changed.
		v.epoch.Add(1)
	default:
		changed, err := v.client.ZRangeByScore(ctx, RedisSubjectLogKey, &redis.ZRangeBy{
			Min: "(" + strconv.FormatInt(last, 10), Max: strconv.FormatInt(seq, 10)}).Result()
		if err != nil {
			return fmt.Errorf("read policy changes: %w", err)
		}
		for _, subject := range changed {
			v.subjects.bump(subject)
		}
	}
	v.mu.Lock()
	v.seenSeq = seq
	v.mu.Unlock()
	return nil
}

// Close stops the subscriber and the poller and waits for both. It does not close the client.
func (v *RedisVersions) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	v.mu.Unlock()
	v.stop()
	err := v.pubsub.Close()
	v.finished.Wait()
	return err
}

// read returns the shared value ("0" when the key does not exist).
func (v *RedisVersions) read(ctx context.Context) (string, error) {
	s, err := v.client.Get(ctx, RedisVersionKey).Result()
	if errors.Is(err, redis.Nil) {
		return "0", nil
	}
	if err != nil {
		return "", fmt.Errorf("read policy version: %w", err)
	}
	return s, nil
}

// observe advances the epoch if the shared value differs from the last one seen.
func (v *RedisVersions) observe(shared string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if shared == v.seen {
		return
	}
	v.seen = shared
	v.epoch.Add(1)
}

// subscribe applies published values until the subscription is closed. go-redis resubscribes
// after a reconnect; messages published meanwhile are lost, and the poller catches up.
func (v *RedisVersions) subscribe(ch <-chan *redis.Message) {
	defer v.finished.Done()
	for msg := range ch {
		if msg.Channel == RedisSubjectChannel {
			if _, subject, ok := strings.Cut(msg.Payload, " "); ok && subject != "" {
				v.subjects.bump(subject)
			}
			continue
		}
		if _, err := strconv.ParseUint(msg.Payload, 10, 64); err != nil {
			v.logger.Warn("rbac: ignoring a malformed policy version message", "payload_len", len(msg.Payload))
			continue
		}
		v.observe(msg.Payload)
	}
}

// poll reads the shared value every redisPollInterval until ctx ends.
func (v *RedisVersions) poll(ctx context.Context) {
	defer v.finished.Done()
	tick := time.NewTicker(redisPollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		readCtx, cancel := context.WithTimeout(ctx, redisPollTimeout)
		shared, err := v.read(readCtx)
		if err == nil {
			var seq int64
			if seq, err = v.readSeq(readCtx); err == nil {
				err = v.catchUp(readCtx, seq)
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		v.pollResult(shared, err)
	}
}

func (v *RedisVersions) pollResult(shared string, err error) {
	if err != nil {
		// Bumps made elsewhere cannot be seen: invalidate everything cached, every interval.
		v.epoch.Add(1)
		v.mu.Lock()
		first := !v.failing
		v.failing = true
		v.mu.Unlock()
		if first {
			v.logger.Warn("rbac: cannot read the policy version from Redis; caching is off until it returns", "error", err)
		}
		return
	}
	v.mu.Lock()
	recovered := v.failing
	v.failing = false
	v.mu.Unlock()
	if recovered {
		v.logger.Info("rbac: policy version readable from Redis again")
	}
	v.observe(shared)
}
