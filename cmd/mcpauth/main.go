// Command mcpauth is the mcpauth server and its admin CLI.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/bduf/mcpauth/cmd/internal/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `mcpauth — authentication and authorization for MCP servers.

Usage:
  mcpauth init [flags]           set up a new store for a stdio host: the owner (asked for) and
                                 an API key, printed as the host's ready-to-paste configuration
  mcpauth serve [flags]          run the server (MCP over stdio, or HTTP: streamable HTTP + SSE)
  mcpauth user create [flags]    create a user; the password is read from stdin
  mcpauth user unlock --email E  lift a user's login lockout (the permanent one too)
  mcpauth client add|delete      register an OAuth client ahead of time (or delete one)
  mcpauth connector add|delete|list  edit the single sign-on connectors file
  mcpauth audit verify|tail|export  check the audit trail's hash chains, show or export events
  mcpauth key rotate             make a new signing key the signing one (the old one verifies on)
  mcpauth version                print the version

Quick start:
  mcpauth init                   (for Claude Desktop, Cursor, the Inspector: paste what it prints)
  mcpauth serve --transport http --listen 127.0.0.1:8080
    First start creates an owner: MCPAUTH_BOOTSTRAP_ADMIN_EMAIL/_PASSWORD if set, otherwise
    admin@localhost with a random password printed once to stderr.
  Then point an MCP client at http://127.0.0.1:8080/mcp: an OAuth client (Claude Code, VS Code,
  Cursor, the SDKs) logs its user in with the browser; a script runs the server with
  --anonymous-methods initialize,ping,tools/list and calls auth_login.

Run 'mcpauth serve --help' or 'mcpauth user create --help' for flags. Every flag also has an
environment variable (shown in [$...]); a flag on the command line wins.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return app.ExitUsage
	}
	switch args[0] {
	case "init":
		return app.Init(ctx, args[1:], stdin, stdout, stderr, getenv)
	case "serve":
		return app.Serve(ctx, app.Program{Name: "mcpauth", Version: version}, args[1:], stdin, stdout, stderr, getenv)
	case "user":
		switch {
		case len(args) >= 2 && args[1] == "create":
			return app.UserCreate(ctx, args[2:], stdin, stdout, stderr, getenv)
		case len(args) >= 2 && args[1] == "unlock":
			return app.UserUnlock(ctx, args[2:], stdout, stderr, getenv)
		}
		fmt.Fprintln(stderr, "mcpauth: usage: mcpauth user create --email E [--username U] [--role R] < password")
		fmt.Fprintln(stderr, "       mcpauth user unlock --email E | --id ID")
		return app.ExitUsage
	case "key":
		return app.Key(ctx, args[1:], stdout, stderr, getenv)
	case "client":
		return app.Client(ctx, args[1:], stdout, stderr, getenv)
	case "connector":
		return app.Connector(ctx, args[1:], stdout, stderr, getenv)
	case "audit":
		return app.Audit(ctx, args[1:], stdout, stderr, getenv)
	case "version", "--version":
		fmt.Fprintln(stdout, "mcpauth", version)
		return app.ExitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return app.ExitOK
	default:
		fmt.Fprintf(stderr, "mcpauth: unknown command %q (run 'mcpauth --help')\n", args[0])
		return app.ExitUsage
	}
}
