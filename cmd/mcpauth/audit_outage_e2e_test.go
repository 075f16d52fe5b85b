package main

// End-to-end test of the audit trail while MongoDB is unreachable: the server reaches its
// MongoDB-wire server through a TCP proxy of the test's, which the test cuts and restores.

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/internal/mcptest"
)

// tcpProxy forwards connections to a MongoDB-wire server until Cut, which closes every
// connection and refuses new ones until Restore.
type tcpProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newTCPProxy(t testing.TB, targetURI string) *tcpProxy {
	t.Helper()
	u, err := url.Parse(targetURI)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: u.Host, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		p.Cut()
		_ = p.ln.Close()
		p.wg.Wait()
	})
	return p
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
		if !p.track(c) {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

// track registers a connection, unless the proxy is cut.
func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *tcpProxy) drop(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *tcpProxy) handle(c net.Conn) {
	defer p.wg.Done()
	defer p.drop(c)
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.drop(up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done // either side ended: end both
	_ = c.Close()
	_ = up.Close()
	<-done
}

// Cut closes every connection and refuses new ones: MongoDB is unreachable.
func (p *tcpProxy) Cut() {
	p.mu.Lock()
	p.down = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// Restore forwards connections again.
func (p *tcpProxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// readiness is /readyz's answer.
type readiness struct {
	Status int
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

func getReady(t *testing.T, base string) readiness {
	t.Helper()
	r := mcptest.Get(t, base+"/readyz")
	var rd readiness
	if err := json.Unmarshal(r.Body, &rd); err != nil {
		t.Fatalf("GET /readyz: %d %s: %v", r.Status, r.Body, err)
	}
	rd.Status = r.Status
	return rd
}

// waitReady polls /readyz until cond holds.
func waitReady(t *testing.T, base, what string, cond func(readiness) bool) readiness {
	t.Helper()
	deadline := time.Now().Add(auditWait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		rd := getReady(t, base)
		if cond(rd) {
			return rd
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %s not seen within %s; last %+v", what, auditWait, rd)
		}
		<-tick.C
	}
}

// spillFiles returns the sizes of the spill files in a data directory.
func spillFiles(t *testing.T, dataDir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	entries, err := os.ReadDir(filepath.Join(dataDir, "audit-spill"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".jsonl") {
			if fi, err := e.Info(); err == nil {
				out[e.Name()] = fi.Size()
			}
		}
	}
	return out
}

func TestShouldSpillEventsWhileMongoDBIsDownAndStoreThemOnceWhenItIsBack(t *testing.T) {
	t.Parallel()
	st := newAuditInstance(t)
	in := st.in
	proxy := newTCPProxy(t, in.MongoURI)
	in.MongoURI = proxy.URI() // the server reaches MongoDB through the proxy; the test directly
	srv := startHTTP(t, in, "http")
	instance := instanceOf(t, in.DataDir)
	owner := dialHTTP(t, srv)
	owner.Login(t, nil, in.Owner())
	before := st.waitStored(t, nil, 5) // bootstrap 3, login 2
	if rd := getReady(t, srv.URL); rd.Status != http.StatusOK || !rd.Ready || rd.Checks["mongodb"] != "ok" || rd.Checks["audit"] != "ok" {
		t.Fatalf("/readyz with MongoDB up: %+v", rd)
	}

	proxy.Cut()
	// Calls that record events without reading the store: a malformed API key (refused before
	// any look-up: API_KEY_USED_FAILED, and the HTTP guard's AUTHZ_DENIED of the call) and
	// anonymous auth_validate calls (AUTHZ_GRANTED of a public tool; a garbage token is refused
	// by its signature).
	const badKeys, validates = 4, 3
	for i := range badKeys {
		r := mcptest.Post(t, srv.URL+"/mcp", "mcpk_notakey", mcptest.ToolsCallJSON(i, "auth_whoami", nil))
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("a malformed API key while MongoDB is down: %d %s", r.Status, r.Body)
		}
	}
	anon := dialHTTP(t, srv)
	for range validates {
		anon.Call(t, "auth_validate", args{"token": "not.a.jwt"}).WantError(t, "TOKEN_INVALID")
	}
	// /readyz is unauthenticated: it names what is down ("unavailable") and logs why; the spill
	// file below shows the writer is spilling.
	rd := waitReady(t, srv.URL, "unready, with the audit writer spilling", func(rd readiness) bool {
		return rd.Status == http.StatusServiceUnavailable && !rd.Ready && rd.Checks["mongodb"] == "unavailable" &&
			rd.Checks["audit"] == "unavailable"
	})
	t.Logf("/readyz while MongoDB is down: %+v", rd)
	if spills := spillFiles(t, in.DataDir); len(spills) != 1 || spills[audit.SpillFileName(instance)] == 0 {
		t.Fatalf("spill files while MongoDB is down: %v", spills)
	}
	if n := len(st.stored(t, nil)); n != len(before) {
		t.Fatalf("%d events stored while MongoDB was unreachable through the proxy, want %d", n, len(before))
	}

	proxy.Restore()
	waitReady(t, srv.URL, "ready again", func(rd readiness) bool {
		return rd.Status == http.StatusOK && rd.Ready && rd.Checks["mongodb"] == "ok" && rd.Checks["audit"] == "ok"
	})
	if spills := spillFiles(t, in.DataDir); len(spills) != 0 {
		t.Errorf("spill files once replayed: %v", spills)
	}
	all := st.waitStored(t, nil, len(before)+2*badKeys+validates)
	wantOneUnbrokenChain(t, all, instance)
	var failed, denied, granted int
	for _, e := range all[len(before):] {
		switch {
		case e.Type == audit.APIKeyUsedFailed && e.Transport == "http" && e.ClientAddr == "127.0.0.1" && e.Severity == "warning":
			failed++
		case e.Type == audit.AuthzDenied && e.tool() == "auth_whoami" && e.Subject == "" && e.Transport == "http":
			denied++
		case e.Type == audit.AuthzGranted && e.tool() == "auth_validate" && e.Subject == "" && e.Transport == "http":
			granted++
		default:
			t.Errorf("unexpected event %s", e)
		}
	}
	if failed != badKeys || denied != badKeys || granted != validates {
		t.Fatalf("events recorded during the outage:\n%s", dump(all[len(before):]))
	}
	v := decode[verifyResult](t, owner.Call(t, "audit_verify", nil))
	if !v.OK || v.Chains != 1 || v.Checked < int64(len(all)) {
		t.Fatalf("audit_verify after the outage: %+v (first bad %+v)", v, v.FirstBad)
	}
	_ = owner.Client.Close()
	_ = anon.Client.Close()
	srv.StopCleanly(t)
	wantOneUnbrokenChain(t, st.stored(t, bson.D{}), instance)
	if s := srv.Stderr.String(); !strings.Contains(s, "spill file replayed into MongoDB") {
		t.Errorf("the server did not log the replay:\n%s", s)
	}
}
