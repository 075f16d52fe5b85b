package main

// Scale-out end to end: three real mcpauth instances sharing one MongoDB-wire server (through a
// TCP proxy the test can cut) and one Redis, behind a real HAProxy running deploy/haproxy.cfg;
// what a request sees must not depend on the instance it lands on, and faults under load (an
// instance killed, MongoDB away) lose nothing acknowledged.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/internal/haproxytest"
	"github.com/bduf/mcpauth/internal/mcptest"
	"github.com/bduf/mcpauth/internal/redistest"
)

var startRedis = redistest.Start

func dialHTTPFrom(t testing.TB, srv *httpServer, ip string) *conn {
	t.Helper()
	return mcptest.DialHTTPFrom(t, srv, ip)
}

// clientFrom is an HTTP client whose connections come from the local address ip.
func clientFrom(t testing.TB, ip string) *http.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}).DialContext
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func mustJSON(v any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ")
	return b
}

// haproxyConfig is the example configuration of deploy/, which these tests run as is.
const haproxyConfig = "../../deploy/haproxy.cfg"

// phase is how long the load runs before, between and after the faults: 2 s in CI; the long
// version sets MCPAUTH_SCALEOUT_PHASE (e.g. 1m).
var phase = func() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("MCPAUTH_SCALEOUT_PHASE")); err == nil && d > 0 {
		return d
	}
	return 2 * time.Second
}()

// fleet is three instances behind HAProxy.
type fleet struct {
	t       testing.TB
	env     [][]string // each instance's environment
	addrs   []string   // each instance's host:port
	srv     []*httpServer
	lb      *haproxytest.LB
	front   *httpServer // the balancer, as the tests' clients dial it
	mongo   *tcpProxy
	storeDB string
	storeAt string // the MongoDB-wire server's URI (not through the proxy)
	owner   args
}

// startFleet starts the store, the instances (the first bootstraps the owner) and HAProxy, and
// waits until HAProxy sees all three ready. redisURL is the Redis they share.
func startFleet(t testing.TB, redisURL string, extraEnv ...string) *fleet {
	t.Helper()
	uri, db := sharedStore(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	f := &fleet{t: t, mongo: newTCPProxy(t, uri), storeDB: db, storeAt: uri}
	in := &instance{MongoURI: f.mongo.URI(), MongoDB: db, OwnerEmail: "owner@example.com",
		OwnerPassword: "e2e-Owner-" + randomHex(8), Bootstrap: true,
		Extra: append([]string{"MCPAUTH_MASTER_KEY=" + base64.StdEncoding.EncodeToString(key), "MCPAUTH_REDIS_URL=" + redisURL,
			"MCPAUTH_TRUSTED_PROXIES=127.0.0.1"}, extraEnv...)}
	f.owner = in.Owner()
	for i := range 3 {
		in.DataDir = t.TempDir()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f.addrs = append(f.addrs, l.Addr().String())
		l.Close()
		f.env = append(f.env, in.Env())
		f.srv = append(f.srv, nil)
		f.start(i)
	}
	f.lb = haproxytest.Start(t, haproxyConfig, f.addrs)
	f.lb.AwaitUp(t, "ready", 3, 10*time.Second)
	f.front = &httpServer{Proc: &mcptest.Proc{Stderr: mcptest.NewLogBuffer()}, URL: f.lb.URL}
	return f
}

// start (re)starts instance i on its address, with its data directory.
func (f *fleet) start(i int) {
	f.t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		p := mcptest.StartProc(f.t, binPath, f.env[i], nil, "serve", "--transport", "http", "--listen", f.addrs[i])
		m, err := p.Stderr.WaitFor(mcptest.ListeningLine, p.Exited, mcptest.StartTimeout)
		if err == nil {
			f.srv[i] = &httpServer{Proc: p, URL: m[1]}
			return
		}
		if !strings.Contains(p.Stderr.String(), "address already in use") || time.Now().After(deadline) {
			f.t.Fatalf("instance %d: %v\n%s", i+1, err, p.Stderr)
		}
		// The killed process's port lingers a moment.
	}
}

// logs is every instance's log so far.
func (f *fleet) logs() string {
	var b strings.Builder
	for _, s := range f.srv {
		b.WriteString(s.Stderr.String())
	}
	return b.String()
}

