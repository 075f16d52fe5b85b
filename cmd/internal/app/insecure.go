package app

// BENCHMARK-ONLY serve options: --insecure-no-guard and --pprof. They exist so that
// cmd/mcpauth-load can measure what the guard costs (the same server with and without it) and
// where a server's time goes. Both refuse to start unless the HTTP listener is on a loopback
// address; neither is for production. Everything about them lives in this file, and Serve
// (cli.go) calls it at the three places marked "benchmark-only".

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"slices"
	"strings"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/call"
	"github.com/bduf/mcpauth/mcp"
)

// benchFlags are the serve command's benchmark-only options.
var benchFlags = []envVar{
	{"insecure-no-guard", "MCPAUTH_INSECURE_NO_GUARD", "BENCHMARK ONLY, INSECURE: true serves this program's own tools (not mcpauth's auth_* and admin tools) without the guard: no token, no permission check, no audit; refused unless --listen is a loopback address"},
	{"pprof", "MCPAUTH_PPROF", "BENCHMARK ONLY: true serves Go's profiler at /debug/pprof/ on the HTTP listener; refused unless --listen is a loopback address"},
}

// registerBenchFlags defines benchFlags on fs as booleans that may be given bare
// (--pprof) or with a value (--pprof=false); resolve reads them like any envVar.
func registerBenchFlags(fs *flag.FlagSet) map[string]*string {
	vals := make(map[string]*string, len(benchFlags))
	for _, v := range benchFlags {
		vals[v.flag] = new(string)
		fs.Var(boolText{vals[v.flag]}, v.flag, fmt.Sprintf("%s [$%s]", v.usage, v.env))
	}
	return vals
}

// boolText is a boolean flag kept as text, checked by parseBenchConfig.
type boolText struct{ p *string }

func (b boolText) String() string {
	if b.p == nil {
		return ""
	}
	return *b.p
}
func (b boolText) Set(s string) error { *b.p = s; return nil }
func (b boolText) IsBoolFlag() bool   { return true }

// benchConfig is what the benchmark-only options asked for.
type benchConfig struct {
	NoGuard bool // the program's own tools are served without the guard
	Pprof   bool // /debug/pprof/ on the HTTP listener
}

// parseBenchConfig checks the benchmark-only options: each is a boolean, needs the HTTP
// transport, and a listen address that is loopback (127.0.0.0/8, ::1 or localhost), so that
// an unguarded server or a profiler is never reachable from another machine. ownTools is
// whether the program has tools of its own (mcpauth has none to unguard).
func parseBenchConfig(vals map[string]string, transport, listen string, ownTools bool) (benchConfig, error) {
	var bc benchConfig
	for _, opt := range []struct {
		name string
		dst  *bool
	}{{"insecure-no-guard", &bc.NoGuard}, {"pprof", &bc.Pprof}} {
		switch v := vals[opt.name]; v {
		case "", "false":
		case "true":
			*opt.dst = true
		default:
			return bc, fmt.Errorf("--%s: want true or false, got %q", opt.name, v)
		}
		if !*opt.dst {
			continue
		}
		if transport == "stdio" {
			return bc, fmt.Errorf("--%s: only with --transport http", opt.name)
		}
		if !isLoopbackListen(listen) {
			return bc, fmt.Errorf("--%s: refused: --listen %q is not a loopback address (want 127.0.0.1:PORT, [::1]:PORT or localhost:PORT)", opt.name, listen)
		}
	}
	if bc.NoGuard && !ownTools {
		return bc, errors.New("--insecure-no-guard: this program has no tools of its own; mcpauth's tools are always guarded")
	}
	return bc, nil
}

// isLoopbackListen reports whether a listen address binds only to loopback. An empty host
// (":8080") binds every interface.
func isLoopbackListen(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkBoundLoopback is the same check on the address actually bound (a "localhost" that
// resolved elsewhere is refused too).
func (bc benchConfig) checkBoundLoopback(l net.Listener) error {
	if !bc.NoGuard && !bc.Pprof {
		return nil
	}
	if a, ok := l.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
		return nil
	}
	return fmt.Errorf("benchmark-only options refused: the listener %s is not on a loopback address", l.Addr())
}

// announce logs, loudly, what the benchmark-only options turned off or on.
func (bc benchConfig) announce(prog string, stderr io.Writer, logger *slog.Logger, own []server.ServerTool) {
	if bc.NoGuard {
		names := make([]string, 0, len(own))
		for _, t := range own {
			names = append(names, t.Tool.Name)
		}
		slices.Sort(names)
		fmt.Fprintf(stderr, "%s: *** INSECURE: --insecure-no-guard: %s are served WITHOUT authentication, authorization or audit. Benchmarking only. ***\n",
			prog, strings.Join(names, ", "))
		logger.Warn("INSECURE: the guard is off for this program's own tools (benchmark-only mode); mcpauth's tools stay guarded", "tools", names)
	}
	if bc.Pprof {
		logger.Warn("profiler served at /debug/pprof/ (benchmark-only mode)")
	}
}

// newServer is mcp.NewServer, except that with NoGuard the program's own tools skip the
// guard's middleware and filter (mcpauth's tools still pass through them).
func (bc benchConfig) newServer(name, version string, g *mcp.Guard, authTools, own []server.ServerTool) *server.MCPServer {
	if !bc.NoGuard {
		return mcp.NewServer(name, version, g, append(authTools, own...)...)
	}
	unguarded := make(map[string]bool, len(own))
	for _, t := range own {
		unguarded[t.Tool.Name] = true
	}
	guarded, filter := g.Middleware(), g.Filter()
	middleware := func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
		withGuard := guarded(next)
		return func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			if unguarded[req.Params.Name] {
				return next(ctx, req)
			}
			return withGuard(ctx, req)
		}
	}
	toolFilter := func(ctx context.Context, list []mcpgo.Tool) []mcpgo.Tool {
		var open, rest []mcpgo.Tool
		for _, t := range list {
			if unguarded[t.Name] {
				open = append(open, t)
			} else {
				rest = append(rest, t)
			}
		}
		if len(rest) == 0 { // a call of an unguarded tool (mcp-go filters the one tool called)
			return open
		}
		return append(open, filter(ctx, rest)...)
	}
	s := server.NewMCPServer(name, version,
		server.WithToolCapabilities(false),
		server.WithToolHandlerMiddleware(middleware),
		server.WithToolFilter(toolFilter),
		server.WithInstructions("INSECURE benchmark mode: this server's own tools need no credential. mcpauth's tools: call auth_login, then send 'Authorization: Bearer <token>'."),
	)
	s.AddTools(append(authTools, own...)...)
	return s
}

// handler wraps the HTTP handler of mcp.NewHTTP: with NoGuard, /mcp (streamable HTTP) is
// served without the HTTP guard (every other path, SSE included, keeps it); with Pprof,
// /debug/pprof/ is added.
func (bc benchConfig) handler(guarded http.Handler, s *server.MCPServer, logger *slog.Logger) http.Handler {
	if !bc.NoGuard && !bc.Pprof {
		return guarded
	}
	mux := http.NewServeMux()
	mux.Handle("/", guarded)
	if bc.NoGuard {
		mux.Handle("/mcp", server.NewStreamableHTTPServer(s,
			server.WithEndpointPath("/mcp"),
			server.WithHTTPContextFunc(mcp.HTTPContext(call.HTTP)),
			server.WithStreamableHTTPLogger(logger)))
	}
	if bc.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
