// Package redistest gives tests a real Redis: a redis-server process (the Debian package, which
// .ci/run installs) on a free loopback port, without persistence, killed when the test ends. It
// never skips: a missing redis-server fails the test.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
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

// startTimeout bounds how long one redis-server start may take to answer PING.
const startTimeout = 10 * time.Second

// attempts is how many ports are tried (another process may take the port we picked).
const attempts = 5

// Server is a running redis-server.
type Server struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	out  *syncBuffer
	once sync.Once
}

// Start starts a redis-server for t and returns its address (host:port); it is killed when t
// ends.
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t).Addr()
}

// StartServer is Start returning the Server, for tests that stop it early (an outage).
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin := binary()
	if bin == "" {
		t.Fatal("redistest: redis-server not found (neither /usr/bin/redis-server nor on PATH): " +
			"install the Debian package redis-server (.ci/run installs it)")
	}
	dir := t.TempDir()
	var errs []error
	for range attempts {
		s, err := start(bin, dir)
		if err == nil {
			t.Cleanup(s.Kill)
			return s
		}
		errs = append(errs, err)
	}
	t.Fatalf("redistest: redis-server did not start in %d attempts: %v", attempts, errors.Join(errs...))
	return nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Kill stops the server now and waits for it to exit. It is idempotent.
func (s *Server) Kill() {
	s.once.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
	})
}

func binary() string {
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server"
	}
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	return ""
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Restart starts a new redis-server on s's address, killing s first if it still runs: an outage
// that ends, as after a crash without persistence (the new server is empty). The new server is
// killed when t ends. It fails t if the port cannot be bound again within startTimeout (another
// process may have taken it meanwhile).
func (s *Server) Restart(t testing.TB) *Server {
	t.Helper()
	s.Kill()
	bin := binary()
	if bin == "" {
		t.Fatal("redistest: redis-server not found")
	}
	_, portStr, err := net.SplitHostPort(s.addr)
	if err != nil {
		t.Fatalf("redistest: address %q: %v", s.addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("redistest: address %q: %v", s.addr, err)
	}
	dir := t.TempDir()
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(50 * time.Millisecond) // the old socket may linger a moment: retry the bind
	defer tick.Stop()
	for {
		n, err := startOn(bin, dir, port)
		if err == nil {
			t.Cleanup(n.Kill)
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: redis-server did not start again on %s: %v", s.addr, err)
		}
		<-tick.C
	}
}

func start(bin, dir string, extra ...string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("pick a port: %w", err)
	}
	return startOn(bin, dir, port, extra...)
}

// startOn starts bin on port; extra are more arguments (a sentinel's config file first, then
// --sentinel, is given as extra with a leading config path: see startSentinel).
func startOn(bin, dir string, port int, extra ...string) (*Server, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir,
		"--daemonize", "no", "--loglevel", "warning"}
	if len(extra) > 0 && extra[0] == sentinelFlag { // redis-server <config> --sentinel ...
		args = append([]string{filepath.Join(dir, "sentinel.conf"), sentinelFlag}, args...)
		extra = extra[1:]
	}
	cmd := exec.Command(bin, append(args, extra...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &Server{addr: addr, cmd: cmd, done: make(chan struct{}), out: out}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()
	if err := s.awaitPing(); err != nil {
		s.Kill()
		return nil, fmt.Errorf("port %d: %w; output: %s", port, err, bytes.TrimSpace(out.Bytes()))
	}
	return s, nil
}

// awaitPing polls PING until the server answers PONG, exits, or startTimeout passes.
func (s *Server) awaitPing() error {
	deadline := time.Now().Add(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ping(s.addr, s.cmd.Process.Pid)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG within %v: %w", startTimeout, err)
		}
		select {
		case <-s.done:
			return errors.New("redis-server exited")
		case <-tick.C:
		}
	}
}

// ping reports whether the redis-server of process pid answers on addr: PING, then INFO
// server's process_id. Another test's server may have taken the port between freePort and our
// bind, and would answer PING in our server's place until ours exits.
func ping(addr string, pid int) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")); err != nil {
		return err
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	head, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(head, "$"), "\r\n"))
	if err != nil || n < 0 || n > 1<<20 {
		return fmt.Errorf("INFO server answered %q", head)
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(br, info); err != nil {
		return err
	}
	want := "process_id:" + strconv.Itoa(pid) + "\r\n"
	if !strings.Contains(string(info), want) {
		return fmt.Errorf("another redis-server answers on %s (not process %d)", addr, pid)
	}
	return nil
}

// syncBuffer collects the server's output for error messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
