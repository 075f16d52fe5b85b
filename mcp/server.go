package mcp

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/call"
)

// ServerName is the name mcpauth reports in initialize.
const ServerName = "mcpauth"

// NewServer returns an MCP server whose every tool call passes through g: the middleware
// authorizes calls, the filter trims tools/list. Tools without a rule in g's policy are denied
// (and logged once here).
func NewServer(name, version string, g *Guard, tools ...server.ServerTool) *server.MCPServer {
	s := server.NewMCPServer(name, version,
		server.WithToolCapabilities(true), // over stdio the list follows the login (tools.toolsChanged)
		server.WithToolHandlerMiddleware(g.Middleware()),
		server.WithToolFilter(g.Filter()),
		server.WithInstructions("Authenticated with mcpauth. Call auth_login with email or username and password; "+
			"over HTTP send the access token as 'Authorization: Bearer <token>' on every request; over stdio the login binds this session."),
	)
	s.AddTools(tools...)
	g.CheckTools(s)
	return s
}

// ServeStdio serves MCP on in/out until in closes or ctx ends. envToken (MCPAUTH_TOKEN or
// MCPAUTH_API_KEY) is the credential of every call that has not logged in with auth_login.
func ServeStdio(ctx context.Context, s *server.MCPServer, in io.Reader, out io.Writer, envToken auth.Secret, logger *slog.Logger) error {
	stdio := server.NewStdioServer(s)
	stdio.SetErrorLogger(slog.NewLogLogger(logger.Handler(), slog.LevelError))
	req := &call.Request{Transport: call.Stdio, Bearer: envToken.Reveal(), BindSession: true}
	stdio.SetContextFunc(func(ctx context.Context) context.Context { return call.With(ctx, req) })
	err := stdio.Listen(ctx, in, out)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("stdio: %w", err)
	}
	return nil
}

// bearer extracts the token of an "Authorization: Bearer <token>" header ("" if absent).
func bearer(r *http.Request) auth.Secret {
	h := header(r.Header, headerAuthorization)
	scheme, tok, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return auth.Secret(strings.TrimSpace(tok))
}

// HTTPContext is the context function of an mcp-go HTTP transport (server.WithHTTPContextFunc,
// WithSSEContextFunc) naming transport: it gives a request the transport's facts (package call)
// unless the HTTP guard, before it, already has.
func HTTPContext(transport string) func(ctx context.Context, r *http.Request) context.Context {
	return func(ctx context.Context, r *http.Request) context.Context {
		if call.From(ctx) != nil {
			return ctx
		}
		return call.With(ctx, newRequest(r, transport))
	}
}

// withRequest gives the requests of next the transport's facts, as HTTPContext does for MCP's.
func withRequest(transport string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(call.With(r.Context(), newRequest(r, transport))))
		})
	}
}

// newRequest is what the transport knows of an HTTP request: its client address (behind
// trusted proxies, what the client-address resolver put in RemoteAddr), the client's
// X-Request-Id only if short and plain (otherwise one of the server's), and the bearer token.
func newRequest(r *http.Request, transport string) *call.Request {
	req := requestOf(r, transport)
	return &req
}

func requestOf(r *http.Request, transport string) call.Request {
	return call.Request{Transport: transport, ClientAddr: sourceAddr(r.RemoteAddr),
		RequestID: audit.RequestIDFrom(header(r.Header, headerRequestID)), Bearer: bearer(r).Reveal()}
}

// queryCredentialParams are query parameters that would carry a credential. Tokens in URLs end
// up in logs and Referer headers; the MCP authorization spec forbids them, so we refuse the
// request rather than ignore the parameter.
var queryCredentialParams = []string{"access_token", "token", "api_key", "refresh_token"}

func hasQueryCredential(r *http.Request) bool {
	if r.URL.RawQuery == "" { // the usual case: nothing to parse
		return false
	}
	q := r.URL.Query()
	for _, p := range queryCredentialParams {
		if q.Has(p) {
			return true
		}
	}
	return false
}

func refuseQueryCredential(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_request", error_description="credentials must be sent in the Authorization header, not the query string"`)
	writeRefusal(w, nil, http.StatusBadRequest, codeInvalidRequest,
		apierr.New(apierr.InvalidArgument, "credentials in the query string are not accepted; use the Authorization header"))
}

// HTTP is the HTTP side: streamable HTTP at /mcp, SSE at /sse (+ /message), /healthz, /readyz
// and the JWKS at /.well-known/jwks.json. Metrics are not on it (ServeMetrics: a listener of
// their own): their labels would tell a stranger which failed logins were for real accounts.
type HTTP struct {
	Handler                  http.Handler
	streamable               *server.StreamableHTTPServer
	sse                      *server.SSEServer
	readTimeout, idleTimeout time.Duration
	writeTimeout             time.Duration // each write's, on every connection Serve accepts (writeDeadlines)
	maxConnsPerAddress       int
	trusted                  ClientAddrs
}