// statelessCall is one tools/call of the stateless protocol (no session: any instance answers
// it) through url, with token; ok reports a result that is not an error.
func statelessCall(ctx context.Context, client *http.Client, url, token, tool string, a args, header ...string) (ok bool, detail string) {
	argJSON, _ := json.Marshal(a)
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `","arguments":` + string(argJSON) + `,` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},` +
		`"io.modelcontextprotocol/clientInfo":{"name":"e2e-load","version":"1"}}}}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/mcp", strings.NewReader(body))
	if err != nil {
		return false, err.Error()
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", tool)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	var r struct {
		Result struct {
			IsError bool `json:"isError"`
		} `json:"result"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(out.Bytes(), &r) != nil || r.Result.IsError {
		return false, fmt.Sprintf("%d %.200s", resp.StatusCode, out.String())
	}
	return true, ""
}

// loadRun is a load's answers, counted per 100 ms since its start.
type loadRun struct {
	start  time.Time
	mu     sync.Mutex
	ok     map[int]int
	failed map[int]int
	errs   []string
}

const bucket = 100 * time.Millisecond

// startLoad has workers call tool through url as fast as they get answers, until the returned
// stop is called.
func startLoad(t *testing.T, url, token, tool string, a args, workers int) (*loadRun, func()) {
	t.Helper()
	l := &loadRun{start: time.Now(), ok: map[int]int{}, failed: map[int]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				ok, detail := statelessCall(ctx, client, url, token, tool, a)
				if ctx.Err() != nil {
					return
				}
				l.add(ok, detail)
			}
		})
	}
	return l, func() { cancel(); wg.Wait() }
}

func (l *loadRun) add(ok bool, detail string) {
	b := int(time.Since(l.start) / bucket)
	l.mu.Lock()
	defer l.mu.Unlock()
	if ok {
		l.ok[b]++
		return
	}
	l.failed[b]++
	if len(l.errs) < 5 {
		l.errs = append(l.errs, detail)
	}
}

// window counts the answers between two instants of the run.
func (l *loadRun) window(from, to time.Time) (ok, failed int, perSecond float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, z := int(from.Sub(l.start)/bucket), int(to.Sub(l.start)/bucket)
	for b := a; b < z; b++ {
		ok += l.ok[b]
		failed += l.failed[b]
	}
	return ok, failed, float64(ok) / to.Sub(from).Seconds()
}

// recovered is the first instant after from from which no answer failed until to.
func (l *loadRun) recovered(from, to time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := int(from.Sub(l.start)/bucket) - 1
	for b := last + 1; b < int(to.Sub(l.start)/bucket); b++ {
		if l.failed[b] > 0 {
			last = b
		}
	}
	return l.start.Add(time.Duration(last+1) * bucket)
}

// openLegacySession opens a streamable HTTP session of protocol 2025-06-18 (2026-07-28 has none)
// through url with mcp-go's client, every request on a connection of its own (a kept-alive
// connection would stay on one instance anyway); the client does not start a new session on a
// 404. It is closed when t ends.
func openLegacySession(t *testing.T, url, token string) *mcpclient.Client {
	t.Helper()
	ctx := context.Background()
	c, err := mcpclient.NewStreamableHttpClient(url+"/mcp",
		transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}),
		transport.WithHTTPBasicClient(&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init := mcpgo.InitializeRequest{}
	init.Params.ClientInfo = mcptest.ClientInfo
	init.Params.ProtocolVersion = "2025-06-18"
	if res, err := c.Initialize(ctx, init); err != nil || res.ProtocolVersion != "2025-06-18" || c.GetSessionId() == "" {
		t.Fatalf("initialize through the balancer: %v (protocol %v, session %q)", err, res, c.GetSessionId())
	}
	return c
}

func whoami(c *mcpclient.Client) error {
	req := mcpgo.CallToolRequest{}
	req.Params.Name = "auth_whoami"
	_, err := c.CallTool(context.Background(), req)
	return err
}

// awaitRefusedEverywhere waits until credential's calls of tool are refused by every instance
// (six calls through the balancer: each instance twice), failing t after propagation.
func (f *fleet) awaitRefusedEverywhere(t *testing.T, credential, tool, what string) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	since := time.Now()
	for {
		accepted := 0
		for range 6 {
			if ok, _ := statelessCall(context.Background(), client, f.lb.URL, credential, tool, nil); ok {
				accepted++
			}
		}
		if accepted == 0 {
			return
		}
		if time.Since(since) > propagation {
			t.Fatalf("%s still works on %d of 6 calls %s after", what, accepted, time.Since(since))
		}
	}
}

// What a request sees does not depend on where it lands: a token from one instance is good on
// all, a revocation through the balancer holds on all within a second, a streamable session
// sticks to its instance, a role change is seen everywhere, and the client's address (not the
// proxy's, and not one the client claims) is what limits and the audit trail see.
func TestShouldBehaveTheSameOnEveryInstanceBehindTheBalancer(t *testing.T) {
	t.Parallel()
	f := startFleet(t, "redis://"+startRedis(t), "MCPAUTH_LOCKOUT=3/15m/10m/1h", "MCPAUTH_RATE_LIMITS=login_id=8/1m/8")
	owner := dialHTTPFrom(t, f.front, "127.0.0.3")
	tok := owner.Login(t, nil, f.owner)
	client := &http.Client{Timeout: 10 * time.Second}
	ctx := context.Background()
	// Spread over the three: every one answers with the token another issued.
	for range 30 {
		if ok, detail := statelessCall(ctx, client, f.lb.URL, tok.AccessToken, "auth_whoami", nil); !ok {
			t.Fatalf("whoami through the balancer: %s", detail)
		}
	}
	for _, s := range f.lb.Servers(t, "ready") {
		if s.Sessions == 0 {
			t.Errorf("instance %s served nothing of 30 calls: %+v", s.Name, f.lb.Servers(t, "ready"))
		}
	}
	// A streamable HTTP session (protocol 2025-06-18: 2026-07-28 has none) sticks to the
	// instance that made it: twenty calls in it, each on a connection of its own (a kept-alive
	// connection would stay on one instance anyway), from mcp-go's client, which does not start
	// a new session on a 404.
	sticky := openLegacySession(t, f.lb.URL, tok.AccessToken)
	for i := range 20 {
		if err := whoami(sticky); err != nil {
			t.Fatalf("call %d in a streamable session through the balancer: %v", i, err)
		}
	}
	// A revocation anywhere holds everywhere within a second.
	victim := dialHTTPFrom(t, f.front, "127.0.0.4").Login(t, nil, f.owner)
	if ok, detail := statelessCall(ctx, client, f.lb.URL, tok.AccessToken, "auth_revoke", args{"token": victim.AccessToken}); !ok {
		t.Fatalf("revoke: %s", detail)
	}
	f.awaitRefusedEverywhere(t, victim.AccessToken, "auth_whoami", "the revoked token")
	// An API key made through one instance works on all; revoked through one, it is refused by
	// all within a second.
	key := decode[struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}](t, owner.Call(t, "apikey_create", args{"name": "fleet", "permissions": []string{"users:read"}}))
	for range 6 {
		if ok, detail := statelessCall(ctx, client, f.lb.URL, key.Key, "user_list", nil); !ok {
			t.Fatalf("the API key through the balancer: %s", detail)
		}
	}
	if ok, detail := statelessCall(ctx, client, f.lb.URL, tok.AccessToken, "apikey_revoke", args{"id": key.ID}); !ok {
		t.Fatalf("apikey_revoke: %s", detail)
	}
	f.awaitRefusedEverywhere(t, key.Key, "user_list", "the revoked API key")
	// A user made through one instance loses a role through another: every instance refuses
	// what the role gave within a second (a token carries the permissions of its login, and
	// each call is held to the live ones).
	u := owner.CreateUser(t, "scale@example.com", "Scale-password-123", "admin")
	userTok := dialHTTPFrom(t, f.front, "127.0.0.5").Login(t, nil, args{"email": "scale@example.com", "password": "Scale-password-123"})
	if ok, detail := statelessCall(ctx, client, f.lb.URL, userTok.AccessToken, "user_list", nil); !ok {
		t.Fatalf("an admin's user_list: %s", detail)
	}
	if ok, detail := statelessCall(ctx, client, f.lb.URL, tok.AccessToken, "role_revoke", args{"user_id": u.ID, "role": "admin"}); !ok {
		t.Fatalf("role_revoke: %s", detail)
	}
	f.awaitRefusedEverywhere(t, userTok.AccessToken, "user_list", "the role taken back")
	// The lockout counts the client's address, whatever X-Forwarded-For it sends: three wrong
	// passwords from 127.0.0.6 lock that address; the owner's address is not locked.
	guesser := clientFrom(t, "127.0.0.6")
	for i := range 4 {
		spoof := fmt.Sprintf("203.0.113.%d", i)
		if ok, _ := statelessCall(ctx, guesser, f.lb.URL, "", "auth_login", args{"email": "scale@example.com", "password": "wrong-password-" + spoof},
			"X-Forwarded-For", spoof); ok {
			t.Fatal("a wrong password logged in")
		}
	}
	// (The instances' logs reach the test through pipes: the line may lag the answer.)
	for deadline := time.Now().Add(5 * time.Second); lockedLines(f.logs(), u.ID) != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("%d refusals as locked of the 4th guess from one address with four claimed addresses, want 1 (the claimed addresses are not the client's)",
				lockedLines(f.logs(), u.ID))
		}
		time.Sleep(20 * time.Millisecond) // polling a log
	}
	dialHTTPFrom(t, f.front, "127.0.0.7").Login(t, nil, args{"email": "scale@example.com", "password": "Scale-password-123"})
	// The login rate of one identifier is one budget, whichever instances the logins reach: 8 a
	// minute (MCPAUTH_RATE_LIMITS); 6 spent above (a login, 4 guesses, a login), so 2 more pass
	// and the next is refused (with a budget per instance, 18 more would).
	loginFrom := clientFrom(t, "127.0.0.9")
	passed := 0
	for ; passed < 9; passed++ {
		ok, detail := statelessCall(ctx, loginFrom, f.lb.URL, "", "auth_login", args{"email": "scale@example.com", "password": "Scale-password-123"})
		if !ok {
			if !strings.Contains(detail, "RATE_LIMITED") {
				t.Fatalf("login %d: %s", passed+1, detail)
			}
			break
		}
	}
	if passed != 2 {
		t.Errorf("%d more logins passed before RATE_LIMITED, want 2: one budget of 8 across the instances", passed)
	}
	var failed []storedEvent
	for deadline := time.Now().Add(5 * time.Second); len(failed) < 3; failed = f.events(t, bson.M{"type": "AUTH_FAILED", "subject": u.ID}) {
		if time.Now().After(deadline) {
			t.Fatalf("%d AUTH_FAILED events of the guesser's 3 wrong passwords in the store", len(failed))
		}
		time.Sleep(50 * time.Millisecond) // the trail is written in batches
	}
	for _, e := range failed {
		if e.ClientAddr != "127.0.0.6" {
			t.Errorf("a failed login of the guesser is recorded from %q, want its address 127.0.0.6 (not the proxy's, not the one it claimed)", e.ClientAddr)
		}
	}
}

// An instance killed under load: the balancer routes around it, the calls in flight to it are
// the only failures, streamable sessions start again elsewhere, and every acknowledged audit
// event is stored (the killed instance's, once it starts again, from its spill file if it had
// one).
func TestShouldRouteAroundAKilledInstanceAndLoseNoAcknowledgedEvent(t *testing.T) {
	t.Parallel()
	f := startFleet(t, "redis://"+startRedis(t), "MCPAUTH_RATE_LIMITS=calls=1000000/1m/100000")
	owner := dialHTTP(t, f.front)
	tok := owner.Login(t, nil, f.owner)
	// A streamable session on the instance to be killed (sessions go round the instances).
	var onVictim *mcpclient.Client
	for range 12 {
		c := openLegacySession(t, f.lb.URL, tok.AccessToken)
		if f.lb.StuckTo(t, "ready", c.GetSessionId()) == "i2" {
			onVictim = c
			break
		}
	}
	if onVictim == nil {
		t.Fatal("no session of 12 went to i2")
	}
	const workers = 8
	load, stop := startLoad(t, f.lb.URL, tok.AccessToken, "auth_whoami", nil, workers)
	// Beside the load, users are created one after another: USER_CREATED is recorded durably
	// before user_create answers.
	stopCreating := startCreating(f.lb.URL, tok.AccessToken, "u")
	time.Sleep(phase) // load before the fault: measured, not awaited
	killed := time.Now()
	if err := f.srv[1].Cmd.Process.Kill(); err != nil { // SIGKILL: no drain, no goodbye
		t.Fatal(err)
	}
	<-f.srv[1].Exited
	f.lb.AwaitUp(t, "ready", 2, 5*time.Second)
	down := time.Now()
	// Its session is gone with it: another instance answers 404, and the client starts a new
	// session, as MCP clients do.
	if err := whoami(onVictim); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a call in the killed instance's session: %v, want the 404 that makes the client start again", err)
	}
	if err := whoami(openLegacySession(t, f.lb.URL, tok.AccessToken)); err != nil {
		t.Errorf("a new session after the kill: %v", err)
	}
	time.Sleep(phase) // load on two instances
	f.start(1)
	f.lb.AwaitUp(t, "ready", 3, 10*time.Second)
	back := time.Now()
	time.Sleep(phase) // load on three again
	end := time.Now()
	made := stopCreating()
	stop()

	okBefore, failBefore, rateBefore := load.window(killed.Add(-phase), killed)
	_, failDuring, rateDuring := load.window(killed, back)
	okAfter, failAfter, rateAfter := load.window(back, end)
	recovery := load.recovered(killed, end).Sub(killed)
	t.Logf("calls/s: before %.0f, instance down %.0f, after %.0f; failed: before %d, during %d, after %d; "+
		"no failure from %s after the kill (the balancer saw it down after %s); users created %d, refused %d; errors %q",
		rateBefore, rateDuring, rateAfter, failBefore, failDuring, failAfter, recovery.Round(bucket), down.Sub(killed).Round(bucket),
		len(made.created), len(made.refused), load.errs)
	mcptest.Artifact(t, "scaleout-kill.json", mustJSON(map[string]any{"calls_per_s_before": rateBefore, "calls_per_s_down": rateDuring,
		"calls_per_s_after": rateAfter, "failed_before": failBefore, "failed_during": failDuring, "failed_after": failAfter,
		"recovery_ms": recovery.Milliseconds(), "detected_down_ms": down.Sub(killed).Milliseconds(), "workers": workers}))
	if failBefore != 0 || failAfter != 0 || okBefore == 0 || okAfter == 0 {
		t.Errorf("failures outside the fault: %d before, %d after (ok %d, %d)", failBefore, failAfter, okBefore, okAfter)
	}
	if failDuring > workers+1 { // each worker had at most one call in flight to the killed instance (and the creator one)
		t.Errorf("%d calls failed around the kill, want at most the %d in flight", failDuring, workers+1)
	}
	// Every user whose creation was acknowledged has its USER_CREATED event in the store.
	awaitUserCreatedEvents(t, f, made.created)
}

// userExists reports whether the store holds a user with email.
func (f *fleet) userExists(t *testing.T, email string) bool {
	t.Helper()
	ctx := context.Background()
	c, err := mongo.Connect(options.Client().ApplyURI(f.storeAt))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(ctx) }()
	n, err := c.Database(f.storeDB).Collection("users").CountDocuments(ctx, bson.M{"email": email})
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// storedEvent is an audit event as the store holds it.
type storedEvent struct {
	Subject    string `bson:"subject"`
	ClientAddr string `bson:"client_addr"`
}

// events are the audit events in the store that match filter.
func (f *fleet) events(t *testing.T, filter bson.M) []storedEvent {
	t.Helper()
	ctx := context.Background()
	c, err := mongo.Connect(options.Client().ApplyURI(f.storeAt))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(ctx) }()
	cur, err := c.Database(f.storeDB).Collection("audit_events").Find(ctx, filter)
	if err != nil {
		t.Fatal(err)
	}
	var evs []storedEvent
	if err := cur.All(ctx, &evs); err != nil {
		t.Fatal(err)
	}
	return evs
}

// creations are the answers of a startCreating run.
type creations struct {
	created, refused []string // the emails
	slowest          time.Duration
}

// startCreating creates users prefix0@example.com, prefix1@... through url one after another
// until the returned stop, which returns every answer.
func startCreating(url, token, prefix string) (stop func() creations) {
	var out creations
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		client := &http.Client{Timeout: 30 * time.Second}
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			email := fmt.Sprintf("%s%d@example.com", prefix, i)
			began := time.Now()
			ok, _ := statelessCall(context.Background(), client, url, token, "user_create", args{"email": email, "password": "Created-password-123"})
			out.slowest = max(out.slowest, time.Since(began))
			if ok {
				out.created = append(out.created, email)
			} else {
				out.refused = append(out.refused, email)
			}
		}
	})
	return func() creations {
		close(done)
		wg.Wait()
		return out
	}
}

// awaitUserCreatedEvents waits (the restarted instance replays its spill file) until the store holds a
// USER_CREATED event for each of emails' users.
func awaitUserCreatedEvents(t *testing.T, f *fleet, emails []string) {
	t.Helper()
	ctx := context.Background()
	c, err := mongo.Connect(options.Client().ApplyURI(f.storeAt))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Disconnect(ctx) }()
	db := c.Database(f.storeDB)
	ids := map[string]string{} // user id → email
	for _, e := range emails {
		var u struct {
			ID string `bson:"_id"`
		}
		if err := db.Collection("users").FindOne(ctx, bson.M{"email": e}).Decode(&u); err != nil {
			t.Fatalf("user %s acknowledged but not stored: %v", e, err)
		}
		ids[u.ID] = e
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := f.events(t, bson.M{"type": "USER_CREATED"})
		missing := maps.Clone(ids)
		for _, e := range evs {
			delete(missing, e.Subject)
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged users have no USER_CREATED event: %v", len(missing), len(ids), slices.Collect(maps.Values(missing)))
		}
		time.Sleep(100 * time.Millisecond) // the spill file is replayed on its own schedule
	}
}

// phases measures a load around a fault: before it, while it lasts, after it ends.
type phases struct {
	load                     *loadRun
	start, fault, end, until time.Time
}

// awaitClean waits until the load has answered without a failure for clean, the last failure
// after from, and returns when that clean stretch began.
func (l *loadRun) awaitClean(t *testing.T, from time.Time, clean, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		now := time.Now()
		if r := l.recovered(from, now); now.Sub(r) >= clean {
			return r
		}
		if now.After(deadline) {
			t.Fatalf("the load still fails %s after the fault: %q", time.Since(from).Round(bucket), l.errs)
		}
		time.Sleep(bucket) // the answers are counted per bucket
	}
}

func (p phases) report(t *testing.T, name string, extra map[string]any) map[string]any {
	t.Helper()
	_, failBefore, rateBefore := p.load.window(p.start, p.fault)
	_, failDuring, rateDuring := p.load.window(p.fault, p.end)
	_, failAfter, rateAfter := p.load.window(p.end, p.until)
	recovery := p.load.recovered(p.fault, p.until).Sub(p.fault)
	out := map[string]any{"calls_per_s_before": int(rateBefore), "calls_per_s_during": int(rateDuring), "calls_per_s_after": int(rateAfter),
		"failed_before": failBefore, "failed_during": failDuring, "failed_after": failAfter, "last_failure_ms_after_fault": recovery.Milliseconds()}
	maps.Copy(out, extra)
	t.Logf("%s: %v; errors %q", name, out, p.load.errs)
	mcptest.Artifact(t, name+".json", mustJSON(out))
	return out
}

// The Redis master dies under load (Sentinel): calls needing Redis fail closed while no master
// answers, then everything works again with no restart, and the lockout is atomic again: of 100
// concurrent wrong passwords for one account from one address, exactly the policy's 3 are
// checked.
func TestShouldFailOverRedisUnderLoadAndStayAtomic(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	f := startFleet(t, s.URL(), "MCPAUTH_RATE_LIMITS=calls=1000000/1m/100000,login_id=1000/1m,login_addr=1000/1m/1000", "MCPAUTH_LOCKOUT=3/15m/10m/1h")
	owner := dialHTTP(t, f.front)
	tok := owner.Login(t, nil, f.owner)
	u := owner.CreateUser(t, "racer@example.com", "Racer-password-123", "viewer")
	load, stop := startLoad(t, f.lb.URL, tok.AccessToken, "auth_whoami", nil, 8)
	p := phases{load: load, start: time.Now()}
	time.Sleep(phase) // load before the fault: measured, not awaited
	p.fault = time.Now()
	failover := s.KillMaster(t)
	// Each instance's client finds the new master at its next failed command: the failures end
	// on their own, and then none for good (a phase measured).
	p.end = load.awaitClean(t, p.fault, phase, 20*time.Second+phase)
	p.until = time.Now()
	stop()
	fig := p.report(t, "scaleout-redis-failover", map[string]any{"sentinel_failover_ms": failover.Milliseconds()})
	if fig["failed_before"] != 0 || fig["failed_after"] != 0 {
		t.Errorf("failures outside the failover: %v (errors %q)", fig, load.errs)
	}
	// 100 racers through the balancer, spread over the three instances.
	racer := clientFrom(t, "127.0.0.8")
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			_, _ = statelessCall(context.Background(), racer, f.lb.URL, "", "auth_login", args{"email": "racer@example.com", "password": fmt.Sprintf("wrong-%d", i)})
		})
	}
	wg.Wait()
	// (The logs reach the test through pipes: wait for them to settle at 97; more would be an
	// overshoot the wait cannot hide, since every answer is in.)
	for deadline := time.Now().Add(5 * time.Second); lockedLines(f.logs(), u.ID) < 97 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // polling a log
	}
	if n := lockedLines(f.logs(), u.ID); n != 97 {
		t.Errorf("%d of 100 concurrent wrong passwords refused as locked after the failover, want 97 (exactly 3 checked)", n)
	}
}

// MongoDB goes away for 10 s under load: the instances' readiness goes red, the balancer keeps
// sending to the live ones, writes fail closed (nothing half done), reads the caches can answer
// go on, and everything recovers when MongoDB is back, every acknowledged write's audit event
// stored.
func TestShouldFailClosedWhileMongoDBIsAwayAndRecover(t *testing.T) {
	t.Parallel()
	f := startFleet(t, "redis://"+startRedis(t), "MCPAUTH_RATE_LIMITS=calls=1000000/1m/100000")
	owner := dialHTTP(t, f.front)
	tok := owner.Login(t, nil, f.owner)
	load, stop := startLoad(t, f.lb.URL, tok.AccessToken, "auth_whoami", nil, 6)
	// Beside the load, users are created one after another; each answer is kept.
	stopCreating := startCreating(f.lb.URL, tok.AccessToken, "m")
	p := phases{load: load, start: time.Now()}
	time.Sleep(phase) // load before the fault: measured, not awaited
	p.fault = time.Now()
	f.mongo.Cut()
	f.lb.AwaitUp(t, "ready", 0, 10*time.Second) // readiness red everywhere
	red := time.Since(p.fault)
	time.Sleep(10*time.Second - red) // the outage lasts 10 s
	f.mongo.Restore()
	restored := time.Now()
	f.lb.AwaitUp(t, "ready", 3, 20*time.Second)
	green := time.Since(restored)
	p.end = load.awaitClean(t, restored, phase, 30*time.Second+phase)
	p.until = time.Now()
	made := stopCreating()
	stop()
	fig := p.report(t, "scaleout-mongo-outage", map[string]any{"readiness_red_ms": red.Milliseconds(), "readiness_green_ms": green.Milliseconds(),
		"recovered_ms_after_restore": p.end.Sub(restored).Milliseconds(), "writes_acknowledged": len(made.created), "writes_refused": len(made.refused),
		"slowest_write_ms": made.slowest.Milliseconds()})
	if fig["failed_before"] != 0 || fig["failed_after"] != 0 {
		t.Errorf("failures outside the outage: %v", fig)
	}
	// Nothing half done: a refused creation left no user, or a whole one (created, and its
	// event recorded, before the answer was lost).
	awaitUserCreatedEvents(t, f, made.created)
	for _, e := range made.refused {
		if f.userExists(t, e) {
			awaitUserCreatedEvents(t, f, []string{e})
		}
	}
}
