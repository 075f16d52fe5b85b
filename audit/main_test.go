package audit_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/internal/mongotest"
)

func TestMain(m *testing.M) { mongotest.Main(m) }

// waitFor is how long a test waits for a condition before failing.
const waitFor = 30 * time.Second

var quiet = slog.New(slog.DiscardHandler)

// eventually polls cond until it holds, failing t after waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	return ctx
}

func mustOK(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// newStore returns a store on a fresh database of the shared test server.
func newStore(t testing.TB) (*audit.MongoStore, *mongo.Database) {
	t.Helper()
	db := mongotest.Database(t)
	s, err := audit.NewMongoStore(context.Background(), db)
	mustOK(t, "new store", err)
	return s, db
}

// newWriter starts a writer closed (if the test has not closed it) when t ends.
func newWriter(t testing.TB, s *audit.MongoStore, cfg audit.WriterConfig) *audit.Writer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	w, err := audit.NewWriter(context.Background(), s, cfg)
	mustOK(t, "new writer", err)
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

// event is a recordable event numbered n.
func event(n int) audit.Event {
	return audit.Event{
		Type: audit.AuthSuccess, Subject: fmt.Sprintf("usr_%d", n%7), Actor: "usr_admin", OrgID: "acme",
		ClientAddr: "192.0.2.1", Transport: "http", RequestID: fmt.Sprintf("req_%d", n), SessionID: "ses_1",
		Details: map[string]any{"n": n, "nested": map[string]any{"b": []any{1, "two", true}, "a": 1.5}},
	}
}

// writeChain records n events on a new writer of instance and closes it.
func writeChain(t testing.TB, s *audit.MongoStore, instance string, n int) {
	t.Helper()
	w := newWriter(t, s, audit.WriterConfig{Instance: instance, FlushEvery: time.Millisecond})
	ctx := ctxFor(t)
	for i := 1; i <= n; i++ {
		mustOK(t, "record", w.Record(ctx, event(i)))
	}
	mustOK(t, "close", w.Close(ctx))
}

// stored reads every stored event of a chain in Seq order.
func stored(t testing.TB, db *mongo.Database, instance string) []audit.Event {
	t.Helper()
	ctx := ctxFor(t)
	cur, err := db.Collection("audit_events").Find(ctx, bson.D{{Key: "instance", Value: instance}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	mustOK(t, "find events", err)
	var events []audit.Event
	mustOK(t, "read events", cur.All(ctx, &events))
	return events
}

// mustBeOneUnbrokenRun checks that a chain holds exactly positions 1..n, once each.
func mustBeOneUnbrokenRun(t testing.TB, events []audit.Event, n int) {
	t.Helper()
	if len(events) != n {
		t.Fatalf("stored %d events, want %d", len(events), n)
	}
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d, want %d", i, e.Seq, i+1)
		}
	}
}

func mustVerify(t testing.TB, s *audit.MongoStore, chains int, checked int64) {
	t.Helper()
	res, err := s.Verify(ctxFor(t), time.Time{}, nil)
	mustOK(t, "verify", err)
	if !res.OK || res.FirstBad != nil || res.Chains != chains || res.Checked != checked {
		t.Fatalf("verify = %+v (first bad %+v), want ok with %d chains and %d checked", res, res.FirstBad, chains, checked)
	}
}

func countEvents(t testing.TB, db *mongo.Database, filter bson.D) int64 {
	t.Helper()
	n, err := db.Collection("audit_events").CountDocuments(ctxFor(t), filter)
	mustOK(t, "count events", err)
	return n
}

// tcpProxy stands between a writer and MongoDB so a test can take MongoDB away: Cut closes
// every connection and refuses new ones until Restore; Pause holds all traffic until Resume.
type tcpProxy struct {
	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	target string
	down   bool
	gate   chan struct{} // closed while traffic flows
	conns  map[net.Conn]struct{}
}

func newProxy(t testing.TB, targetURI string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	mustOK(t, "proxy listen", err)
	p := &tcpProxy{ln: ln, target: hostOf(t, targetURI), gate: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.gate)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func hostOf(t testing.TB, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	mustOK(t, "parse uri", err)
	return u.Host
}

// URI is the proxy's mongodb:// address.
func (p *tcpProxy) URI() string { return "mongodb://" + p.ln.Addr().String() + "/" }

func (p *tcpProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		target := p.target
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.handle(c, target)
	}
}

func (p *tcpProxy) handle(c net.Conn, target string) {
	defer p.wg.Done()
	up, err := net.Dial("tcp", target)
	if err != nil {
		p.drop(c)
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		up.Close()
		p.drop(c)
		return
	}
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); p.pipe(up, c) }()
	go func() { defer pipes.Done(); p.pipe(c, up) }()
	pipes.Wait()
}

// pipe copies src to dst, holding each chunk while the proxy is paused; when either side ends
// it closes both.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.drop(dst)
	defer p.drop(src)
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *tcpProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// Cut closes every connection and refuses new ones: MongoDB is unreachable.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	p.down = true
	conns := slices.Collect(func(yield func(net.Conn) bool) {
		for c := range p.conns {
			if !yield(c) {
				return
			}
		}
	})
	p.mu.Unlock()
	p.Resume() // a paused pipe must see its connection closed
	for _, c := range conns {
		c.Close()
	}
}

// Restore accepts connections again, forwarding them to targetURI ("" keeps the target).
func (p *tcpProxy) Restore(targetURI string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if targetURI != "" {
		u, _ := url.Parse(targetURI)
		p.target = u.Host
	}
	p.down = false
}

// Pause holds all traffic (connections stay open) until Resume.
func (p *tcpProxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
		p.gate = make(chan struct{})
	default:
	}
}

// Resume lets held traffic through.
func (p *tcpProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
}

func (p *tcpProxy) close() {
	p.Cut()
	p.ln.Close()
	p.wg.Wait()
}

// connect returns a client through uri with short timeouts (a test takes MongoDB away).
func connect(t testing.TB, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(500 * time.Millisecond).SetConnectTimeout(500 * time.Millisecond))
	mustOK(t, "connect", err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Disconnect(ctx)
	})
	return c
}

// proxiedStore returns a store reaching the test server through a proxy, and the same database
// reached directly (for checking what is stored).
func proxiedStore(t testing.TB) (*audit.MongoStore, *mongo.Database, *tcpProxy) {
	t.Helper()
	direct := mongotest.Database(t)
	p := newProxy(t, mongotest.URI())
	db := connect(t, p.URI()).Database(direct.Name())
	s, err := audit.NewMongoStore(ctxFor(t), db)
	mustOK(t, "new store", err)
	return s, direct, p
}
