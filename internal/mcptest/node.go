package mcptest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// NodeClients is the npm project of real MCP clients (testdata/clients: the conformance suite
// and the TypeScript SDK) with the Node 22 binary it installs.
type NodeClients struct {
	Dir  string // testdata/clients
	Node string // node_modules/.bin/node (Node 22)
}

// FindNodeClients locates testdata/clients from the test's package directory and fails t
// (never skips) when its node_modules is missing or older than the lockfile: `make test-deps`
// installs it.
func FindNodeClients(t testing.TB) NodeClients {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatalf("find the module root: %v", err)
	}
	dir := filepath.Join(root, "testdata", "clients")
	nc := NodeClients{Dir: dir, Node: filepath.Join(dir, "node_modules", ".bin", "node")}
	stamp, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if err != nil {
		t.Fatalf("the MCP test clients are not installed (%v): run `make test-deps` (npm ci in %s)", err, dir)
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s: %v", dir, err)
		} else if fi.ModTime().After(stamp.ModTime()) {
			t.Fatalf("%s/node_modules is older than its %s: run `make test-deps` (npm ci)", dir, f)
		}
	}
	out, err := exec.Command(nc.Node, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "v22.") {
		t.Fatalf("%s --version: %q, %v; want Node 22: run `make test-deps`", nc.Node, out, err)
	}
	return nc
}

// moduleRoot is the nearest directory above the working directory with a go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// NodeRun is a finished node process.
type NodeRun struct {
	Stdout, Stderr string
	Err            error // non-nil when it exited non-zero or was killed at the timeout
	Took           time.Duration
}

// Run runs node with args in nc.Dir with env (node_modules/.bin first on its PATH, so whatever
// it spawns as `node` is Node 22 too), killed after timeout. Stderr is checked for a data race
// report of a -race child it started (a stdio server inherits node's stderr).
func (nc NodeClients) Run(t testing.TB, env []string, timeout time.Duration, args ...string) NodeRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nc.Node, args...)
	cmd.Dir = nc.Dir
	cmd.Env = append(withPath(env, filepath.Dir(nc.Node)), "NO_COLOR=1", "FORCE_COLOR=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = StopTimeout
	start := time.Now()
	err := cmd.Run()
	r := NodeRun{Stdout: ansiEscape.ReplaceAllString(stdout.String(), ""), Stderr: ansiEscape.ReplaceAllString(stderr.String(), ""),
		Err: err, Took: time.Since(start)}
	if ctx.Err() != nil {
		r.Err = errors.Join(err, ctx.Err())
	}
	if strings.Contains(r.Stderr, "WARNING: DATA RACE") {
		t.Errorf("a process node started reported a data race:\n%s", r.Stderr)
	}
	return r
}

// ansiEscape is a terminal colour sequence (the conformance suite colours its report even with
// NO_COLOR).
var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*m")

// withPath returns env with dir put first on PATH.
func withPath(env []string, dir string) []string {
	out := make([]string, 0, len(env)+1)
	path := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PATH="+dir+string(os.PathListSeparator)+path)
}
