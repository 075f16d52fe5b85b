// Package app is the wiring and the command line shared by the binaries (mcpauth and the
// bduf-demo orchestrator): configuration from flags and environment, the stores, the services,
// the guard and the transports. It is the one place that reads the environment.
package app

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/mcp"
	"github.com/bduf/mcpauth/rbac"
	"github.com/bduf/mcpauth/tools"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// Program describes a binary built on the app: mcpauth itself, or an MCP server that mounts
// mcpauth's tools beside its own (bduf-demo).
type Program struct {
	Name    string
	Version string
	// Tools and Policy are the program's own tools and their rules, guarded like mcpauth's.
	Tools  []server.ServerTool
	Policy mcp.Policy
}

// Fail prints the one-line error and returns the exit code.
func Fail(name string, stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "%s: %s\n", name, strings.ReplaceAll(err.Error(), "\n", " "))
	return ExitError
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
func parseFlags(prog string, fs *flag.FlagSet, help string, args []string, stdout, stderr io.Writer) (int, bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, help)
		fmt.Fprintln(stdout, "\nFlags:")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return ExitOK, true
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s %s: %v (run '%s %s --help')\n", prog, fs.Name(), err, prog, fs.Name())
		return ExitUsage, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", prog, fs.Arg(0))
		return ExitUsage, true
	}
	return 0, false
}

// ServeHelp is the help of the serve command.
const ServeHelp = `Usage: %[1]s serve [--transport stdio|http|sse] [--listen ADDR] [flags]

Runs the %[1]s MCP server. Every tool call is authenticated and authorized by the mcpauth guard.
  --transport stdio   MCP over stdin/stdout (for clients that launch it as a subprocess);
                      logs go to stderr. MCPAUTH_TOKEN or MCPAUTH_API_KEY in the environment is
                      the caller's credential until auth_login binds the session.
  --transport http    one listener: streamable HTTP at /mcp, SSE at /sse (messages at /message),
                      /healthz, /.well-known/jwks.json and /.well-known/oauth-protected-resource.
                      'sse' is an alias.
With no MCPAUTH_MONGO_URI the embedded store runs inside the process, in the data directory.

Environment only (secrets are never flags):
  MCPAUTH_MASTER_KEY                 base64 32-byte key sealing signing keys (default: <data-dir>/master.key)
  MCPAUTH_BOOTSTRAP_ADMIN_EMAIL      first owner's email on an empty store
  MCPAUTH_BOOTSTRAP_ADMIN_PASSWORD   first owner's password (else one is generated and printed once)
  MCPAUTH_TOKEN / MCPAUTH_API_KEY    stdio caller credential
`

