package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/rbac"
)

const initHelp = `Usage: mcpauth init [--email E] [--key-ttl 8760h|never] [--permissions P,...] [store flags]

Sets up a new installation for an MCP host that launches mcpauth over stdio (Claude Desktop,
Cursor, the MCP Inspector...), which would never show the password a first 'serve' generates:
  1. creates the owner, with the email and password you type (the password twice, not echoed;
     piped, the email and then the password are the first lines of stdin);
  2. creates an API key for the host, with the owner's permissions, for --key-ttl (default one
     year; 'never' asks for a key that never expires);
  3. prints the host's configuration (the mcpServers JSON that Claude Desktop, Cursor and the
     Inspector's --config read) to stdout, with the key in it: the only time it is shown.
The store must be empty (run it once, before the first 'serve'). The data directory, and any
store flag given here, go into the configuration, so the host's server opens the same store.
`

// defaultInitKeyTTL is the lifetime of the host's key: long enough that a desktop host does not
// break every few weeks, short enough that a forgotten config file does not hold a key forever.
const defaultInitKeyTTL = 365 * 24 * time.Hour

// Init runs "mcpauth init".
func Init(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	const prog = "mcpauth"
	fs := newFlagSet("init")
	email := fs.String("email", "", "the owner's email (default: asked for)")
	keyTTL := fs.String("key-ttl", defaultInitKeyTTL.String(), "lifetime of the host's API key, from 1m to 87600h, or never")
	perms := fs.String("permissions", strings.Join(rbac.PermissionsOf([]string{rbac.RoleOwner}), ","), "comma-separated permissions of the host's API key")
	name := fs.String("key-name", "stdio host (mcpauth init)", "the API key's name, as apikey_list shows it")
	vals := registerFlags(fs, storeFlags)
	if code, stop := parseFlags(prog, fs, initHelp, args, stdout, stderr); stop {
		return code
	}
	key := apikey.Request{Name: *name}
	if *keyTTL == "never" {
		key.NoExpiry = true
	} else {
		ttl, err := parseDuration("key-ttl", *keyTTL, defaultInitKeyTTL, time.Minute, 87600*time.Hour)
		if err != nil {
			fmt.Fprintln(stderr, "mcpauth:", err)
			return ExitUsage
		}
		key.ExpiresAt = time.Now().Add(ttl)
	}
	for _, p := range strings.Split(*perms, ",") {
		if p = strings.TrimSpace(p); p != "" {
			key.Permissions = append(key.Permissions, p)
		}
	}
	resolved := resolve(fs, storeFlags, vals, getenv)
	c, err := buildConfig(resolved, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "mcpauth:", err)
		return ExitUsage
	}
	c.cli = true
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return Fail(prog, stderr, err)
	}
	owner, password, err := askOwner(stdin, stderr, *email)
	if err != nil {
		return Fail(prog, stderr, err)
	}
	c.BootstrapEmail, c.BootstrapPassword = owner, password
	a, err := openApp(ctx, c, newLogger(stderr, "warn"))
	if err != nil {
		return Fail(prog, stderr, err)
	}
	defer a.Close()
	u, created, _, err := createOwner(ctx, a, c)
	switch {
	case err != nil:
		return Fail(prog, stderr, err)
	case !created:
		return Fail(prog, stderr, errors.New("this store already has users: init sets up a new one only "+
			"(log in with auth_login and create a key with apikey_create instead)"))
	}
	key.UserID, key.OrgID = u.ID, u.OrgID
	k, secret, err := a.auth.CreateAPIKey(ctx, key)
	if err != nil {
		return Fail(prog, stderr, fmt.Errorf("the owner %s was created, but not the key (create one with apikey_create): %w", u.Email, err))
	}
	bin, err := os.Executable()
	if err != nil {
		bin = "mcpauth"
	}
	env := map[string]string{"MCPAUTH_DATA_DIR": c.DataDir, "MCPAUTH_API_KEY": secret.Reveal()}
	for _, v := range storeFlags { // what was set here, the host's server needs too
		if s := resolved[v.flag]; s != "" && v.flag != "data-dir" {
			env[v.env] = s
		}
	}
	cfg := map[string]any{"mcpServers": map[string]any{"mcpauth": map[string]any{
		"command": bin, "args": []string{"serve", "--transport", "stdio"}, "env": env}}}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		return Fail(prog, stderr, err)
	}
	expiry := "never expires"
	if !k.ExpiresAt.IsZero() {
		expiry = "expires " + k.ExpiresAt.UTC().Format(time.DateOnly)
	}
	fmt.Fprintf(stderr, `mcpauth: created owner %s and API key %s (%s).
mcpauth: paste the JSON above into the host's configuration (Claude Desktop: claude_desktop_config.json;
  Cursor: ~/.cursor/mcp.json), or save it as mcp.json and run
  npx @modelcontextprotocol/inspector --config mcp.json --server mcpauth
mcpauth: the key is shown only this once; anyone holding the file acts as the owner within its
  permissions: keep it private (chmod 600), revoke it with apikey_revoke.
`, u.Email, k.ID, expiry)
	if getenv("MCPAUTH_MASTER_KEY") != "" {
		fmt.Fprintln(stderr, "mcpauth: MCPAUTH_MASTER_KEY is set: add it to the host's env as well (it is not copied)")
	}
	return ExitOK
}

// askOwner reads the owner's email (unless given) and password: from the terminal, the
// password twice without echo; else the first lines of stdin.
func askOwner(stdin io.Reader, prompt io.Writer, email string) (string, auth.Secret, error) {
	f, isFile := stdin.(*os.File)
	if isFile && term.IsTerminal(int(f.Fd())) {
		if email == "" {
			fmt.Fprint(prompt, "Owner email: ")
			line, err := bufio.NewReader(f).ReadString('\n')
			if err != nil {
				return "", "", fmt.Errorf("read the email: %w", err)
			}
			email = strings.TrimSpace(line)
		}
		var pw [2][]byte
		for i, p := range []string{"Password (12+ characters): ", "Again: "} {
			fmt.Fprint(prompt, p)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(prompt)
			if err != nil {
				return "", "", fmt.Errorf("read the password: %w", err)
			}
			pw[i] = b
		}
		if string(pw[0]) != string(pw[1]) {
			return "", "", errors.New("the two passwords differ")
		}
		password := auth.Secret(pw[0])
		return email, password, checkOwner(email, password)
	}
	r := bufio.NewReader(io.LimitReader(stdin, 8192))
	if email == "" {
		line, err := r.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", "", fmt.Errorf("read the email from stdin: %w", err)
		}
		email = strings.TrimSpace(line)
	}
	line, err := r.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", "", fmt.Errorf("read the password from stdin: %w", err)
	}
	password := auth.Secret(strings.TrimRight(line, "\r\n"))
	return email, password, checkOwner(email, password)
}

func checkOwner(email string, pw auth.Secret) error {
	if email == "" {
		return errors.New("no owner email (give --email, or type it)")
	}
	if pw == "" {
		return errors.New("no password (type it, or pipe the email and password as two lines)")
	}
	return password.CheckPolicy("password", pw.Reveal())
}
