// Command mcpauth is the mcpauth server and its admin CLI.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
	"github.com/bduf/mcpauth/tools"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `mcpauth — authentication and authorization for MCP servers.

Usage:
  mcpauth serve [flags]          run the server (MCP over stdio, or HTTP: streamable HTTP + SSE)
  mcpauth user create [flags]    create a user; the password is read from stdin
  mcpauth version                print the version

Quick start:
  mcpauth serve --transport http --listen 127.0.0.1:8080
    First start creates an owner: MCPAUTH_BOOTSTRAP_ADMIN_EMAIL/_PASSWORD if set, otherwise
    admin@localhost with a random password printed once to stderr.
  Then point an MCP client at http://127.0.0.1:8080/mcp (or /sse) and call auth_login.

Run 'mcpauth serve --help' or 'mcpauth user create --help' for flags. Every flag also has an
environment variable (shown in [$...]); a flag on the command line wins.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// exit codes
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "serve":
		return serveCmd(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "user":
		if len(args) < 2 || args[1] != "create" {
			fmt.Fprintln(stderr, "mcpauth: usage: mcpauth user create --email E [--username U] [--role R] < password")
			return exitUsage
		}
		return userCreateCmd(ctx, args[2:], stdin, stdout, stderr, getenv)
	case "version", "--version":
		fmt.Fprintln(stdout, "mcpauth", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "mcpauth: unknown command %q (run 'mcpauth --help')\n", args[0])
		return exitUsage
	}
}

// fail prints the one-line error and returns the exit code.
func fail(stderr io.Writer, err error) int {
	fmt.Fprintln(stderr, "mcpauth:", strings.ReplaceAll(err.Error(), "\n", " "))
	return exitError
}

// newFlagSet returns a flag set that prints nothing itself: parseFlags prints one line on an
// error and the help (to stdout) on -h.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args; it returns (exit code, true) when the command should stop.
func parseFlags(fs *flag.FlagSet, help string, args []string, stdout, stderr io.Writer) (int, bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, help)
		fmt.Fprintln(stdout, "\nFlags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return exitOK, true
	}
	if err != nil {
		fmt.Fprintf(stderr, "mcpauth %s: %v (run 'mcpauth %s --help')\n", fs.Name(), err, fs.Name())
		return exitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mcpauth: unexpected argument %q\n", fs.Arg(0))
		return exitUsage, true
	}
	return 0, false
}

const serveHelp = `Usage: mcpauth serve [--transport stdio|http|sse] [--listen ADDR] [flags]

Runs the mcpauth MCP server.
  --transport stdio   MCP over stdin/stdout (for clients that launch mcpauth as a subprocess);
                      logs go to stderr. MCPAUTH_TOKEN or MCPAUTH_API_KEY in the environment is
                      the caller's credential until auth_login binds the session.
  --transport http    one listener: streamable HTTP at /mcp, SSE at /sse (messages at /message),
                      /healthz and /.well-known/jwks.json. 'sse' is an alias.
With no MCPAUTH_MONGO_URI the embedded store runs inside the process, in the data directory.

Environment only (secrets are never flags):
  MCPAUTH_MASTER_KEY                 base64 32-byte key sealing signing keys (default: <data-dir>/master.key)
  MCPAUTH_BOOTSTRAP_ADMIN_EMAIL      first owner's email on an empty store
  MCPAUTH_BOOTSTRAP_ADMIN_PASSWORD   first owner's password (else one is generated and printed once)
  MCPAUTH_TOKEN / MCPAUTH_API_KEY    stdio caller credential
