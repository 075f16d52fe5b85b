package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/federation"
	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/embedmongo"
	"github.com/bduf/mcpauth/internal/redisurl"
	"github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
	"github.com/bduf/mcpauth/tools"
)

// mongoTimeout bounds reaching MongoDB at start: an unreachable URI is an error in seconds,
// not a hang.
const mongoTimeout = 5 * time.Second

// app is the wired service: store, keys, auth, rbac, tools.
type app struct {
	audit     *audit.Writer
	auditDB   *audit.MongoStore
	ready     []mcp.ReadyCheck
	limiter   throttle.Limiter
	callLimit throttle.Limit
	auth      *auth.Service
	authz     *rbac.Authorizer
	tools     *tools.Set
	// sealer and oauthStore serve the authorization server (oauthServer).
	sealer     *token.Sealer
	oauthStore *oauth.MongoStore
	links      *federation.MongoStore // external identities (single sign-on)
	closers    []func(context.Context) error
	embedded   *embedmongo.Server // nil on an external MongoDB
}

func (a *app) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), embedmongo.StopTimeout)
	defer cancel()
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i](ctx)
	}
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// openApp connects the store (starting the embedded one when no URI is set) and Redis (when
// configured) and builds the services. Everything is wired here; no package reads the
// environment itself.
func openApp(ctx context.Context, c config, logger *slog.Logger) (_ *app, err error) {
	a := &app{}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := ensureDataDir(c.DataDir); err != nil {
		return nil, err
	}
	master, err := loadMasterKey(c)
	if err != nil {
		return nil, err
	}
	if a.sealer, err = token.NewSealer(master); err != nil {
		return nil, err
	}
	sealer := a.sealer
	db, err := a.connectMongo(ctx, c, logger)
	if err != nil {
		return nil, err
	}
	rdb, err := a.connectRedis(ctx, c, logger)
	if err != nil {
		return nil, err
	}
	versions, limiter, lockout, err := a.sharedState(ctx, c, rdb, logger)
	if err != nil {
		return nil, err
	}
	a.limiter, a.callLimit = limiter, c.CallLimit
	var revocations session.Revocations // nil: in process
	if rdb != nil {
		r, err := session.NewRedisRevocations(ctx, rdb, logger, nil)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, func(context.Context) error { return r.Close() })
		revocations = r
		if c.DegradeLimits {
			revocations = session.NewDegradedRevocations(r, logger)
		}
	}
	store, err := auth.NewMongoStore(ctx, db)
	if err != nil {
		return nil, err
	}
	rbacStore, err := rbac.NewMongoStore(ctx, db)
	if err != nil {
		return nil, err
	}
	if a.oauthStore, err = oauth.NewMongoStore(ctx, db); err != nil {
		return nil, err
	}
	if a.links, err = federation.NewMongoStore(ctx, db); err != nil {
		return nil, err
	}
	if err := a.openAudit(ctx, c, db, logger); err != nil {
		return nil, err
	}
	a.authz = rbac.NewAuthorizer(rbac.Config{Store: rbacStore, Versions: versions, Logger: logger, Audit: a.audit})
	keys, err := token.LoadKeySet(ctx, store, sealer, c.SigningAlg, time.Now())
	if err != nil {
		return nil, err
	}
	if a.embedded != nil { // every collection exists now: index its _id (see embedmongo)
		if _, err := a.embedded.IndexIDs(ctx); err != nil {
			logger.Warn("could not add the _id index to the embedded store (lookups by _id scan until it is)", "error", err)
		}
	}
	if c.BcryptCost < password.DefaultCost {
		logger.Warn("bcrypt cost below 10: for tests only", "cost", c.BcryptCost)
	}
	a.auth, err = auth.NewService(ctx, store, keys, auth.Config{
		Issuer: c.Issuer, Audience: c.Audience, AccessTTL: c.AccessTTL, RefreshTTL: c.RefreshTTL,
		Password: password.Config{Cost: c.BcryptCost}, Logger: logger, Sealer: sealer,
		TokenCacheSize: offIfZero(c.TokenCacheSize), UserCacheTTL: offIfZero(c.UserCacheTTL),
		UserVersions: versions,
		StepUpMaxAge: offIfZero(c.StepUpMaxAge), APIKeyTTL: c.APIKeyTTL,
		Limiter: limiter, Lockout: lockout, Limits: c.Limits, Revocations: revocations, Audit: a.audit,
		// Tokens carry the user's permissions in its organization; the guard re-checks the
		// live assignment on every call, so a token's scopes can only be narrower.
		Scopes: func(ctx context.Context, u auth.User) ([]string, error) {
			return a.authz.Permissions(ctx, u.ID, u.OrgID, "")
		},
	})
	if err != nil {
		return nil, err
	}
	a.tools = tools.New(a.auth, a.authz, a.auditDB, logger)
	return a, nil
}

