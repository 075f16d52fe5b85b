// Package embedmongo runs the embedded MongoDB-wire server (FerretDB v1, SQLite backend) in
// process on a free loopback port. Only cmd/ and test helpers import it; library packages talk
// to any MongoDB through the official driver and never know which one it is.
package embedmongo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// newMu serializes Start: tests start several servers in one process, in parallel.
var newMu sync.Mutex

// Server is a running embedded FerretDB.
type Server struct {
	uri    string
	cancel context.CancelFunc
	done   chan struct{}
	remove []string // removed at Stop: a Unix socket, its private directory
	ids    *idIndexer
	log    *slog.Logger
}

// Start runs FerretDB with its SQLite files under dir, listening on 127.0.0.1 on a free port:
// for tests that put a TCP proxy in front of it or share it between processes. The server and
// the CLI use StartPrivate. logger receives FerretDB's own logs (it is chatty: pass one at
// Warn or above).
func Start(dir string, logger *slog.Logger) (*Server, error) {
	return start(dir, ferretdb.ListenerConfig{TCP: "127.0.0.1:0"}, logger, "")
}

// StartPrivate runs FerretDB on a Unix socket inside dir, never a TCP port: FerretDB has no
// authentication, so a loopback port would let any local process (another user, another
// container of the pod) read the password hashes or edit the audit trail. The socket lives in
// the 0700 data directory, so only its owner can connect. Each process gets a socket of its
// own (the CLI may run beside the server on the same files); it is removed at Stop. Should the
// path be too long for a socket (about 100 bytes), it goes into a fresh 0700 directory under
// the system's temporary directory instead.
func StartPrivate(dir string, logger *slog.Logger) (*Server, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded store dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store dir: %w", err)
	}
	// The store's directory is ours alone, even if an older version or a hand made it wider:
	// the socket's protection is this directory's mode.
	if err := os.Chmod(abs, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store dir: %w", err)
	}
	sockDir, cleanup := abs, ""
	name := fmt.Sprintf("mongo-%d.sock", os.Getpid())
	if len(filepath.Join(sockDir, name)) > maxSocketPath {
		if sockDir, err = os.MkdirTemp("", "mcpauth-store-"); err != nil { // created 0700
			return nil, fmt.Errorf("embedded store socket: %w", err)
		}
		cleanup = sockDir
	}
	sock := filepath.Join(sockDir, name)
	_ = os.Remove(sock) // left by a process of this pid that died: no live one can own it
	s, err := start(abs, ferretdb.ListenerConfig{Unix: sock}, logger, "mongodb://"+url.PathEscape(sock)+"/")
	if err != nil {
		return nil, err
	}
	s.remove = []string{sock}
	if cleanup != "" {
		s.remove = append(s.remove, cleanup)
	}
	return s, nil
}

// maxSocketPath is a safe bound for a Unix socket's path (sun_path is 108 bytes on Linux, 104
// on the BSDs, with a terminating NUL).
const maxSocketPath = 100

func start(dir string, listener ferretdb.ListenerConfig, logger *slog.Logger, uri string) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded store dir: %w", err)
	}
	newMu.Lock() // ferretdb.New writes a package variable of FerretDB's: one at a time
	defer newMu.Unlock()
	// SQLite settings are FerretDB's defaults: journal_mode=WAL, busy_timeout=10000, and
	// SQLite's default synchronous=FULL (a commit is fsynced before it is acknowledged).
	// synchronous=NORMAL was measured (audit benchmark, 2 cores): about 4% less CPU per inserted
	// event, wall-clock 1.0-1.5x depending on how slow fsync is. It is not taken: under WAL it
	// survives a process crash (the WAL frames are written before COMMIT returns; only their
	// fsync waits for the next checkpoint) but not an OS crash or power loss, which can roll
	// back everything since the last checkpoint (up to ~1,000 pages, not a fixed 100 ms like
	// MongoDB's journal). That would reach past the audit trail to everything in this store:
	// refresh-token spends and TOTP step claims rolled back re-open reuse windows.
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  listener,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
		Logger:    slog.New(lazyAttrs{Handler: logger.Handler()}),
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded store: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cancel: cancel, done: make(chan struct{}), ids: &idIndexer{dir: abs, dbs: map[string]*sql.DB{}}, log: logger}
	indexed := make(chan struct{})
	go func() {
		defer close(s.done)
		defer func() { <-indexed; s.ids.close() }()
		_ = f.Run(ctx)
	}()
	go func() { // collections created after start get their _id index within indexEvery
		defer close(indexed)
		s.indexIDs(ctx)
		t := time.NewTicker(indexEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.indexIDs(ctx)
			}
		}
	}()
	// MongoDBURI blocks until the listener is bound (FerretDB's own form of a Unix socket URI
	// is not one the driver reads: uri, when given, is).
	s.uri = f.MongoDBURI()
	if uri != "" {
		s.uri = uri
	}
	return s, nil
}

func (s *Server) indexIDs(ctx context.Context) {
	if _, err := s.IndexIDs(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("could not add the _id index to the embedded store (lookups by _id scan until it is)", "error", err)
	}
}

// URI is the mongodb:// address of the server.
func (s *Server) URI() string { return s.uri }

// Stop shuts the server down and waits for it, at most until ctx ends. Disconnect clients
// first: FerretDB waits for open connections to go idle.
func (s *Server) Stop(ctx context.Context) error {
	s.cancel()
	defer func() {
		for _, p := range s.remove {
			_ = os.Remove(p)
		}
	}()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return errors.New("embedded store did not stop in time")
	}
}

// StopTimeout is a sensible bound for Stop.
const StopTimeout = 10 * time.Second

// lazyAttrs keeps the attributes added with With aside and formats them only when a record is
// actually written. FerretDB calls Logger.With with every SQL statement's arguments (whole
// documents) before each statement, and again after it, whatever the level: a TextHandler or
// JSONHandler formats (and quotes) those attributes at once in WithAttrs: with the test
// helpers' TextHandler that was about 12% of the CPU of the audit insert benchmark, for log lines
// that are never written. (The server's own levelFloor in cmd/internal/app does the same; this
// covers every caller.)
type lazyAttrs struct {
	slog.Handler
	attrs []slog.Attr
}

func (h lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	if len(h.attrs) > 0 {
		return h.Handler.WithAttrs(h.attrs).Handle(ctx, r)
	}
	return h.Handler.Handle(ctx, r)
}

func (h lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return lazyAttrs{h.Handler, append(slices.Clip(h.attrs), attrs...)}
}

func (h lazyAttrs) WithGroup(name string) slog.Handler {
	return lazyAttrs{h.Handler.WithAttrs(h.attrs).WithGroup(name), nil}
}