// Serve runs the serve command of p.
func Serve(ctx context.Context, p Program, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := newFlagSet("serve")
	transport := fs.String("transport", "stdio", "stdio, http or sse")
	listen := fs.String("listen", "127.0.0.1:8080", "HTTP listen address (http/sse); port 0 picks a free port [$MCPAUTH_LISTEN]")
	vals := registerFlags(fs, storeFlags)
	benchVals := registerBenchFlags(fs) // benchmark-only (insecure.go)
	if code, stop := parseFlags(p.Name, fs, fmt.Sprintf(ServeHelp, p.Name), args, stdout, stderr); stop {
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
		fmt.Fprintf(stderr, "%s: --transport: want stdio, http or sse, got %q\n", p.Name, *transport)
		return ExitUsage
	}
	c, err := buildConfig(resolve(fs, storeFlags, vals, getenv), getenv)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	// Benchmark-only options (insecure.go): refused unless listening on loopback.
	bench, err := parseBenchConfig(resolve(fs, benchFlags, benchVals, getenv), *transport, *listen, len(p.Tools) > 0)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", p.Name, err)
		return ExitUsage
	}
	policy := tools.Policy().Merge(p.Policy) // mcpauth's tools, then the program's own
	if c.PolicyFile != "" {
		fromFile, err := mcp.LoadPolicy(c.PolicyFile)
		if err != nil {
			return Fail(p.Name, stderr, err)
		}
		policy = policy.Merge(fromFile)
	}
	logger := newLogger(stderr, c.LogLevel)
	tel, err := setupTelemetry(ctx, getenv)
	if err != nil {
		return Fail(p.Name, stderr, err)
	}
	defer func() { _ = tel.Close(context.WithoutCancel(ctx)) }()

	var l net.Listener
	if *transport != "stdio" { // bind first: a taken port fails before any other work
		if l, err = net.Listen("tcp", *listen); err != nil {
			return Fail(p.Name, stderr, fmt.Errorf("listen on %s: %w", *listen, err))
		}
		defer l.Close()
		if err := bench.checkBoundLoopback(l); err != nil { // benchmark-only
			return Fail(p.Name, stderr, err)
		}
	}
	stdio := *transport == "stdio"
	if !stdio {
		c.originDefaults(l.Addr())
		if a, ok := l.Addr().(*net.TCPAddr); c.OAuthDocumentsTestCA != "" && (!ok || !a.IP.IsLoopback()) {
			return Fail(p.Name, stderr, fmt.Errorf("MCPAUTH_OAUTH_CIMD_TEST_CA is for tests: refused on the non-loopback listener %s", l.Addr()))
		}
	}
	switch {
	case c.AnonymousMethodsSet:
		policy.AnonymousMethods = c.AnonymousMethods
	case c.oauthOn(stdio):
		// Clients start the OAuth flow on a 401 at connect: nothing is anonymous (but calls of
		// public tools, auth_login among them).
		policy.AnonymousMethods = []string{}
	}
	if err := policy.Validate(); err != nil {
		return Fail(p.Name, stderr, err)
	}
	a, err := openApp(ctx, c, logger)
	if err != nil {
		return Fail(p.Name, stderr, err)
	}
	defer a.Close()
	if err := bootstrap(ctx, a, c, p.Name, stdio, stderr); err != nil {
		return Fail(p.Name, stderr, err)
	}
	var prmScopes []string // nil: every permission of the policy
	if c.oauthOn(stdio) {
		prmScopes = minimalScopes(policyScopes(policy))
	}
	guard, err := mcp.NewGuard(mcp.GuardConfig{Auth: a.auth, Authz: a.authz, Policy: policy, ScopesSupported: prmScopes,
		Credentials: a.tools.Credential, ResourceURI: c.Audience, AuthorizationServers: []string{c.Issuer}, Logger: logger,
		Limiter: a.limiter, CallLimit: a.callLimit, Audit: a.audit, GrantedSampleRate: c.AuditGrantedSample})
	if err != nil {
		return Fail(p.Name, stderr, err)
	}
	var sso []oauth.SSOConnector
	if c.SSOConnectors != "" {
		if sso, err = loadConnectors(ctx, c.SSOConnectors, c.Issuer, getenv, logger); err != nil {
			return Fail(p.Name, stderr, err)
		}
		a.useSSO(c, sso, stdio, logger)
	}
	bench.announce(p.Name, stderr, logger, p.Tools)                            // benchmark-only
	srv := bench.newServer(p.Name, p.Version, guard, a.tools.Tools(), p.Tools) // mcp.NewServer unless --insecure-no-guard
	if stdio {
		logger.Info("serving MCP on stdio")
		if c.Token != "" { // the host's log is where its user looks: say at once if it cannot work
			if _, err := a.auth.Validate(ctx, c.Token); err != nil {
				logger.Warn("the stdio credential (MCPAUTH_TOKEN or MCPAUTH_API_KEY) is not accepted: every guarded call fails until auth_login; 'mcpauth init' makes a long-lived key",
					"code", apierr.CodeOf(err), "reason", apierr.From(err).Message)
			}
		}
		if err := mcp.ServeStdio(ctx, srv, stdin, stdout, c.Token, logger); err != nil {
			return Fail(p.Name, stderr, err)
		}
		return ExitOK
	}
	if c.MetricsListen != "" {
		ml, err := net.Listen("tcp", c.MetricsListen)
		if err != nil {
			return Fail(p.Name, stderr, fmt.Errorf("metrics: listen on %s: %w", c.MetricsListen, err))
		}
		defer ml.Close()
		go func() {
			if err := mcp.ServeMetrics(ctx, ml, tel.metrics, logger); err != nil {
				logger.Error("metrics listener stopped", "error", err)
			}
		}()
		logger.Info("metrics listening", "url", "http://"+ml.Addr().String()+"/metrics")
	}
	var routes func(*http.ServeMux, func(http.Handler) http.Handler)
	if c.oauthOn(false) {
		as, err := a.oauthServer(c, policy, sso, logger)
		if err != nil {
			return Fail(p.Name, stderr, err)
		}
		routes = as.Register
		go as.RunSweeps(ctx, c.OAuthSweepInterval)
		logger.Info("OAuth authorization server on", "issuer", c.Issuer, "resource", c.Audience, "registration", c.OAuthRegistration)
	}
	h := mcp.NewHTTP(srv, guard, a.auth.Keys(), logger, mcp.HTTPOptions{Ready: a.ready, AllowedOrigins: c.AllowedOrigins, Routes: routes,
		ReadTimeout: c.HTTPReadTimeout, IdleTimeout: c.HTTPIdleTimeout, WriteTimeout: c.HTTPWriteTimeout,
		TrustedProxies: c.TrustedProxies, MaxConnsPerAddress: cmp.Or(c.MaxConnsPerAddress, -1),
		Sessions: mcp.SessionLimits{Max: c.MaxSessions, PerAddress: c.MaxSessionsPerAddress}})
	h.Handler = bench.handler(h.Handler, srv, logger) // benchmark-only: unguarded /mcp, /debug/pprof/
	base := "http://" + l.Addr().String()
	logger.Info("listening", "url", base, "mcp", base+"/mcp", "sse", base+"/sse")
	if err := h.Serve(ctx, l, logger); err != nil {
		return Fail(p.Name, stderr, err)
	}
	logger.Info("stopped")
	return ExitOK
}