func (a *app) connectMongo(ctx context.Context, c config, logger *slog.Logger) (*mongo.Database, error) {
	uri := c.MongoURI
	if uri == "" {
		// FerretDB logs every failed command at WARN: keep only its errors.
		storeLog := logger.With("component", "embedded-store")
		srv, err := embedmongo.StartPrivate(filepath.Join(c.DataDir, "store"), slog.New(levelFloor{Handler: storeLog.Handler(), min: slog.LevelError}))
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, srv.Stop)
		a.embedded = srv
		uri = srv.URI()
		logger.Debug("embedded store started", "dir", filepath.Join(c.DataDir, "store"))
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(mongoTimeout).SetConnectTimeout(mongoTimeout).SetAppName("mcpauth").
		SetMonitor(mongoTracing()))
	if err != nil {
		return nil, fmt.Errorf("MongoDB URI %s: %w", redactURI(uri), err)
	}
	a.closers = append(a.closers, client.Disconnect)
	pingCtx, cancel := context.WithTimeout(ctx, mongoTimeout)
	defer cancel()
	if err := client.Ping(pingCtx, nil); err != nil {
		return nil, fmt.Errorf("cannot reach MongoDB at %s within %s: %s", redactURI(uri), mongoTimeout, lastServerError(err))
	}
	a.ready = append(a.ready, mcp.ReadyCheck{Name: "mongodb", Check: func(ctx context.Context) error { return client.Ping(ctx, nil) }})
	return client.Database(c.MongoDB), nil
}

// openAudit starts the audit writer: one hash chain per instance (its id is kept in the data
// directory), spilling to the data directory while MongoDB is unreachable.
func (a *app) openAudit(ctx context.Context, c config, db *mongo.Database, logger *slog.Logger) error {
	store, err := auditStore(ctx, c, db)
	if err != nil {
		return err
	}
	instance, err := instanceID(c.DataDir)
	if err != nil {
		return err
	}
	if c.cli {
		// A live server on this data directory writes the instance's chain: a second writer of
		// it would claim the same positions, and the unique index would refuse its events into
		// a spill file nobody replays. A CLI run gets a chain of its own.
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		instance += "-cli-" + hex.EncodeToString(b)
	}
	w, err := audit.NewWriter(ctx, store, audit.WriterConfig{Instance: instance,
		SpillDir: filepath.Join(c.DataDir, "audit-spill"), Logger: logger, Request: mcp.AuditRequest})
	if err != nil {
		return fmt.Errorf("audit writer: %w", err)
	}
	a.audit, a.auditDB = w, store
	// Drain the queue before the store goes away (closers run last-in, first-out).
	a.closers = append(a.closers, w.Close)
	a.ready = append(a.ready, mcp.ReadyCheck{Name: "audit", Check: func(context.Context) error {
		if st := w.Stats(); st.Spilling {
			return fmt.Errorf("spilling to disk (%d bytes): MongoDB unreachable", st.SpillBytes)
		}
		return nil
	}})
	if c.AuditRetention > 0 {
		if n, err := store.ApplyRetention(ctx, time.Now().Add(-c.AuditRetention)); err != nil {
			logger.Error("audit retention failed", "error", err)
		} else if n > 0 {
			logger.Info("audit retention applied", "deleted", n)
		}
	}
	meter := otel.Meter("github.com/bduf/mcpauth/audit")
	_, err = meter.Int64ObservableGauge("mcpauth.audit.queue_depth", metric.WithDescription("Audit events waiting to be written."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(int64(w.Stats().QueueDepth))
			return nil
		}))
	if err != nil {
		return err
	}
	_, err = meter.Int64ObservableGauge("mcpauth.audit.spill_bytes", metric.WithDescription("Size of the audit spill file."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(w.Stats().SpillBytes)
			return nil
		}))
	return err
}

// instanceID returns this data directory's audit chain id, creating it on first start.
func instanceID(dir string) (string, error) {
	path := filepath.Join(dir, "instance.id")
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	id := "i_" + hex.EncodeToString(b)
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return id, nil
}

