package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	modeGuarded   = "guarded"
	modeUnguarded = "unguarded"

	startTimeout = 90 * time.Second // until a server says it listens (first start builds indexes)
	stopTimeout  = 10 * time.Second // SIGTERM to exit, then SIGKILL
)

// loadRateLimits lifts the servers' limits out of the way: every call still passes the
// limiter (its cost is part of the guard's), but none is refused.
const loadRateLimits = "login_id=100000/1m,login_addr=100000/1m,refresh=100000/1m,apikey_fail=100000/1m,calls=100000000/1m/10000000"

// serverSettings is what both servers share.
type serverSettings struct {
	bin         string
	root        string // each server's data directory is under it
	rateLimits  string
	auditSample string // "": the server's default
	bcryptCost  int    // 0: the server's default
	gomaxprocs  int    // 0: Go's default
	pprof       bool
}

// buildServer builds bduf-demo into dir with the go tool (from the current module).
func buildServer(ctx context.Context, dir string) (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no --server-bin and no go tool to build bduf-demo: %w", err)
	}
	out := filepath.Join(dir, "bduf-demo")
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, "github.com/bduf/mcpauth/cmd/bduf-demo")
	var msg strings.Builder
	cmd.Stdout, cmd.Stderr = &msg, &msg
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build bduf-demo (run from the mcpauth module, or pass --server-bin): %w\n%s", err, msg.String())
	}
	return out, nil
}

// server is one running bduf-demo child process.
type server struct {
	mode     string
	cmd      *exec.Cmd
	url      string // http://127.0.0.1:PORT
	exited   chan struct{}
	log      *tailBuffer
	once     sync.Once
	email    string // the bootstrap owner
	password string
}

// listeningLine is the server's log line once it accepts connections.
var listeningLine = regexp.MustCompile(`msg=listening url=(http://\S+)`)

// startServer starts bduf-demo serve on a free loopback port, guarded or not, and waits until
// it listens.
func startServer(ctx context.Context, s serverSettings, mode string, logger *slog.Logger) (*server, error) {
	dir := filepath.Join(s.root, mode)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%s server data directory: %w", mode, err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	srv := &server{mode: mode, exited: make(chan struct{}), log: newTailBuffer(64 << 10),
		email: "owner@example.com", password: "load-owner-" + randomHex(12)}
	env := append(baseEnv(),
		"MCPAUTH_DATA_DIR="+dir,
		"MCPAUTH_MASTER_KEY="+base64.StdEncoding.EncodeToString(key),
		"MCPAUTH_BOOTSTRAP_ADMIN_EMAIL="+srv.email,
		"MCPAUTH_BOOTSTRAP_ADMIN_PASSWORD="+srv.password,
		"MCPAUTH_RATE_LIMITS="+s.rateLimits,
		"MCPAUTH_ACCESS_TTL=24h", // a long run must not see its tokens expire
		// The simulated clients log in with auth_login (no browser): their initialize comes
		// without a token, as with the authorization server off.
		"MCPAUTH_ANONYMOUS_METHODS=initialize,ping,tools/list",
		"MCPAUTH_LOG_LEVEL=info",
		"MCPAUTH_METRICS_LISTEN=off",                                                   // two servers side by side; nobody scrapes them
		"MCPAUTH_MAX_SESSIONS_PER_ADDRESS=10000000", "MCPAUTH_MAX_CONNS_PER_ADDRESS=0", // every simulated client comes from 127.0.0.1
	)
	if s.auditSample != "" {
		env = append(env, "MCPAUTH_AUDIT_GRANTED_SAMPLE="+s.auditSample)
	}
	if s.bcryptCost != 0 {
		env = append(env, "MCPAUTH_BCRYPT_COST="+strconv.Itoa(s.bcryptCost))
	}
	if s.gomaxprocs != 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(s.gomaxprocs))
	}
	args := []string{"serve", "--transport", "http", "--listen", "127.0.0.1:0"}
	if mode == modeUnguarded {
		args = append(args, "--insecure-no-guard")
	}
	if s.pprof {
		args = append(args, "--pprof")
	}
	found := make(chan string, 1)
	srv.cmd = exec.Command(s.bin, args...)
	srv.cmd.Env = env
	srv.cmd.SysProcAttr = childAttr()
	srv.cmd.Stdout = io.Discard
	srv.cmd.Stderr = &logWatcher{tail: srv.log, found: found} // Wait returns once it has all of it
	if err := srv.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.bin, err)
	}
	logger.Info("server started", "server", mode, "pid", srv.cmd.Process.Pid)
	go func() {
		_ = srv.cmd.Wait()
		close(srv.exited)
	}()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	var err error
	select {
	case srv.url = <-found:
		return srv, nil
	case <-srv.exited:
		err = fmt.Errorf("%s server exited before listening", mode)
	case <-timer.C:
		err = fmt.Errorf("%s server did not listen within %s", mode, startTimeout)
	case <-ctx.Done():
		err = fmt.Errorf("interrupted: %w", ctx.Err())
	}
	srv.stop(logger)
	return nil, fmt.Errorf("%w%s", err, srv.tail())
}

// logWatcher keeps the end of a server's stderr and reports its URL once it listens.
type logWatcher struct {
	mu       sync.Mutex
	tail     *tailBuffer
	found    chan<- string
	partial  []byte
	reported bool
}

func (w *logWatcher) Write(p []byte) (int, error) {
	_, _ = w.tail.Write(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reported {
		return len(p), nil
	}
	w.partial = append(w.partial, p...)
	for {
		line, rest, ok := bytes.Cut(w.partial, []byte{'\n'})
		if !ok {
			break
		}
		if m := listeningLine.FindSubmatch(line); m != nil {
			w.found <- string(m[1])
			w.reported, w.partial = true, nil
			break
		}
		w.partial = rest
	}
	if len(w.partial) > 1<<20 { // no newline in a megabyte: not a log line we want
		w.partial = nil
	}
	return len(p), nil
}

// stop ends the server: SIGTERM, then SIGKILL after stopTimeout. It is safe to call twice.
func (s *server) stop(logger *slog.Logger) {
	s.once.Do(func() {
		select {
		case <-s.exited:
			return
		default:
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-s.exited:
		case <-timer.C:
			logger.Warn("server did not stop on SIGTERM; killing it", "server", s.mode)
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	})
	<-s.exited
}

// tail is the end of the server's log, for error messages.
func (s *server) tail() string {
	t := strings.TrimSpace(s.log.String())
	if t == "" {
		return ""
	}
	lines := strings.Split(t, "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "\n" + s.mode + " server log (last lines):\n" + strings.Join(lines, "\n")
}

// baseEnv is this process's environment without MCPAUTH_* and GOMAXPROCS (set per server).
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPAUTH_") && !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	return env
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
