// Package embedmongo runs the embedded MongoDB-wire server (FerretDB v1, SQLite backend) in
// process on a free loopback port. Only cmd/ and test helpers import it; library packages talk
// to any MongoDB through the official driver and never know which one it is.
package embedmongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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
}

// Start runs FerretDB with its SQLite files under dir, listening on 127.0.0.1 on a free port.
// logger receives FerretDB's own logs (it is chatty: pass one at Warn or above).
func Start(dir string, logger *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded store dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded store dir: %w", err)
	}
	newMu.Lock() // ferretdb.New writes a package variable of FerretDB's: one at a time
	defer newMu.Unlock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
		Logger:    logger,
	})
	if err != nil {
		return nil, fmt.Errorf("start embedded store: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = f.Run(ctx)
	}()
	// MongoDBURI blocks until the listener is bound.
	s.uri = f.MongoDBURI()
	return s, nil
}

// URI is the mongodb:// address of the server.
func (s *Server) URI() string { return s.uri }

// Stop shuts the server down and waits for it, at most until ctx ends. Disconnect clients
// first: FerretDB waits for open connections to go idle.
func (s *Server) Stop(ctx context.Context) error {
	s.cancel()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return errors.New("embedded store did not stop in time")
	}
}

// StopTimeout is a sensible bound for Stop.
const StopTimeout = 10 * time.Second