// connectRedis connects MCPAUTH_REDIS_URL (nil without one), in the topology its URL names or
// MCPAUTH_REDIS_MODE says (redisurl).
func (a *app) connectRedis(ctx context.Context, c config, logger *slog.Logger) (redis.UniversalClient, error) {
	if c.RedisURL == "" {
		return nil, nil
	}
	client, mode, err := redisurl.New(c.RedisURL, c.RedisMode)
	if err != nil {
		return nil, fmt.Errorf("MCPAUTH_REDIS_URL %s: %w", redactURI(c.RedisURL), err)
	}
	logger.Info("redis", "mode", mode, "url", redactURI(c.RedisURL))
	redis.SetLogger(redisLog{logger.With("component", "redis")}) // go-redis's own notices (reconnects, failovers)
	a.closers = append(a.closers, func(context.Context) error { return client.Close() })
	pingCtx, cancel := context.WithTimeout(ctx, mongoTimeout)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		return nil, fmt.Errorf("cannot reach Redis at %s within %s: %w", redactURI(c.RedisURL), mongoTimeout, err)
	}
	a.ready = append(a.ready, mcp.ReadyCheck{Name: "redis", Check: func(ctx context.Context) error { return client.Ping(ctx).Err() }})
	return client, nil
}

// redisLog writes go-redis's notices (a lost connection, a new master) to the log, not raw to
// stderr.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// sharedState returns the policy versions, the rate limiter and the lockout: in Redis when it
// is configured (shared by every instance), else in process (one instance only).
func (a *app) sharedState(ctx context.Context, c config, rdb redis.UniversalClient, logger *slog.Logger) (rbac.Versions, throttle.Limiter, throttle.Lockout, error) {
	localLimiter, localLockout := throttle.NewLocalLimiter(nil), throttle.NewLocalLockout(c.Lockout, nil)
	if rdb == nil {
		return rbac.NewLocalVersions(), localLimiter, localLockout, nil
	}
	v, err := rbac.NewRedisVersions(ctx, rdb, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	a.closers = append(a.closers, func(context.Context) error { return v.Close() })
	var limiter throttle.Limiter = throttle.NewRedisLimiter(rdb)
	var lockout throttle.Lockout = throttle.NewRedisLockout(rdb, c.Lockout)
	if c.DegradeLimits {
		d := throttle.NewDegraded(logger)
		limiter, lockout = d.Limiter(limiter, localLimiter), d.Lockout(lockout, localLockout)
		logger.Warn("MCPAUTH_DEGRADE_LIMITS is set: with Redis down, limits fall back to this instance alone")
	}
	return v, limiter, lockout, nil
}

// levelFloor drops records below a level, whatever the wrapped handler allows. Attributes
// added with With are kept aside and formatted only when a record is actually written: the
// embedded store calls With (with whole SQL statements) for every statement it runs.
type levelFloor struct {
	slog.Handler
	min   slog.Level
	attrs []slog.Attr
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) Handle(ctx context.Context, r slog.Record) error {
	if len(h.attrs) > 0 {
		return h.Handler.WithAttrs(h.attrs).Handle(ctx, r)
	}
	return h.Handler.Handle(ctx, r)
}

func (h levelFloor) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFloor{h.Handler, h.min, append(slices.Clip(h.attrs), attrs...)}
}

func (h levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(h.attrs).WithGroup(name), h.min, nil}
}

// lastServerError shortens the driver's server-selection error (a dump of the topology) to the
// last error it saw, which is what an operator needs.
func lastServerError(err error) string {
	msg := err.Error()
	if _, last, ok := strings.Cut(msg, "Last error: "); ok {
		if end := strings.Index(last, " }"); end > 0 {
			return last[:end]
		}
	}
	return msg
}

// auditStore opens the audit store. The embedded store (no MongoDB URI) gets no query indexes:
// FerretDB on SQLite never uses them, and they cost every insert a quarter of its CPU. The CLI
// opens it the same way, or it would build again the indexes the server dropped.
func auditStore(ctx context.Context, c config, db *mongo.Database) (*audit.MongoStore, error) {
	return audit.NewMongoStoreWith(ctx, db, audit.StoreOptions{NoQueryIndexes: c.MongoURI == "", SearchTimeout: c.AuditSearchTimeout})
}

// offIfZero maps the command line's 0 ("off") to auth.Config's negative ("off"; 0 there means
// the default).
func offIfZero[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