// bootstrap creates the first owner on an empty store. Over stdio, with no password given, it
// refuses instead: the host (Claude Desktop, the Inspector) would bury a generated one in a log.
func bootstrap(ctx context.Context, a *app, c config, prog string, stdio bool, stderr io.Writer) error {
	if stdio && c.BootstrapPassword == "" {
		empty, err := a.auth.NoUsers(ctx)
		if err != nil {
			return err
		}
		if empty {
			return errors.New("this store has no owner yet, and a stdio host would not show a generated password: " +
				"run 'mcpauth init' in a terminal first (it prints the host's configuration), " +
				"or set MCPAUTH_BOOTSTRAP_ADMIN_EMAIL and MCPAUTH_BOOTSTRAP_ADMIN_PASSWORD")
		}
	}
	u, created, generated, err := createOwner(ctx, a, c)
	if err != nil || !created {
		return err
	}
	if generated != "" {
		// The one place a secret is printed: the operator needs it, once.
		fmt.Fprintf(stderr, "%s: created owner %s with password: %s\n", prog, u.Email, generated.Reveal())
		fmt.Fprintf(stderr, "%s: this password is shown only once; log in and keep it safe\n", prog)
	} else {
		fmt.Fprintf(stderr, "%s: created owner %s (password from MCPAUTH_BOOTSTRAP_ADMIN_PASSWORD)\n", prog, u.Email)
	}
	return nil
}

// createOwner creates the first owner (c.BootstrapEmail and password; each generated when
// empty) if the store has no user yet, and reports whether it did.
func createOwner(ctx context.Context, a *app, c config) (_ auth.User, created bool, generated auth.Secret, _ error) {
	// The first owner is also the deployment's auditor (audit:read_all: every organization's
	// events), which no built-in role carries.
	owner := tools.AssignRoles(a.authz, []string{rbac.RoleOwner})
	var u auth.User
	created, generated, err := a.auth.Bootstrap(ctx, c.BootstrapEmail, c.BootstrapPassword, func(ctx context.Context, nu auth.User) error {
		if err := owner(ctx, nu); err != nil {
			return err
		}
		u = nu
		return a.authz.AddGrant(ctx, rbac.Grant{UserID: nu.ID, OrgID: nu.OrgID, Permission: tools.ReadAllPermission})
	})
	return u, created, generated, err
}

const userCreateHelp = `Usage: mcpauth user create --email E [--username U] [--role R] [--org O] < password-file

Creates a user in the store the server uses. The password is read from the first line of stdin
(so it never shows in the process list or shell history), e.g.:
  printf '%s\n' "$PASSWORD" | mcpauth user create --email ada@example.com --role admin
With the embedded store, the data directory must be the server's (MCPAUTH_DATA_DIR).
`

