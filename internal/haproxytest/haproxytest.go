// Package haproxytest runs a real HAProxy (the Debian package haproxy, which .ci/run installs)
// with a configuration file of the repository (deploy/haproxy.cfg) on a free loopback port,
// killed when the test ends, and drives it through its runtime API. It never skips: a missing
// haproxy fails the test.
package haproxytest

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long HAProxy takes to listen.
const startTimeout = 10 * time.Second

// LB is a running HAProxy.
type LB struct {
	// URL is where clients connect: http://127.0.0.1:PORT.
	URL    string
	socket string
	cmd    *exec.Cmd
	done   chan struct{}
	out    *bytes.Buffer
	mu     sync.Mutex
	once   sync.Once
}

// Start runs HAProxy with config, its instances given as MCPAUTH_INSTANCE_1.. (as
// deploy/haproxy.cfg reads them). It returns once HAProxy listens; it is killed when t ends.
func Start(t testing.TB, config string, instances []string) *LB {
	t.Helper()
	bin := binary()
	if bin == "" {
		t.Fatal("haproxytest: haproxy not found: install the Debian package haproxy (.ci/run installs it)")
	}
	abs, err := filepath.Abs(config)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hap") // short: a socket path has at most 97 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	var errs []error
	for range 5 { // another process may take the port picked
		l, err := start(bin, abs, dir, instances)
		if err == nil {
			t.Cleanup(l.Kill)
			return l
		}
		errs = append(errs, err)
	}
	t.Fatalf("haproxytest: haproxy did not start: %v", errors.Join(errs...))
	return nil
}

func binary() string {
	for _, p := range []string{"/usr/sbin/haproxy", "/usr/bin/haproxy"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	return ""
}

func start(bin, config, dir string, instances []string) (*LB, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	sock := filepath.Join(dir, fmt.Sprintf("%d.sock", time.Now().UnixNano()%1e6))
	cmd := exec.Command(bin, "-db", "-f", config)
	cmd.Env = append(os.Environ(), "MCPAUTH_LB_BIND="+addr, "MCPAUTH_LB_SOCKET="+sock)
	for i, in := range instances {
		cmd.Env = append(cmd.Env, fmt.Sprintf("MCPAUTH_INSTANCE_%d=%s", i+1, in))
	}
	lb := &LB{URL: "http://" + addr, socket: sock, cmd: cmd, done: make(chan struct{}), out: &bytes.Buffer{}}
	cmd.Stdout, cmd.Stderr = lb.writer(), lb.writer()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		_ = cmd.Wait()
		close(lb.done)
	}()
	deadline := time.Now().Add(startTimeout)
	for {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			if _, err := lb.command("show info"); err == nil {
				return lb, nil
			}
		}
		select {
		case <-lb.done:
			return nil, fmt.Errorf("haproxy exited: %s", lb.Output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			lb.Kill()
			return nil, fmt.Errorf("haproxy not listening on %s within %s: %s", addr, startTimeout, lb.Output())
		}
	}
}

type lockedWriter struct{ lb *LB }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.lb.mu.Lock()
	defer w.lb.mu.Unlock()
	if w.lb.out.Len() < 1<<20 {
		w.lb.out.Write(p)
	}
	return len(p), nil
}

func (l *LB) writer() lockedWriter { return lockedWriter{l} }

// Output is what HAProxy printed.
func (l *LB) Output() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out.String()
}

// Kill stops HAProxy and waits for it. It is idempotent.
func (l *LB) Kill() {
	l.once.Do(func() {
		_ = l.cmd.Process.Kill()
		<-l.done
	})
}

// command sends one command to the runtime API and returns its answer.
func (l *LB) command(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", l.socket, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String(), sc.Err()
}

// Server is one server line of the statistics.
type Server struct {
	Backend, Name, Status string // Status: UP, DOWN, MAINT, "UP 1/2" (going down)...
	Sessions              int    // stot: sessions it served so far
}

// Servers are the servers of backend as HAProxy sees them now.
func (l *LB) Servers(t testing.TB, backend string) []Server {
	t.Helper()
	out, err := l.command("show stat")
	if err != nil {
		t.Fatalf("haproxytest: show stat: %v", err)
	}
	r := csv.NewReader(strings.NewReader(strings.TrimPrefix(out, "# ")))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("haproxytest: show stat answered %q: %v", out, err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	var servers []Server
	for _, row := range rows[1:] {
		if len(row) <= col["stot"] || row[col["pxname"]] != backend || row[col["svname"]] == "FRONTEND" || row[col["svname"]] == "BACKEND" {
			continue
		}
		n, _ := strconv.Atoi(row[col["stot"]])
		servers = append(servers, Server{Backend: backend, Name: row[col["svname"]], Status: row[col["status"]], Sessions: n})
	}
	return servers
}

// AwaitUp waits until exactly up servers of backend are UP (their health checks pass).
func (l *LB) AwaitUp(t testing.TB, backend string, up int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n := 0
		servers := l.Servers(t, backend)
		for _, s := range servers {
			if s.Status == "UP" {
				n++
			}
		}
		if n == up {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxytest: %d servers of %s up after %s, want %d: %+v", n, backend, within, up, servers)
		}
		time.Sleep(50 * time.Millisecond) // health checks run every 500 ms: nothing to wait on but them
	}
}

// SetMaint puts a server of every backend in maintenance (on) or takes it out of it: no request
// reaches it meanwhile.
func (l *LB) SetMaint(t testing.TB, server string, on bool) {
	t.Helper()
	state := "ready"
	if on {
		state = "maint"
	}
	for _, backend := range []string{"ready", "live", "sse"} {
		if out, err := l.command("set server " + backend + "/" + server + " state " + state); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("haproxytest: set server %s/%s state %s: %q %v", backend, server, state, out, err)
		}
	}
}

// StuckTo is the server a stick-table key (an Mcp-Session-Id) of backend is stuck to, by name
// ("" when the table has no such key).
func (l *LB) StuckTo(t testing.TB, backend, key string) string {
	t.Helper()
	out, err := l.command("show table " + backend + " key " + key)
	if err != nil {
		t.Fatalf("haproxytest: show table %s: %v", backend, err)
	}
	// "0x...: key=<key> use=0 exp=... server_id=2 server_key=i2"
	if _, after, ok := strings.Cut(out, "server_key="); ok {
		return strings.Fields(after)[0]
	}
	return ""
}
