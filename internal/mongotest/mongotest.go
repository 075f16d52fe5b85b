// Package mongotest gives tests a real MongoDB-wire server: the embedded FerretDB started once
// per test binary, or a real MongoDB when MCPAUTH_TEST_MONGO_URI is set. Each test gets a fresh
// database, dropped when it ends.
package mongotest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/internal/embedmongo"
)

// EnvURI names the variable that points tests at a real MongoDB.
const EnvURI = "MCPAUTH_TEST_MONGO_URI"

var (
	client  *mongo.Client
	uri     string
	counter atomic.Int64
	prefix  = fmt.Sprintf("t%d_", time.Now().UnixNano()%1e9)
)

// Main starts the server, runs the package's tests and tears it down. Call it from TestMain.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	uri = os.Getenv(EnvURI)
	if uri == "" {
		dir, err := os.MkdirTemp("", "mcpauth-ferretdb-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "mongotest:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		srv, err = embedmongo.Start(dir, logger)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mongotest:", err)
			return 1
		}
		uri = srv.URI()
	}
	var err error
	client, err = mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mongotest: connect:", err)
		return 1
	}
	code := m.Run()
	ctx, cancel := context.WithTimeout(context.Background(), embedmongo.StopTimeout)
	defer cancel()
	_ = client.Disconnect(ctx)
	if srv != nil {
		_ = srv.Stop(ctx)
	}
	return code
}

// srv is the embedded server (nil on MCPAUTH_TEST_MONGO_URI).
var srv *embedmongo.Server

// IndexIDs adds the embedded store's _id index to every collection now (the server also does it
// every few seconds): for benchmarks that seed collections and measure at once. Nothing to do on
// a real MongoDB.
func IndexIDs(ctx context.Context) error {
	if srv == nil {
		return nil
	}
	_, err := srv.IndexIDs(ctx)
	return err
}

// URI returns the server's address (for tests that start a process against it).
func URI() string { return uri }

// Client returns the shared client.
func Client() *mongo.Client { return client }

// Database returns a fresh database for t, dropped when t ends.
func Database(t testing.TB) *mongo.Database {
	t.Helper()
	if client == nil {
		t.Fatal("mongotest: call mongotest.Main from TestMain")
	}
	name := DatabaseName(t)
	db := client.Database(name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
	})
	return db
}

// DatabaseName returns a unique, valid database name for t (not created until used).
func DatabaseName(t testing.TB) string {
	n := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	if len(n) > 30 {
		n = n[:30]
	}
	return fmt.Sprintf("%s%d_%s", prefix, counter.Add(1), n)
}

// LosableDatabase returns a fresh database for t on a client of its own, and lose, which
// disconnects that client: from then on every operation on the database fails as it does when
// the server is gone, so a store's failure paths can be driven against the real driver.
func LosableDatabase(t testing.TB) (db *mongo.Database, lose func()) {
	t.Helper()
	return ownDatabase(t, options.Client())
}

// MonitoredDatabase returns a fresh database for t on a client of its own that reports every
// command to monitor: for tests that prove what a store asks the server (such as only _id
// look-ups, which FerretDB v1 answers without a scan).
func MonitoredDatabase(t testing.TB, monitor *event.CommandMonitor) *mongo.Database {
	t.Helper()
	db, _ := ownDatabase(t, options.Client().SetMonitor(monitor))
	return db
}

// ownDatabase returns a fresh database for t on a client of its own made with opts, and the
// disconnect of that client (also run, with the drop of the database, when t ends).
func ownDatabase(t testing.TB, opts *options.ClientOptions) (db *mongo.Database, disconnect func()) {
	t.Helper()
	if client == nil {
		t.Fatal("mongotest: call mongotest.Main from TestMain")
	}
	own, err := mongo.Connect(opts.ApplyURI(uri).SetServerSelectionTimeout(time.Second))
	if err != nil {
		t.Fatalf("mongotest: connect: %v", err)
	}
	db = own.Database(DatabaseName(t))
	disconnect = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = own.Disconnect(ctx)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = client.Database(db.Name()).Drop(ctx)
		disconnect()
	})
	return db, disconnect
}
