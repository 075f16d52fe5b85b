// Command bduf-demo stands in for the BDUF orchestrator: an MCP server with a few project,
// requirement, analysis and task tools, mcpauth's tools mounted beside them, and every call
// guarded by mcpauth. Its state lives in memory.
//
// The guard takes a few lines in any mcp-go server (see README, "Guard your own server"); here
// the shared wiring (cmd/internal/app) does them, with the policy below.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/bduf/mcpauth/cmd/internal/app"
	"github.com/bduf/mcpauth/mcp"
)

var version = "dev"

const usage = `bduf-demo — a guarded stand-in for the BDUF orchestrator.

Usage:
  bduf-demo serve [flags]    run it (same transports and configuration as 'mcpauth serve')

Tools: projects_list, projects_create, projects_delete, requirements_write, analyses_read,
tasks_write (each needs its permission), plus mcpauth's auth_*, user_*, role_* and permission_*.

Benchmark only: serve --insecure-no-guard (HTTP on a loopback address only) serves the tools
above without the guard, so that cmd/mcpauth-load can measure what the guard costs.
`

// Policy is the orchestrator's tools and the permission each needs.
var Policy = mcp.Policy{Tools: map[string]mcp.Rule{
	"projects_list":      mcp.Require("projects:read"),
	"projects_create":    mcp.Require("projects:write"),
	"projects_delete":    mcp.Require("projects:delete"),
	"requirements_write": mcp.Require("requirements:write"),
	"analyses_read":      mcp.Require("analyses:read"),
	"tasks_write":        mcp.Require("tasks:write"),
}}

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
	case "serve":
		p := app.Program{Name: "bduf-demo", Version: version, Tools: newOrchestrator().tools(), Policy: Policy}
		return app.Serve(ctx, p, args[1:], stdin, stdout, stderr, getenv)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return app.ExitOK
	default:
		fmt.Fprintf(stderr, "bduf-demo: unknown command %q (run 'bduf-demo --help')\n", args[0])
		return app.ExitUsage
	}
}