// ReadyCheck is one dependency /readyz looks at.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// HTTPOptions are the operational endpoints beside MCP, and the limits of the listener.
type HTTPOptions struct {
	Ready []ReadyCheck // /readyz is 200 only when every check passes
	// AllowedOrigins are the browser origins (e.g. "https://app.example.com") that may call
	// /mcp, /sse and /message; a request with any other Origin is refused. Default: none.
	AllowedOrigins []string
	// ReadTimeout bounds reading a whole request, body included; IdleTimeout how long an idle
	// keep-alive connection is kept (defaults DefaultReadTimeout, DefaultIdleTimeout).
	ReadTimeout, IdleTimeout time.Duration
	// WriteTimeout bounds each write of a response or stream event on the connections Serve
	// accepts (default DefaultWriteTimeout; a Handler served otherwise has none of its own).
	WriteTimeout time.Duration
	// TrustedProxies are the proxies whose X-Forwarded-For (or Forwarded) names the client
	// (see ClientAddrs for the rule). Default: none, and those headers are ignored.
	TrustedProxies []netip.Prefix
	// Sessions bound the transport sessions; MaxConnsPerAddress the connections one client
	// address holds open (default DefaultMaxConnsPerAddress; negative: no cap). Trusted
	// proxies are not capped.
	Sessions           SessionLimits
	MaxConnsPerAddress int
	// Routes adds endpoints beside MCP (the authorization server's) to mux, each behind wrap,
	// which gives a request the transport's facts (package call: its client address, for the
	// per-address limits). Nil: none.
	Routes func(mux *http.ServeMux, wrap func(http.Handler) http.Handler)
}

// Listener limits. A request's headers are at most MaxHeaderBytes (net/http's default is 1 MiB,
// all of it read before anything is authenticated).
const (
	DefaultReadTimeout = 30 * time.Second
	DefaultIdleTimeout = 2 * time.Minute
	MaxHeaderBytes     = 64 << 10
)

// NewHTTP builds the HTTP handlers around s, each behind g.HTTP.
func NewHTTP(s *server.MCPServer, g *Guard, keys *token.KeySet, logger *slog.Logger, opts HTTPOptions) *HTTP {
	table := newSessions(opts.Sessions, SessionIdleTTL)
	streamable := server.NewStreamableHTTPServer(s,
		server.WithEndpointPath("/mcp"),
		server.WithHTTPContextFunc(HTTPContext(call.HTTP)),
		server.WithStreamableHTTPLogger(logger),
		server.WithSessionIdManager(table),
		// A client that goes away without DELETE must not leave its session's state behind
		// forever (mcp-go keeps none of it idle past this, and tells the table).
		server.WithSessionIdleTTL(SessionIdleTTL),
	)
	sse := server.NewSSEServer(s,
		server.WithSSEEndpoint("/sse"),
		server.WithMessageEndpoint("/message"),
		server.WithSSEContextFunc(HTTPContext(call.SSE)),
		server.WithSessionIDGenerator(table.sseSessionID),
		server.WithKeepAlive(true),
		sseCORS(),
	)
	mux := http.NewServeMux()
	// The MCP endpoints are registered under the methods their clients use as well as under
	// none (the same handler): ServeMux tries a request's method's patterns first, and a
	// failed walk through them costs an allocation and a few lookups on every call.
	handleMCP := func(path string, methods []string, h http.Handler) {
		for _, m := range methods {
			mux.Handle(m+" "+path, h)
		}
		mux.Handle(path, h)
	}
	handleMCP("/mcp", []string{http.MethodPost, http.MethodGet, http.MethodDelete},
		&endpoint{allowed: opts.AllowedOrigins, guard: g, transport: "http", sessions: table, next: streamable})
	handleMCP("/sse", []string{http.MethodGet}, &endpoint{allowed: opts.AllowedOrigins, guard: g, transport: "sse", next: table.sseStream(sse)})
	handleMCP("/message", []string{http.MethodPost}, &endpoint{allowed: opts.AllowedOrigins, guard: g, transport: "sse", next: table.sseMessages(sse)})
	mux.Handle(metadataPath, g.HTTP(http.NotFoundHandler())) // g.HTTP serves the metadata itself
	mux.Handle(metadataPath+"/", g.HTTP(http.NotFoundHandler()))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status, code := map[string]string{}, http.StatusOK
		for _, c := range opts.Ready {
			if err := c.Check(ctx); err != nil {
				// Unauthenticated endpoint: say what is down, log why (addresses stay private).
				logger.WarnContext(ctx, "not ready", "check", c.Name, "error", err)
				status[c.Name], code = "unavailable", http.StatusServiceUnavailable
			} else {
				status[c.Name] = "ok"
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": code == http.StatusOK, "checks": status})
	})
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_ = json.NewEncoder(w).Encode(keys.JWKS())
	})
	if opts.Routes != nil {
		opts.Routes(mux, withRequest(call.HTTP))
	}
	addrs := NewClientAddrs(opts.TrustedProxies)
	return &HTTP{Handler: addrs.Handler(mux),
		streamable: streamable, sse: sse, readTimeout: opts.ReadTimeout, idleTimeout: opts.IdleTimeout,
		writeTimeout:       cmp.Or(opts.WriteTimeout, DefaultWriteTimeout),
		maxConnsPerAddress: cmp.Or(opts.MaxConnsPerAddress, DefaultMaxConnsPerAddress), trusted: addrs}
}

// Serve accepts connections on l until ctx ends, then shuts down gracefully.
func (h *HTTP) Serve(ctx context.Context, l net.Listener, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h.Handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Reading a request, body included, is bounded; writing is bounded per write (an SSE
		// or streamable response is a stream that lives as long as its session).
		ReadTimeout:    cmp.Or(h.readTimeout, DefaultReadTimeout),
		IdleTimeout:    cmp.Or(h.idleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes: MaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:    func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() {
		errc <- srv.Serve(writeDeadlines(limitConns(l, h.maxConnsPerAddress, h.trusted.trusts), h.writeTimeout))
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h.sse.CloseSessions() // end long-lived streams so Shutdown can finish
	h.streamable.CloseSessions(shutdownCtx)
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

// ServeMetrics serves the Prometheus exposition at /metrics (and nothing else) on l until ctx
// ends: a listener apart from the public one, on loopback by default.
func ServeMetrics(ctx context.Context, l net.Listener, metrics http.Handler, logger *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: DefaultReadTimeout,
		IdleTimeout: DefaultIdleTimeout, MaxHeaderBytes: MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}
