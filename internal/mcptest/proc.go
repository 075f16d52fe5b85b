// Package mcptest drives real MCP server binaries (mcpauth, bduf-demo) in end-to-end tests: it
// builds a main package (with -race when the tests run with it), starts the binary as a child
// process with a given environment (stdio, streamable HTTP, SSE), and talks to it through
// mcp-go's client, whose bearer token can change between calls. Denials are checked as the
// caller sees them: a tool error over stdio, an HTTP status with its WWW-Authenticate challenge
// over HTTP. Only tests import it.
package mcptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Bounds. Generous: the binary under test may be a -race build on a slow two-core machine.
const (
	StartTimeout = 60 * time.Second // until a server says it listens / answers initialize
	CallTimeout  = 30 * time.Second // one tool call
	StopTimeout  = 15 * time.Second // SIGTERM to exit, then SIGKILL
)

// EnvTestMongoURI points the tests at a real MongoDB instead of each process's embedded store.
const EnvTestMongoURI = "MCPAUTH_TEST_MONGO_URI"

// BuildMain builds the main package pkg ("." is the package under test) into a temporary
// directory, sets *bin to the binary's path, runs the tests and removes the binary. The binary
// is built with -race when the tests are. Use it as TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(mcptest.BuildMain(m, ".", &binPath)) }
func BuildMain(m *testing.M, pkg string, bin *string) int {
	dir, err := os.MkdirTemp("", "mcptest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcptest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = Build(pkg, dir); err != nil {
		fmt.Fprintln(os.Stderr, "mcptest:", err)
		return 1
	}
	return m.Run()
}

// Build builds the main package pkg into dir and returns the binary's path.
func Build(pkg, dir string) (string, error) {
	name := filepath.Base(pkg)
	if pkg == "." {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		name = filepath.Base(wd)
	}
	out := filepath.Join(dir, name)
	args := []string{"build", "-o", out}
	if RaceEnabled {
		args = append(args, "-race")
	}
	if CoverDir() != "" {
		// make cover: the binary counts what the end-to-end tests run of every package of ours
		// and writes it at exit (SIGTERM included) into CoverDir (BaseEnv points GOCOVERDIR
		// there), beside the test processes' own counters.
		args = append(args, "-cover", "-coverpkg=github.com/bduf/mcpauth/...")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go tool is needed to build the binary under test: %w", err)
	}
	build := exec.Command(goTool, append(args, pkg)...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", pkg, err)
	}
	return out, nil
}

// CoverDir is where binaries under test write their coverage counters: MCPAUTH_TEST_COVERDIR,
// set by make cover ("" otherwise: no coverage). go test points a test's own GOCOVERDIR at a
// directory of its own, so the binaries need a variable of their own.
func CoverDir() string { return os.Getenv("MCPAUTH_TEST_COVERDIR") }

// RandomHex returns n random bytes, hex-encoded.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// LogBuffer is a concurrency-safe buffer that lets a reader wait for a pattern.
type LogBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

// NewLogBuffer returns an empty buffer.
func NewLogBuffer() *LogBuffer { return &LogBuffer{changed: make(chan struct{})} }

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, _ := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, nil
}

func (b *LogBuffer) String() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor waits until re matches the content and returns the submatches. It gives up when
// exited is closed (the writer's process is gone) or after timeout.
func (b *LogBuffer) WaitFor(re *regexp.Regexp, exited <-chan struct{}, timeout time.Duration) ([]string, error) {
	var m []string
	err := b.WaitUntil(func(s string) bool {
		m = re.FindStringSubmatch(s)
		return m != nil
	}, exited, timeout)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", re, err)
	}
	return m, nil
}

// WaitUntil waits until match accepts the content, exited is closed, or timeout passes.
func (b *LogBuffer) WaitUntil(match func(string) bool, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		ok := match(b.buf.String())
		changed := b.changed
		b.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-exited:
			if match(b.String()) { // the last write may have raced with the exit
				return nil
			}
			return errors.New("the process exited before it appeared")
		case <-deadline.C:
			return fmt.Errorf("it did not appear within %s", timeout)
		}
	}
}

