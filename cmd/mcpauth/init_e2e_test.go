package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// hostConfig is what `mcpauth init` prints: the mcpServers JSON of Claude Desktop, Cursor and
// the Inspector's --config.
type hostConfig struct {
	MCPServers map[string]struct {
		Command string            `json:"command"`
		Args    []string          `json:"args"`
		Env     map[string]string `json:"env"`
	} `json:"mcpServers"`
}

// hostEnv is the environment a host gives the server it launches: its config's env on top of a
// bare process environment (no MCPAUTH_ variable of the test's).
func hostEnv(env map[string]string) []string {
	out := mcptest.BaseEnv()
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func TestShouldSetUpAStdioHostWithInit(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	in.Bootstrap = false
	sec := &secrets{}
	password := "e2e-Init-" + randomHex(8)
	sec.Add(password)

	// The first run a stdio host would make, before init: refused, saying what to do, not a
	// password nobody sees.
	code, _, stderr := runBinary(t, in.Env(), "", startTimeout, "serve", "--transport", "stdio")
	if code == 0 || !strings.Contains(stderr, "mcpauth init") || strings.Contains(stderr, "with password:") {
		t.Fatalf("stdio serve on an empty store without bootstrap variables: exit %d; stderr:\n%s", code, stderr)
	}

	// Bad input changes nothing: a common password, two lines missing.
	for _, tt := range []struct{ name, stdin, want string }{
		{"a common password", "ada@example.com\npassword\n", "common"},
		{"no password", "ada@example.com\n", "no password"},
		{"nothing", "", "no owner email"},
	} {
		if code, stdout, stderr := runBinary(t, in.Env(), tt.stdin, startTimeout, "init"); code == 0 || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("init with %s: exit %d, stdout %q, stderr:\n%s", tt.name, code, stdout, stderr)
		}
	}

	// The operator types the email and password; init prints the host's configuration.
	code, stdout, stderr := runBinary(t, in.Env("MCPAUTH_BCRYPT_COST=4"), "Ada@Example.com\n"+password+"\n", startTimeout, "init", "--key-ttl", "720h")
	if code != 0 {
		t.Fatalf("init: exit %d; stderr:\n%s", code, stderr)
	}
	var cfg hostConfig
	if err := json.Unmarshal([]byte(stdout), &cfg); err != nil {
		t.Fatalf("init's stdout is not the host configuration: %v\n%s", err, stdout)
	}
	srv, ok := cfg.MCPServers["mcpauth"]
	key := srv.Env["MCPAUTH_API_KEY"]
	if !ok || !filepath.IsAbs(srv.Command) || !slices.Equal(srv.Args, []string{"serve", "--transport", "stdio"}) ||
		srv.Env["MCPAUTH_DATA_DIR"] != in.DataDir || !strings.HasPrefix(key, "mcpk_") {
		t.Fatalf("host configuration: %s", stdout)
	}
	if _, err := os.Stat(srv.Command); err != nil {
		t.Fatalf("the configured command %s: %v", srv.Command, err)
	}
	sec.Add(key)
	sec.CheckNotIn(t, "init's stderr", stderr) // the key is on stdout, once; the password nowhere
	if strings.Contains(stdout, password) {
		t.Fatal("init printed the password")
	}

	// The host launches exactly what the configuration says: the key is its credential, with
	// the owner's tools listed from the start.
	host := mcptest.DialStdio(t, srv.Command, hostEnv(srv.Env))
	w := decode[whoamiResult](t, host.Call(t, "auth_whoami", nil))
	if w.User.Email != "ada@example.com" || !slices.Contains(w.User.Roles, "owner") || w.AuthMethod != "api_key" {
		t.Fatalf("auth_whoami with init's key: %+v", w)
	}
	if tools := host.ListTools(t); !slices.Contains(tools, "user_list") || !slices.Contains(tools, "audit_query") {
		t.Errorf("tools/list with init's key: %v, want the owner's tools", tools)
	}
	// The owner logs in with the password typed at init.
	host.Login(t, sec, args{"email": "ada@example.com", "password": password})
	host.CloseStdio(t)
	sec.CheckNotIn(t, "the host's server stderr", host.Stderr.String())

	// init sets up a new store only; on this one it refuses and creates nothing.
	code, stdout, stderr = runBinary(t, in.Env(), "eve@example.com\n"+password+"\n", startTimeout, "init")
	if code == 0 || stdout != "" || !strings.Contains(stderr, "already has users") {
		t.Fatalf("init on a store with users: exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	c := dialStdio(t, in)
	c.Login(t, sec, args{"email": "ada@example.com", "password": password})
	keys := decode[struct {
		Keys []struct{ ID string } `json:"keys"`
	}](t, c.Call(t, "apikey_list", nil))
	users := decode[struct {
		Users []userView `json:"users"`
	}](t, c.Call(t, "user_list", nil))
	if len(keys.Keys) != 1 || len(users.Users) != 1 {
		t.Errorf("after a refused second init: keys %+v, users %+v; want init's one key and the owner alone", keys, users)
	}
	c.CloseStdio(t)
}
