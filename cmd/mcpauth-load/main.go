// Command mcpauth-load measures what the mcpauth guard costs a real MCP server. It starts two
// bduf-demo servers as child processes on loopback ports, one guarded and one with
// --insecure-no-guard, opens many streamable-HTTP MCP sessions on each (every session its own
// user and bearer token), and has every session call one tool in a loop, alternating the two
// servers round by round (A/B/A/B) so that drift cancels. It reports calls/s and latency
// percentiles per server and their ratio, and exits non-zero if any call failed or if the
// guarded server did not refuse an unauthenticated call (the comparison would not be real).
//
// It is a benchmark: it never targets anything but the servers it starts on 127.0.0.1, and it
// always stops them (SIGTERM, then SIGKILL; on Linux they also die with it).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

const usage = `mcpauth-load — how much the mcpauth guard costs a real MCP server.

Usage:
  mcpauth-load [flags]

Starts two bduf-demo servers on free loopback ports (each with its own data directory and
embedded store): one guarded, one with --insecure-no-guard. Opens --sessions MCP sessions on
each over streamable HTTP (each session its own user, logged in with auth_login, and its own
bearer token), then has every session call --tool in a loop: --warmup, then --duration measured,
per server, alternating guarded/unguarded for --rounds rounds. Prints a progress line on stderr
each second and the results (calls/s, p50/p95/p99 latency, errors, server CPU per call, the
guarded/unguarded ratio) on stdout. Exits 1 if any call failed.

Without --server-bin it builds ./cmd/bduf-demo with 'go build' (run it from the module).
With --rate the load is open-loop at that many calls/s in total, and latency counts from each
call's scheduled start (no coordinated omission); without it every session calls as fast as it
can (closed loop: mean latency = sessions / throughput).
`