// BaseEnv is the test process's environment without any MCPAUTH_* variable. A -race child
// skips the race runtime's one-second sleep at exit; a race it detects still makes it exit 66
// and print a report.
func BaseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MCPAUTH_") && (CoverDir() == "" || !strings.HasPrefix(kv, "GOCOVERDIR=")) {
			env = append(env, kv)
		}
	}
	if dir := CoverDir(); dir != "" {
		env = append(env, "GOCOVERDIR="+dir)
	}
	if RaceEnabled {
		env = append(env, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	}
	return env
}

// Instance is one installation: a data directory (and, with a shared MongoDB, a database) that
// successive processes share, and the bootstrap owner's credentials.
type Instance struct {
	DataDir       string
	MongoURI      string // empty: each process runs the embedded store in DataDir
	MongoDB       string
	OwnerEmail    string
	OwnerPassword string
	Bootstrap     bool     // pass MCPAUTH_BOOTSTRAP_ADMIN_*
	Extra         []string // more environment for every process of the instance
}

// NewInstance returns a fresh installation with a bootstrap owner configured. With
// MCPAUTH_TEST_MONGO_URI set it uses a fresh database there, dropped when t ends.
func NewInstance(t testing.TB) *Instance {
	t.Helper()
	in := &Instance{
		DataDir:       t.TempDir(),
		OwnerEmail:    "owner@example.com",
		OwnerPassword: "e2e-Owner-" + RandomHex(8),
		Bootstrap:     true,
	}
	if uri := os.Getenv(EnvTestMongoURI); uri != "" {
		in.MongoURI = uri
		in.MongoDB = "mcpauth_e2e_" + RandomHex(6)
		t.Cleanup(func() { DropDatabase(t, uri, in.MongoDB) })
	}
	return in
}

// DropDatabase drops a database, logging (not failing) on error.
func DropDatabase(t testing.TB, uri, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Logf("drop test database %s: %v", name, err)
		return
	}
	defer func() { _ = c.Disconnect(ctx) }()
	if err := c.Database(name).Drop(ctx); err != nil {
		t.Logf("drop test database %s: %v", name, err)
	}
}

// Env is a child's environment: BaseEnv, then the instance's settings, then in.Extra, then
// extra (later entries win).
func (in *Instance) Env(extra ...string) []string {
	env := append(BaseEnv(),
		"MCPAUTH_DATA_DIR="+in.DataDir,
		"MCPAUTH_BCRYPT_COST=4",
		"MCPAUTH_LOG_LEVEL=info",
		"MCPAUTH_METRICS_LISTEN=127.0.0.1:0", // servers run side by side: no fixed port
		// One issuer for every process of the instance, whatever port each listens on (a
		// token from one is good at the next); a URN, so the OAuth authorization server is
		// off and HTTP keeps anonymous initialize. OAuthEnv gives the defaults back.
		"MCPAUTH_ISSUER=urn:mcpauth",
	)
	if in.MongoURI != "" {
		env = append(env, "MCPAUTH_MONGO_URI="+in.MongoURI, "MCPAUTH_MONGO_DB="+in.MongoDB)
	}
	if in.Bootstrap {
		env = append(env,
			"MCPAUTH_BOOTSTRAP_ADMIN_EMAIL="+in.OwnerEmail,
			"MCPAUTH_BOOTSTRAP_ADMIN_PASSWORD="+in.OwnerPassword)
	}
	env = append(env, in.Extra...)
	return append(env, extra...)
}

// OAuthEnv is the environment of a process serving OAuth as a fresh install does: the issuer
// and audience derived from its listener, nothing anonymous.
var OAuthEnv = []string{"MCPAUTH_ISSUER=", "MCPAUTH_AUDIENCE="}

// Owner is the login arguments of the bootstrap owner.
func (in *Instance) Owner() Args {
	return Args{"email": in.OwnerEmail, "password": in.OwnerPassword}
}

// Proc is a running child process that the test owns.
type Proc struct {
	Cmd    *exec.Cmd
	Stdout *LogBuffer
	Stderr *LogBuffer
	Exited chan struct{} // closed once the process is reaped
	name   string
	once   sync.Once
}

