package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// serverBin is bduf-demo, built once for the whole test binary (with -race when the tests
// are, like the other end-to-end tests: the build is then shared with theirs).
var serverBin string

func TestMain(m *testing.M) {
	os.Exit(mcptest.BuildMain(m, "../bduf-demo", &serverBin))
}

func TestShouldLoadTheGuardedAndTheUnguardedServerAndProveTheGuardIsReal(t *testing.T) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"--server-bin", serverBin, "--sessions", "3", "--duration", "1500ms", "--warmup", "200ms",
		"--rounds", "1", "--bcrypt-cost", "4", "--gomaxprocs", "0", "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", code, &stderr, &stdout)
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("the --json output does not parse: %v\n%s", err, &stdout)
	}
	for _, m := range []struct {
		name string
		m    *modeReport
	}{{"guarded", rep.Guarded}, {"unguarded", rep.Unguarded}} {
		if m.m == nil || m.m.Calls == 0 || m.m.Errors != 0 || m.m.CallsPerSec <= 0 {
			t.Fatalf("%s: %+v, want calls and no errors", m.name, m.m)
		}
		if m.m.P50Ms <= 0 || m.m.P99Ms < m.m.P50Ms || len(m.m.Rounds) != 1 {
			t.Errorf("%s: percentiles p50 %g p99 %g, rounds %d", m.name, m.m.P50Ms, m.m.P99Ms, len(m.m.Rounds))
		}
	}
	// The comparison is real: the guarded server refuses a call without a token (at the HTTP
	// guard, 401); the unguarded one serves it.
	if g := rep.Guarded.Unauthenticated; !g.Refused || g.Answer != "HTTP 401" {
		t.Errorf("guarded server answered an unauthenticated call with %+v, want a 401 refusal", g)
	}
	if u := rep.Unguarded.Unauthenticated; u.Refused {
		t.Errorf("unguarded server refused an unauthenticated call: %+v", u)
	}
	if rep.Comparison.CallsPerSecRatio <= 0 || rep.Sessions != 3 || rep.Tool != "projects_list" || len(rep.Targets) != 3 {
		t.Errorf("report: %+v", rep)
	}
	if !strings.Contains(rep.BcryptCost, "4") || len(rep.Notes) == 0 {
		t.Errorf("a lowered bcrypt cost is not said: %q, notes %q", rep.BcryptCost, rep.Notes)
	}
	// A progress line each second of a measured phase, on stderr.
	if !strings.Contains(stderr.String(), "guarded round 1/1") || !strings.Contains(stderr.String(), "calls/s") {
		t.Errorf("no progress lines on stderr:\n%s", &stderr)
	}
	// Nothing left running: servers stopped, client connections and goroutines gone.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines before the run, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestShouldStopTheServersWhenInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout bytes.Buffer
	var stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--server-bin", serverBin, "--sessions", "2", "--duration", "1m", "--warmup", "0s",
			"--rounds", "1", "--bcrypt-cost", "4", "--gomaxprocs", "0"}, &stdout, &stderr)
	}()
	// Interrupt once the load runs.
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(stderr.String(), "guarded round 1/1") && time.Now().Before(deadline) {
		select {
		case code := <-done:
			t.Fatalf("exit %d before the load started; stderr:\n%s", code, stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	select {
	case code := <-done:
		if code == 0 {
			t.Fatal("an interrupted run exited 0")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not end within 30s of the interrupt")
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr does not say it was interrupted:\n%s", stderr.String())
	}
	// Both children are gone: no bduf-demo of this binary is left.
	out, _ := exec.Command("pgrep", "-f", serverBin).Output()
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("server processes still running after the interrupt: %s", s)
	}
}

func TestShouldRefuseBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"arguments that are not an object", []string{"--args", "[1]"}, "--args"},
		{"no session", []string{"--sessions", "0"}, "--sessions"},
		{"a negative rate", []string{"--rate", "-5"}, "--rate"},
		{"a bcrypt cost out of range", []string{"--bcrypt-cost", "3"}, "--bcrypt-cost"},
		{"a stray argument", []string{"now"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tt.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %s", code, &stderr, tt.want)
			}
		})
	}
}

func TestShouldTellAGoodAnswerFromEachKindOfFailure(t *testing.T) {
	ok := postResult{status: 200, contentType: "application/json"}
	sse := postResult{status: 200, contentType: "text/event-stream"}
	tests := []struct {
		name string
		res  postResult
		body string
		want string // "" : a good answer
	}{
		{"a JSON result", ok, `{"jsonrpc":"2.0","id":1,"result":{"content":[],"structuredContent":{"projects":[]}}}`, ""},
		{"an SSE stream whose last event is the result", sse,
			"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n", ""},
		{"an HTTP refusal", postResult{status: 401, contentType: "application/json"}, `{"jsonrpc":"2.0","id":1,"error":{"code":-32010,"message":"TOKEN_EXPIRED: token has expired"}}`, "http_401"},
		{"a JSON-RPC error", ok, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad"}}`, "jsonrpc_error"},
		{"a tool error", ok, `{"jsonrpc":"2.0","id":1,"result":{"isError":true,"structuredContent":{"error":{"code":"PERMISSION_DENIED"}}}}`, "tool_error"},
		{"neither", ok, `{"jsonrpc":"2.0","id":1}`, "bad_answer"},
		{"not JSON", ok, `<html>`, "bad_answer"},
		{"an SSE stream without data", sse, "event: message\n\n", "bad_answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r reply
			err := check(tt.res, []byte(tt.body), &r)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("a good answer was taken for %v", err)
			case tt.want != "" && (err == nil || err.kind != tt.want):
				t.Fatalf("got %v, want a %s failure", err, tt.want)
			}
		})
	}
}

func TestShouldBuildTheCallBodyWithEachID(t *testing.T) {
	b := newCallBody(`odd"name`, `{"a":1}`)
	var msg struct {
		ID     int64  `json:"id"`
		Method string `json:"method"`
		Params struct {
			Name      string         `json:"name"`
			Arguments map[string]int `json:"arguments"`
		} `json:"params"`
	}
	buf := b.with(nil, 41)
	buf = b.with(buf, 42)
	if err := json.Unmarshal(buf, &msg); err != nil {
		t.Fatalf("%s: %v", buf, err)
	}
	if msg.ID != 42 || msg.Method != "tools/call" || msg.Params.Name != `odd"name` || msg.Params.Arguments["a"] != 1 {
		t.Fatalf("body %s decoded as %+v", buf, msg)
	}
}

func TestShouldGroupThousands(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -12345: "-12,345"} {
		if got := group(n); got != want {
			t.Errorf("group(%d) = %q, want %q", n, got, want)
		}
	}
}

// lockedBuffer is a buffer one goroutine writes while another reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