// UserCreate runs "mcpauth user create".
func UserCreate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	const prog = "mcpauth"
	fs := newFlagSet("user create")
	email := fs.String("email", "", "email address (required)")
	username := fs.String("username", "", "username (optional)")
	role := fs.String("role", rbac.RoleViewer, "role: owner, admin, contributor or viewer")
	org := fs.String("org", auth.DefaultOrgID, "organization id")
	vals := registerFlags(fs, storeFlags)
	if code, stop := parseFlags(prog, fs, userCreateHelp, args, stdout, stderr); stop {
		return code
	}
	if *email == "" {
		fmt.Fprintln(stderr, "mcpauth: --email is required")
		return ExitUsage
	}
	if !rbac.IsBuiltinRole(*role) {
		fmt.Fprintf(stderr, "mcpauth: --role: want one of %s, got %q\n", strings.Join(rbac.BuiltinRoles(), ", "), *role)
		return ExitUsage
	}
	c, err := buildConfig(resolve(fs, storeFlags, vals, getenv), getenv)
	if err != nil {
		fmt.Fprintln(stderr, "mcpauth:", err)
		return ExitUsage
	}
	c.cli = true
	pw, err := readPassword(stdin)
	if err != nil {
		return Fail(prog, stderr, err)
	}
	if err := password.CheckPolicy("password", pw.Reveal()); err != nil {
		return Fail(prog, stderr, err)
	}
	a, err := openApp(ctx, c, newLogger(stderr, "warn"))
	if err != nil {
		return Fail(prog, stderr, err)
	}
	defer a.Close()
	u, err := a.auth.CreateUser(ctx, auth.NewUser{Email: *email, Username: *username, Password: pw,
		OrgID: *org, Provision: tools.AssignRoles(a.authz, []string{*role})})
	if err != nil {
		return Fail(prog, stderr, err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(u.View([]string{*role}))
	return ExitOK
}

const userUnlockHelp = `Usage: mcpauth user unlock --email E | --id ID

Lifts a user's login lockout, the permanent one after too many consecutive failures included.
The running server honours it at the account's next login (its lockout may live in its own
memory; with Redis it is lifted at once). Recorded as ACCOUNT_UNLOCKED. With the embedded
store, the data directory must be the server's (MCPAUTH_DATA_DIR).
`

// UserUnlock runs "mcpauth user unlock".
func UserUnlock(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const prog = "mcpauth"
	fs := newFlagSet("user unlock")
	email := fs.String("email", "", "the user's email address")
	id := fs.String("id", "", "the user's id (usr_...)")
	vals := registerFlags(fs, storeFlags)
	if code, stop := parseFlags(prog, fs, userUnlockHelp, args, stdout, stderr); stop {
		return code
	}
	if (*email == "") == (*id == "") {
		fmt.Fprintln(stderr, "mcpauth: give exactly one of --email and --id")
		return ExitUsage
	}
	a, code := openForCLI(ctx, fs, vals, getenv, stderr)
	if a == nil {
		return code
	}
	defer a.Close()
	u, err := a.auth.FindUser(ctx, *email, *id)
	if err != nil {
		return Fail(prog, stderr, err)
	}
	if err := a.auth.ReleaseLock(ctx, u.ID, "cli"); err != nil {
		return Fail(prog, stderr, err)
	}
	fmt.Fprintf(stdout, "unlocked %s (%s)\n", u.Email, u.ID)
	return ExitOK
}

// openForCLI opens the store for a command of the CLI with the store flags it parsed into vals.
// On failure it has said why on stderr and returns the exit code (and no app).
func openForCLI(ctx context.Context, fs *flag.FlagSet, vals map[string]*string, getenv func(string) string, stderr io.Writer) (*app, int) {
	c, err := buildConfig(resolve(fs, storeFlags, vals, getenv), getenv)
	if err != nil {
		fmt.Fprintln(stderr, "mcpauth:", err)
		return nil, ExitUsage
	}
	c.cli = true
	a, err := openApp(ctx, c, newLogger(stderr, "warn"))
	if err != nil {
		return nil, Fail("mcpauth", stderr, err)
	}
	return a, ExitOK
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
