package main

// End-to-end tests of the binary's command line and of the stdio wire format.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// jsonrpcMessage is enough of a JSON-RPC 2.0 message to check its shape.
type jsonrpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// parseStdout parses the complete lines of a stdio server's stdout; each must be one JSON-RPC
// 2.0 message.
func parseStdout(out string) ([]jsonrpcMessage, error) {
	var msgs []jsonrpcMessage
	lines := strings.Split(out, "\n")
	for _, line := range lines[:len(lines)-1] { // the last element is an incomplete line or ""
		var m jsonrpcMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil || m.JSONRPC != "2.0" {
			return msgs, fmt.Errorf("stdout line is not a JSON-RPC 2.0 message: %q", line)
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func TestShouldWriteOnlyJSONRPCToStdoutOverStdio(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	sec.Add(in.OwnerPassword)
	stdin, stdinW := io.Pipe()
	p := mcptest.StartProc(t, binPath, in.Env(), stdin, "serve", "--transport", "stdio")
	t.Cleanup(func() { _ = stdinW.Close() })

	send := func(line string) {
		t.Helper()
		if _, err := io.WriteString(stdinW, line+"\n"); err != nil {
			t.Fatalf("write to stdin: %v", err)
		}
	}
	// response sends a request and waits for the response with its id.
	response := func(id int, line string) jsonrpcMessage {
		t.Helper()
		send(line)
		var got jsonrpcMessage
		err := p.Stdout.WaitUntil(func(out string) bool {
			msgs, _ := parseStdout(out) // a bad line is reported below, once the process ended
			for _, m := range msgs {
				if string(m.ID) == fmt.Sprint(id) {
					got = m
					return true
				}
			}
			return false
		}, p.Exited, startTimeout)
		if err != nil {
			t.Fatalf("response %d: %v; stderr:\n%s", id, err, p.Stderr)
		}
		return got
	}
	toolCall := func(id int, tool string, a args) string {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "method": "tools/call",
			"params": map[string]any{"name": tool, "arguments": a}})
		return string(b)
	}
	type callResult struct {
		IsError           bool           `json:"isError"`
		StructuredContent map[string]any `json:"structuredContent"`
	}

	if m := response(1, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`); m.Error != nil || len(m.Result) == 0 {
		t.Fatalf("initialize: %+v", m)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)

	// Before a login a guarded tool is refused with a tool error, not a protocol error.
	m := response(2, toolCall(2, "auth_whoami", nil))
	var anonymous struct {
		IsError           bool `json:"isError"`
		StructuredContent struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		} `json:"structuredContent"`
	}
	if err := json.Unmarshal(m.Result, &anonymous); err != nil || m.Error != nil || !anonymous.IsError ||
		anonymous.StructuredContent.Error.Code != "UNAUTHENTICATED" {
		t.Fatalf("auth_whoami before login: %+v %s", m.Error, m.Result)
	}
	m = response(6, toolCall(6, "auth_login", args{"email": in.OwnerEmail, "password": "wrong-Password-42"}))
	var failed callResult
	if err := json.Unmarshal(m.Result, &failed); err != nil || !failed.IsError {
		t.Fatalf("wrong password: %s", m.Result)
	}
	m = response(3, toolCall(3, "auth_login", args{"email": in.OwnerEmail, "password": in.OwnerPassword}))
	var login struct {
		StructuredContent tokenResult `json:"structuredContent"`
	}
	if err := json.Unmarshal(m.Result, &login); err != nil || login.StructuredContent.AccessToken == "" {
		t.Fatalf("login: %s", m.Result)
	}
	sec.Add(login.StructuredContent.AccessToken, login.StructuredContent.RefreshToken)
	m = response(4, toolCall(4, "auth_whoami", nil))
	var whoami callResult
	if err := json.Unmarshal(m.Result, &whoami); err != nil || whoami.IsError || whoami.StructuredContent["auth_method"] != "session_login" {
		t.Fatalf("whoami: %s", m.Result)
	}
	// Protocol faults stay JSON-RPC errors.
	if m := response(5, `{"jsonrpc":"2.0","id":5,"method":"no/such/method"}`); m.Error == nil {
		t.Fatalf("unknown method: %+v", m)
	}

	_ = stdinW.Close()
	if code := p.Wait(t, stopTimeout); code != 0 {
		t.Errorf("stdio server exit code %d on EOF, want 0; stderr:\n%s", code, p.Stderr)
	}
	out := p.Stdout.String()
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("stdout ends with an incomplete line: %q", out[max(0, len(out)-200):])
	}
	if _, err := parseStdout(out); err != nil {
		t.Error(err)
	}
	sec.CheckNotIn(t, "stdio server stderr", p.Stderr.String())
}

// runBinary runs the binary to completion and returns its exit code, stdout and stderr.
func runBinary(t *testing.T, env []string, stdin string, timeout time.Duration, args ...string) (int, string, string) {
	t.Helper()
	p := mcptest.StartProc(t, binPath, env, strings.NewReader(stdin), args...)
	code := p.Wait(t, timeout)
	return code, p.Stdout.String(), p.Stderr.String()
}

func TestShouldCreateUsersFromTheCommandLine(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	sec := &secrets{}
	password := "e2e-Cli-" + randomHex(8)
	sec.Add(password)

	code, stdout, stderr := runBinary(t, in.Env(), password+"\n", startTimeout,
		"user", "create", "--email", "CLI@example.com", "--username", "cliuser", "--role", "admin")
	if code != 0 {
		t.Fatalf("user create: exit %d; stderr:\n%s", code, stderr)
	}
	var u userView
	if err := json.Unmarshal([]byte(stdout), &u); err != nil {
		t.Fatalf("user create stdout is not the user JSON: %v\n%s", err, stdout)
	}
	if !strings.HasPrefix(u.ID, "usr_") || u.Email != "cli@example.com" || u.Username != "cliuser" ||
		!slices.Equal(u.Roles, []string{"admin"}) || u.OrgID != "default" {
		t.Fatalf("user create: %+v", u)
	}
	sec.CheckNotIn(t, "user create output", stdout+stderr)

	// The same email again is refused; so is a common password; neither prints the password.
	code, stdout, stderr = runBinary(t, in.Env(), "e2e-Other-"+randomHex(8)+"\n", startTimeout,
		"user", "create", "--email", "cli@example.com")
	if code == 0 || !strings.Contains(stderr, "already exists") {
		t.Errorf("duplicate user create: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	code, _, stderr = runBinary(t, in.Env(), "password\n", startTimeout, "user", "create", "--email", "weak@example.com")
	if code == 0 || !strings.Contains(stderr, "common") {
		t.Errorf("user create with a common password: exit %d, stderr:\n%s", code, stderr)
	}
	code, _, stderr = runBinary(t, in.Env(), "", startTimeout, "user", "create", "--email", "nopw@example.com")
	if code == 0 || !strings.Contains(stderr, "no password on stdin") {
		t.Errorf("user create without a password: exit %d, stderr:\n%s", code, stderr)
	}

	c := dialStdio(t, in)
	tok := c.Login(t, sec, args{"username": "cliuser", "password": password})
	if tok.User.ID != u.ID || !slices.Equal(tok.User.Roles, []string{"admin"}) {
		t.Fatalf("login as the CLI-created user: %+v", tok.User)
	}
	if w := decode[whoamiResult](t, c.Call(t, "auth_whoami", nil)); w.User.ID != u.ID || w.AuthMethod != "session_login" {
		t.Fatalf("auth_whoami: %+v", w)
	}
	c.CloseStdio(t)
	sec.CheckNotIn(t, "stdio server stderr", c.Stderr.String())
}

func TestShouldFailFastWithOneLineOnBadConfiguration(t *testing.T) {
	t.Parallel()
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		env      []string
		want     string
		wantCode int
		within   time.Duration
	}{
		{name: "an unknown flag", args: []string{"serve", "--no-such-flag"},
			want: "flag provided but not defined: -no-such-flag", wantCode: 2},
		{name: "a flag of user create it does not have", args: []string{"user", "create", "--email", "a@example.com", "--transport", "http"},
			want: "flag provided but not defined: -transport", wantCode: 2},
		{name: "a stray argument", args: []string{"serve", "now"},
			want: `mcpauth: unexpected argument "now"`, wantCode: 2},
		{name: "an unknown transport", args: []string{"serve", "--transport", "carrier-pigeon"},
			want: "mcpauth: --transport", wantCode: 2},
		{name: "an access TTL below the minimum", args: []string{"serve", "--access-ttl", "10ms"},
			want: "mcpauth: --access-ttl", wantCode: 2},
		{name: "an unknown command", args: []string{"frobnicate"},
			want: `mcpauth: unknown command "frobnicate"`, wantCode: 2},
		{name: "user create without an email", args: []string{"user", "create"},
			want: "mcpauth: --email is required", wantCode: 2},
		{name: "user unlock without a user", args: []string{"user", "unlock"},
			want: "mcpauth: give exactly one of --email and --id", wantCode: 2},
		{name: "user unlock of a user that does not exist", args: []string{"user", "unlock", "--email", "nobody@example.com"},
			env: []string{"MCPAUTH_BCRYPT_COST=10"}, want: "user not found", wantCode: 1},
		{name: "an unreachable MongoDB", args: []string{"serve", "--transport", "http", "--listen", "127.0.0.1:0"},
			env: []string{"MCPAUTH_MONGO_URI=mongodb://e2e:hunter2-secret@127.0.0.1:1"}, want: "cannot reach MongoDB", wantCode: 1, within: 15 * time.Second},
		{name: "an unwritable data directory", args: []string{"serve", "--transport", "http", "--listen", "127.0.0.1:0"},
			env: []string{"MCPAUTH_DATA_DIR=" + filepath.Join(notADir, "data")}, want: "data directory", wantCode: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t)
			start := time.Now()
			within := tc.within
			if within == 0 {
				within = startTimeout
			}
			code, stdout, stderr := runBinary(t, in.Env(tc.env...), "", within, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.wantCode, stderr)
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "mcpauth") || !strings.Contains(stderr, tc.want) {
				t.Errorf("want one line on stderr starting with mcpauth and containing %q, got:\n%s", tc.want, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout: %q, want nothing", stdout)
			}
			if strings.Contains(stderr, in.OwnerPassword) || strings.Contains(stderr, "hunter2-secret") {
				t.Errorf("stderr shows a password:\n%s", stderr)
			}
			t.Logf("failed in %s", time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestShouldPrintHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "--transport"},
		{[]string{"help"}, "--transport"},
		{[]string{"serve", "--help"}, "--transport"},
		{[]string{"serve", "-h"}, "--transport"},
		{[]string{"user", "create", "--help"}, "--email"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runBinary(t, mcptest.BaseEnv(), "", startTimeout, tc.args...)
			if code != 0 {
				t.Errorf("exit code %d, want 0; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stdout, tc.want) || stderr != "" {
				t.Errorf("want help on stdout mentioning %s and nothing on stderr; stdout:\n%s\nstderr:\n%s", tc.want, stdout, stderr)
			}
		})
	}
}