`

func serveCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("serve")
	transport := fs.String("transport", "stdio", "stdio, http or sse")
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address (http/sse); port 0 picks a free port [$MCPAUTH_LISTEN]")
	vals := registerFlags(fs, storeFlags)
	if code, stop := parseFlags(fs, serveHelp, args, stdout, stderr); stop {
		return code
	}
	listenSet := false
	fs.Visit(func(f *flag.Flag) { listenSet = listenSet || f.Name == "listen" })
	if !listenSet && getenv("MCPAUTH_LISTEN") != "" {
		*listen = getenv("MCPAUTH_LISTEN")
	}
	switch *transport {
	case "stdio", "http", "sse":
	default:
		fmt.Fprintf(stderr, "mcpauth: --transport: want stdio, http or sse, got %q\n", *transport)
		return exitUsage
	}
	c, err := buildConfig(resolve(fs, storeFlags, vals, getenv), getenv)
	if err != nil {
		fmt.Fprintln(stderr, "mcpauth:", err)
		return exitUsage
	}
	logger := newLogger(stderr, c.LogLevel)

	var l net.Listener
	if *transport != "stdio" { // bind first: a taken port fails before any other work
		if l, err = net.Listen("tcp", *listen); err != nil {
			return fail(stderr, fmt.Errorf("listen on %s: %w", *listen, err))
		}
		defer l.Close()
	}
	a, err := openApp(ctx, c, logger)
	if err != nil {
		return fail(stderr, err)
	}
	defer a.Close()
	if err := bootstrap(ctx, a.auth, c, stderr); err != nil {
		return fail(stderr, err)
	}

	srv := mcp.NewServer(tools.New(a.auth, logger), version)
	if *transport == "stdio" {
		logger.Info("serving MCP on stdio")
		if err := mcp.ServeStdio(ctx, srv, stdin, stdout, c.Token, logger); err != nil {
			return fail(stderr, err)
		}
		return exitOK
	}
	h := mcp.NewHTTP(srv, a.auth.Keys(), logger)
	base := "http://" + l.Addr().String()
	logger.Info("listening", "url", base, "mcp", base+"/mcp", "sse", base+"/sse")
	if err := h.Serve(ctx, l, logger); err != nil {
		return fail(stderr, err)
	}
	logger.Info("stopped")
	return exitOK
}

// bootstrap creates the first owner on an empty store.
func bootstrap(ctx context.Context, svc *auth.Service, c config, stderr io.Writer) error {
	created, generated, err := svc.Bootstrap(ctx, c.BootstrapEmail, c.BootstrapPassword)
	if err != nil {
		return err
	}
	if !created {
		return nil
	}
	email := c.BootstrapEmail
	if email == "" {
		email = auth.BootstrapAdminEmail
	}
	if generated != "" {
		// The one place a secret is printed: the operator needs it, once.
		fmt.Fprintf(stderr, "mcpauth: created owner %s with password: %s\n", email, generated.Reveal())
		fmt.Fprintln(stderr, "mcpauth: this password is shown only once; log in and keep it safe")
	} else {
		fmt.Fprintf(stderr, "mcpauth: created owner %s (password from MCPAUTH_BOOTSTRAP_ADMIN_PASSWORD)\n", email)
	}
	return nil
}

const userCreateHelp = `Usage: mcpauth user create --email E [--username U] [--role R] [--org O] < password-file

Creates a user in the store the server uses. The password is read from the first line of stdin
(so it never shows in the process list or shell history), e.g.:
  printf '%s\n' "$PASSWORD" | mcpauth user create --email ada@example.com --role admin
With the embedded store, the data directory must be the server's (MCPAUTH_DATA_DIR).
`

func userCreateCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("user create")
	email := fs.String("email", "", "email address (required)")
	username := fs.String("username", "", "username (optional)")
	role := fs.String("role", rbac.RoleViewer, "role: owner, admin, contributor or viewer")
	org := fs.String("org", auth.DefaultOrgID, "organization id")
	vals := registerFlags(fs, storeFlags)
	if code, stop := parseFlags(fs, userCreateHelp, args, stdout, stderr); stop {
		return code
	}
	if *email == "" {
		fmt.Fprintln(stderr, "mcpauth: --email is required")
		return exitUsage
	}
	if !rbac.IsBuiltinRole(*role) {
		fmt.Fprintf(stderr, "mcpauth: --role: want one of %s, got %q\n", strings.Join(rbac.BuiltinRoles(), ", "), *role)
		return exitUsage
	}
	c, err := buildConfig(resolve(fs, storeFlags, vals, getenv), getenv)
	if err != nil {
		fmt.Fprintln(stderr, "mcpauth:", err)
		return exitUsage
	}
	password, err := readPassword(stdin)
	if err != nil {
		return fail(stderr, err)
	}
	if err := auth.CheckPasswordPolicy("password", password); err != nil {
		return fail(stderr, err)
	}
	logger := newLogger(stderr, "warn")
	a, err := openApp(ctx, c, logger)
	if err != nil {
		return fail(stderr, err)
	}
	defer a.Close()
	u, err := a.auth.CreateUser(ctx, auth.NewUser{Email: *email, Username: *username, Password: password,
		OrgID: *org, Roles: []string{*role}})
	if err != nil {
		return fail(stderr, err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(u.View())
	return exitOK
}

// readPassword reads the first line of stdin, bounded.
func readPassword(stdin io.Reader) (auth.Secret, error) {
	r := bufio.NewReader(io.LimitReader(stdin, 4096))
	line, err := r.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on stdin (pipe it in: printf '%s\\n' \"$PASSWORD\" | mcpauth user create ...)")
	}
	return auth.Secret(line), nil
}