// StartProc starts bin with args; it is stopped (SIGTERM, then SIGKILL) when t ends, and t
// fails if it reported a data race.
func StartProc(t testing.TB, bin string, env []string, stdin io.Reader, args ...string) *Proc {
	t.Helper()
	p := &Proc{Cmd: exec.Command(bin, args...), Stdout: NewLogBuffer(), Stderr: NewLogBuffer(),
		Exited: make(chan struct{}), name: filepath.Base(bin)}
	p.Cmd.Env = env
	p.Cmd.Stdin = stdin
	p.Cmd.Stdout, p.Cmd.Stderr = p.Stdout, p.Stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s %v: %v", p.name, args, err)
	}
	go func() {
		_ = p.Cmd.Wait()
		close(p.Exited)
	}()
	t.Cleanup(func() {
		p.Stop(t)
		CheckNoRace(t, p.name, p.Stderr)
	})
	return p
}

// CheckNoRace fails t if a -race child reported a data race.
func CheckNoRace(t testing.TB, what string, stderr *LogBuffer) {
	t.Helper()
	if s := stderr.String(); strings.Contains(s, "WARNING: DATA RACE") {
		t.Errorf("%s reported a data race:\n%s", what, s)
	}
}

// Stop sends SIGTERM, waits, and kills after StopTimeout. It returns the exit code (-1 when
// killed by a signal).
func (p *Proc) Stop(t testing.TB) int {
	t.Helper()
	p.once.Do(func() {
		select {
		case <-p.Exited:
			return
		default:
		}
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Exited:
		case <-time.After(StopTimeout):
			t.Errorf("%s did not stop within %s of SIGTERM; killing it", p.name, StopTimeout)
			_ = p.Cmd.Process.Kill()
			<-p.Exited
		}
	})
	<-p.Exited
	return p.Cmd.ProcessState.ExitCode()
}

// StopCleanly stops the process with SIGTERM and expects a graceful exit 0.
func (p *Proc) StopCleanly(t testing.TB) {
	t.Helper()
	if code := p.Stop(t); code != 0 {
		t.Errorf("%s exited with %d after SIGTERM, want 0; stderr:\n%s", p.name, code, p.Stderr)
	}
}

// Wait waits for the process to exit on its own and returns its exit code.
func (p *Proc) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.Exited:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s; stderr:\n%s", p.name, timeout, p.Stderr)
	}
	return p.Cmd.ProcessState.ExitCode()
}

// HTTPServer is `BIN serve --transport http|sse` on a free loopback port.
type HTTPServer struct {
	*Proc
	URL string // http://127.0.0.1:PORT, from the "listening" log line
	// MetricsURL is http://127.0.0.1:PORT/metrics on the metrics listener, from its log line
	// ("" when the server was started without one).
	MetricsURL string
}

// ListeningLine is the log line an HTTP server prints once it accepts connections.
var ListeningLine = regexp.MustCompile(`level=INFO msg=listening url=(http://\S+)`)

// metricsLine is the log line of the metrics listener (printed before ListeningLine).
var metricsLine = regexp.MustCompile(`level=INFO msg="metrics listening" url=(http://\S+)`)

// StartHTTP starts bin serve on 127.0.0.1:0 with env and waits for its "listening" line.
func StartHTTP(t testing.TB, bin string, env []string, transportFlag string) *HTTPServer {
	t.Helper()
	p := StartProc(t, bin, env, nil, "serve", "--transport", transportFlag, "--listen", "127.0.0.1:0")
	m, err := p.Stderr.WaitFor(ListeningLine, p.Exited, StartTimeout)
	if err != nil {
		t.Fatalf("%s serve --transport %s: %v; stderr:\n%s", p.name, transportFlag, err, p.Stderr)
	}
	srv := &HTTPServer{Proc: p, URL: m[1]}
	if mm := metricsLine.FindStringSubmatch(p.Stderr.String()); mm != nil {
		srv.MetricsURL = mm[1]
	}
	return srv
}

// Secrets collects every secret a test handled, to prove none reaches a server's logs.
type Secrets struct {
	mu   sync.Mutex
	list []string
}

// Add records secrets (empty strings are ignored).
func (s *Secrets) Add(v ...string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range v {
		if x != "" {
			s.list = append(s.list, x)
		}
	}
}

// CheckNotIn fails t if any recorded secret occurs in log.
func (s *Secrets) CheckNotIn(t testing.TB, what, log string) {
	t.Helper()
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.list {
		if strings.Contains(log, x) {
			t.Errorf("%s contains a secret (%.12s...)", what, x)
		}
	}
}
