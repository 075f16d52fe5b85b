package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/internal/embedmongo"
	"github.com/bduf/mcpauth/rbac"
)

func randRead(b []byte) (int, error) { return rand.Read(b) }

// mongoTimeout bounds reaching MongoDB at start: an unreachable URI is an error in seconds,
// not a hang.
const mongoTimeout = 5 * time.Second

// app is the wired service: store, keys, auth.
type app struct {
	auth    *auth.Service
	closers []func(context.Context) error
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

// openApp connects the store (starting the embedded one when no URI is set) and builds the
// auth service. Everything is wired here; no package reads the environment itself.
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
	sealer, err := auth.NewSealer(master)
	if err != nil {
		return nil, err
	}
	uri := c.MongoURI
	if uri == "" {
		// FerretDB logs every failed command at WARN: keep only its errors.
		storeLog := slog.New(logger.Handler()).With("component", "embedded-store")
		srv, err := embedmongo.Start(filepath.Join(c.DataDir, "store"), slog.New(levelFloor{storeLog.Handler(), slog.LevelError}))
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, srv.Stop)
		uri = srv.URI()
		logger.Debug("embedded store started", "dir", filepath.Join(c.DataDir, "store"))
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(mongoTimeout).SetConnectTimeout(mongoTimeout).SetAppName("mcpauth"))
	if err != nil {
		return nil, fmt.Errorf("MongoDB URI %s: %w", redactURI(uri), err)
	}
	a.closers = append(a.closers, client.Disconnect)
	pingCtx, cancel := context.WithTimeout(ctx, mongoTimeout)
	defer cancel()
	if err := client.Ping(pingCtx, nil); err != nil {
		return nil, fmt.Errorf("cannot reach MongoDB at %s within %s: %s", redactURI(uri), mongoTimeout, lastServerError(err))
	}
	store, err := auth.NewMongoStore(ctx, client.Database(c.MongoDB))
	if err != nil {
		return nil, err
	}
	keys, err := auth.LoadKeySet(ctx, store, sealer, c.SigningAlg, time.Now())
	if err != nil {
		return nil, err
	}
	if c.BcryptCost < auth.DefaultBcryptCost {
		logger.Warn("bcrypt cost below 10: for tests only", "cost", c.BcryptCost)
	}
	a.auth, err = auth.NewService(ctx, store, keys, auth.Config{
		Issuer: c.Issuer, Audience: c.Audience, AccessTTL: c.AccessTTL, RefreshTTL: c.RefreshTTL,
		BcryptCost: c.BcryptCost, Logger: logger,
		Scopes:     func(_ context.Context, u auth.User) ([]string, error) { return rbac.PermissionsOf(u.Roles), nil },
		RoleExists: rbac.IsBuiltinRole,
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// levelFloor drops records below a level, whatever the wrapped handler allows.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(attrs []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(attrs), h.min}
}

func (h levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(name), h.min}
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