// config is the command line.
type config struct {
	ServerBin          string
	Sessions           int
	Duration           time.Duration
	Warmup             time.Duration
	Rounds             int
	Tool               string
	Args               string
	Role               string
	Rate               float64
	AuditGrantedSample string
	BcryptCost         int
	GOMAXPROCS         int
	ServerGOMAXPROCS   int
	ProfileDir         string
	JSON               bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() { // a second Ctrl-C ends the process at once (children die with it on Linux)
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func parseConfig(args []string, stdout, stderr io.Writer) (config, int, bool) {
	var c config
	fs := flag.NewFlagSet("mcpauth-load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.ServerBin, "server-bin", "", "path of the bduf-demo binary (default: build ./cmd/bduf-demo into a temporary directory with 'go build')")
	fs.IntVar(&c.Sessions, "sessions", 64, "concurrent MCP sessions per server, each with its own user and token")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time per server per round")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured load before each measured phase")
	fs.IntVar(&c.Rounds, "rounds", 2, "rounds; each measures the guarded server, then the unguarded one")
	fs.StringVar(&c.Tool, "tool", "projects_list", "the tool every session calls")
	fs.StringVar(&c.Args, "args", "{}", "the tool's arguments, a JSON object")
	fs.StringVar(&c.Role, "role", "viewer", "the role of the load users (it must allow --tool)")
	fs.Float64Var(&c.Rate, "rate", 0, "open loop: total calls/s per server, spread over the sessions (0: closed loop, as fast as possible)")
	fs.StringVar(&c.AuditGrantedSample, "audit-granted-sample", "", "passed to both servers as --audit-granted-sample, 0-1 (default: the server's, 1)")
	fs.IntVar(&c.BcryptCost, "bcrypt-cost", 0, "servers' bcrypt cost; lower only to speed up creating the users (0: the server's default, 10)")
	fs.IntVar(&c.GOMAXPROCS, "gomaxprocs", 1, "this process's GOMAXPROCS: the client shares the machine with the servers (0: Go's default)")
	fs.IntVar(&c.ServerGOMAXPROCS, "server-gomaxprocs", 0, "the servers' GOMAXPROCS (0: Go's default)")
	fs.StringVar(&c.ProfileDir, "server-pprof", "", "directory: after the rounds, one more phase per server while taking its CPU profile (--pprof) into DIR/{guarded,unguarded}.cpu.pprof, then its allocations since start into DIR/{guarded,unguarded}.allocs.pprof")
	fs.BoolVar(&c.JSON, "json", false, "print the results as JSON instead of a table")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage, "\nFlags:\n")
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return c, 0, true
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err == nil {
		err = c.check()
	}
	if err != nil {
		fmt.Fprintf(stderr, "mcpauth-load: %v (run 'mcpauth-load --help')\n", err)
		return c, 2, true
	}
	return c, 0, false
}

func (c config) check() error {
	var args map[string]any
	switch {
	case c.Sessions < 1 || c.Sessions > 10000:
		return fmt.Errorf("--sessions: want 1 to 10000, got %d", c.Sessions)
	case c.Duration < 100*time.Millisecond:
		return fmt.Errorf("--duration: want at least 100ms, got %s", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("--warmup: want a duration >= 0, got %s", c.Warmup)
	case c.Rounds < 1:
		return fmt.Errorf("--rounds: want at least 1, got %d", c.Rounds)
	case c.Tool == "":
		return errors.New("--tool: required")
	case json.Unmarshal([]byte(c.Args), &args) != nil || args == nil:
		return fmt.Errorf("--args: want a JSON object, got %q", c.Args)
	case c.Rate < 0:
		return fmt.Errorf("--rate: want calls/s >= 0, got %g", c.Rate)
	case c.BcryptCost != 0 && (c.BcryptCost < 4 || c.BcryptCost > 31):
		return fmt.Errorf("--bcrypt-cost: want 4 to 31, got %d", c.BcryptCost)
	case c.GOMAXPROCS < 0 || c.ServerGOMAXPROCS < 0:
		return errors.New("--gomaxprocs, --server-gomaxprocs: want >= 0")
	}
	return nil
}

// run is the command; ctx ends it early (Ctrl-C), and the servers are stopped on every path.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, code, stop := parseConfig(args, stdout, stderr)
	if stop {
		return code
	}
	prog := newProgress(&lockedWriter{w: stderr}, isTerminal(stderr))
	stderr = prog.w // the progress line and the log share it
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if c.GOMAXPROCS > 0 {
		runtime.GOMAXPROCS(c.GOMAXPROCS)
	}
	rep, err := benchmark(ctx, c, logger, prog)
	if rep != nil {
		if c.JSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			rep.writeTable(stdout)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "mcpauth-load: %s\n", strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 1
	}
	if problems := rep.problems(); len(problems) > 0 {
		fmt.Fprintf(stderr, "mcpauth-load: FAILED: %s\n", strings.Join(problems, "; "))
		return 1
	}
	return 0
}

// benchmark starts the servers, prepares the sessions, runs the rounds and returns the report
// (also a partial one, with an error, when interrupted).
func benchmark(ctx context.Context, c config, logger *slog.Logger, prog *progress) (*report, error) {
	tmp, err := os.MkdirTemp("", "mcpauth-load-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	bin := c.ServerBin
	if bin == "" {
		logger.Info("building bduf-demo", "into", tmp)
		if bin, err = buildServer(ctx, tmp); err != nil {
			return nil, err
		}
	}
	settings := serverSettings{bin: bin, root: tmp, rateLimits: loadRateLimits, auditSample: c.AuditGrantedSample,
		bcryptCost: c.BcryptCost, gomaxprocs: c.ServerGOMAXPROCS, pprof: c.ProfileDir != ""}
	servers := make([]*target, 0, 2)
	defer func() {
		for _, t := range servers {
			if t.client != nil {
				t.client.close()
			}
			t.srv.stop(logger)
		}
	}()
	for _, mode := range []string{modeGuarded, modeUnguarded} {
		srv, err := startServer(ctx, settings, mode, logger)
		if err != nil {
			return nil, err
		}
		servers = append(servers, &target{mode: mode, srv: srv})
	}
	for _, t := range servers {
		logger.Info("preparing sessions", "server", t.mode, "sessions", c.Sessions, "url", t.srv.url)
		if err := t.prepare(ctx, c); err != nil {
			return nil, fmt.Errorf("%s server: %w%s", t.mode, err, t.srv.tail())
		}
	}

	rep := newReport(c, settings)
	for round := 1; round <= c.Rounds; round++ {
		for _, t := range servers {
			if err := ctx.Err(); err != nil {
				return rep, fmt.Errorf("interrupted: %w", err)
			}
			label := fmt.Sprintf("%s round %d/%d", t.mode, round, c.Rounds)
			if c.Warmup > 0 {
				t.runPhase(ctx, c, c.Warmup, prog, label+" warmup", false)
			}
			res := t.runPhase(ctx, c, c.Duration, prog, label, true)
			rep.add(t.mode, round, res)
		}
	}
	if c.ProfileDir != "" {
		for _, t := range servers {
			if err := ctx.Err(); err != nil {
				return rep, fmt.Errorf("interrupted: %w", err)
			}
			path, err := t.profilePhase(ctx, c, prog)
			if err != nil {
				return rep, fmt.Errorf("%s server profile: %w", t.mode, err)
			}
			rep.Profiles = append(rep.Profiles, path)
		}
	}
	rep.finish(servers)
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("interrupted: %w", err)
	}
	return rep, nil
}

// lockedWriter serializes writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
