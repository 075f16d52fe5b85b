package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/call"
	"github.com/bduf/mcpauth/internal/tally"
	"github.com/bduf/mcpauth/internal/tracing"
	"github.com/bduf/mcpauth/rbac"
)

// Authenticator is what the guard needs of auth.
type Authenticator interface {
	Validate(ctx context.Context, token auth.Secret) (token.Claims, error)
	Caller(ctx context.Context, token auth.Secret) (auth.User, token.Claims, error)
}

// Authorizer is what the guard needs of rbac: the effective-permission rule (the credential's
// scopes ∩ the subject's live grants, conditions evaluated for the request).
type Authorizer interface {
	Decide(ctx context.Context, c rbac.Credential, r rbac.Request) rbac.Decision
}

// GuardConfig configures a Guard.
type GuardConfig struct {
	Auth   Authenticator
	Authz  Authorizer
	Policy Policy
	// Credentials returns a call's credential and how it was presented. Default:
	// BearerCredential, the one the transport carried. mcpauth passes its tool set's, which
	// also knows stdio logins.
	Credentials func(ctx context.Context) (auth.Secret, string)
	// ResourceURI is this server's resource identifier (the tokens' audience), published in
	// the protected-resource metadata.
	ResourceURI string
	// AuthorizationServers are the issuers whose tokens are accepted (RFC 9728).
	AuthorizationServers []string
	// ScopesSupported are the scopes the protected-resource metadata lists: the minimal set a
	// client asks for first, more by step-up (403 insufficient_scope names them). Nil: every
	// permission of the policy.
	ScopesSupported []string
	Logger          *slog.Logger
	// Audit receives one decision event per guarded call: denials and errors always, grants
	// sampled at GrantedSampleRate (0: none, 1: all). Nil: no events.
	Audit             audit.Recorder
	GrantedSampleRate float64
	// Limiter and CallLimit bound the guarded calls of each identity (nil: no limit).
	Limiter   throttle.Limiter
	CallLimit throttle.Limit
}

// Guard authenticates and authorizes every tool call of an mcp-go server:
//
//	g, _ := mcp.NewGuard(cfg)
//	s := server.NewMCPServer(name, version,
//		server.WithToolHandlerMiddleware(g.Middleware()),
//		server.WithToolFilter(g.Filter()))
//	http.Handle("/mcp", g.HTTP(server.NewStreamableHTTPServer(s)))
//
// It fails closed: a tool without a rule, an error or a panic is a deny.
type Guard struct {
	cfg      GuardConfig
	log      *slog.Logger
	verified verifiedCaller // cfg.Auth's, if it has one
	// names are the usual methods and the policy's tool names, which a peek takes without a
	// copy.
	names map[string]string
	// tools caches how many tools the server it last counted has (ListTools copies the
	// server's map: too dear for every call), refreshed at most every toolCountTTL. One entry:
	// a guard serves one server (several would only count more often), and a pointer compare
	// is cheaper than hashing the server into a map on every call.
	tools atomic.Pointer[toolCount]
}

type toolCount struct {
	s  *server.MCPServer
	n  int
	at time.Time
}

// toolCountTTL bounds how long a tool added to or removed from a running server can go
// unnoticed by the call-time filter check.
const toolCountTTL = time.Second

func (g *Guard) toolCount(s *server.MCPServer) int {
	if c := g.tools.Load(); c != nil && c.s == s && time.Since(c.at) < toolCountTTL { // one monotonic clock read
		return c.n
	}
	n := len(s.ListTools())
	g.tools.Store(&toolCount{s: s, n: n, at: time.Now()})
	return n
}

// NewGuard checks the policy and returns a Guard.
func NewGuard(cfg GuardConfig) (*Guard, error) {
	if cfg.Auth == nil || cfg.Authz == nil {
		return nil, errors.New("guard: Auth and Authz are required")
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if cfg.Credentials == nil {
		cfg.Credentials = BearerCredential
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Guard{cfg: cfg, log: cfg.Logger, names: maps.Clone(methodNames)}
	for name := range cfg.Policy.Tools {
		g.names[name] = name
	}
	g.verified, _ = cfg.Auth.(verifiedCaller)
	return g, nil
}

// CheckTools logs, once, every tool of s that has no rule: those are denied to everyone.
func (g *Guard) CheckTools(s *server.MCPServer) []string {
	var unmapped []string
	for name := range s.ListTools() {
		if _, ok := g.cfg.Policy.Tools[name]; !ok {
			unmapped = append(unmapped, name)
		}
	}
	sort.Strings(unmapped)
	for _, name := range unmapped {
		g.log.Warn("tool has no authorization rule: every call is denied", "tool", name)
	}
	// Resources and prompts are decided by the HTTP guard alone (Policy.Methods): say so.
	for _, c := range []struct {
		n      int
		method string
	}{{len(s.ListResources()), "resources/read"}, {len(s.ListPrompts()), "prompts/get"}} {
		if c.n == 0 {
			continue
		}
		if _, ok := g.cfg.Policy.Methods[c.method]; !ok {
			g.log.Warn("the server registers what the policy has no rule for: refused over HTTP", "method", c.method, "count", c.n)
		}
		g.log.Warn("over stdio the guard sees tool calls only: these are not authorized there", "method", c.method, "count", c.n)
	}
	return unmapped
}

// Identity is who a guarded call runs as, and the decision that let it through: the one value
// the guard adds to a call's context, beside the transport's (package call).
type Identity struct {
	UserID    string
	OrgID     string // the organization the call acts in: its token's, else its user's
	SessionID string
	Scopes    []string
	// AuthMethod is how the credential came: "bearer" (HTTP), "env_token" (stdio's
	// MCPAUTH_TOKEN), "session_login" (a stdio auth_login), "api_key".
	AuthMethod string
	Decision   rbac.Decision
	// User and Claims are the records the identity was read from, for handlers that act on
	// them (mcpauth's own tools).
	User   auth.User
	Claims token.Claims
}

// Credential is the identity's authority for rbac's effective-permission rule: its user,
// narrowed to its token's scopes or its API key's permissions.
func (id *Identity) Credential() rbac.Credential {
	return rbac.Credential{Subject: id.UserID, Scopes: id.Scopes}
}

type identityKey struct{}

// IdentityFrom returns the identity the guard put in a wrapped handler's context. ok is false
// for a public tool called anonymously.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	if id, ok := ctx.Value(identityKey{}).(*Identity); ok {
		return *id, true
	}
	return Identity{}, false
}

// BearerCredential is the credential the transport carried (package call): the HTTP bearer
// token, or over stdio MCPAUTH_TOKEN. It knows nothing of stdio logins (tools.Set.Credential
// does).
func BearerCredential(ctx context.Context) (auth.Secret, string) {
	return RequestCredential(call.From(ctx))
}

// RequestCredential is BearerCredential for the transport's request r, looked up already
// (nil: none).
func RequestCredential(r *call.Request) (auth.Secret, string) {
	switch {
	case r == nil || r.Bearer == "":
		return "", ""
	case r.Transport == call.Stdio:
		return auth.Secret(r.Bearer), "env_token"
	default:
		return auth.Secret(r.Bearer), "bearer"
	}
}

// AuditRequest is what the audit trail keeps of the call ctx belongs to: the transport's facts
// and, once the guard has decided, the caller (audit.WriterConfig.Request).
func AuditRequest(ctx context.Context) audit.Request {
	var r audit.Request
	if req := call.From(ctx); req != nil {
		r = audit.Request{ClientAddr: req.Addr(), Transport: req.Transport, RequestID: req.RequestID}
	}
	if id, ok := ctx.Value(identityKey{}).(*Identity); ok {
		r.Actor, r.SessionID = id.UserID, id.SessionID
	}
	return r
}

var (
	errUnmapped    = apierr.New(apierr.PermissionDenied, "this tool has no authorization rule")
	errSystemError = apierr.New(apierr.PermissionDenied, rbac.ReasonSystemError)
)

// caller is the outcome of authenticating a call once: the identity, or why there is none.
type caller struct {
	id     *Identity  // filled in when err is nil
	addr   netip.Addr // the transport's client address, when err is nil
	err    error      // nil: authenticated
	absent bool       // no credential at all
}

// identityContext is a granted call's context carrying its Identity: one allocation for the
// context node and the identity it hands out (the guard's largest per-call values), or none
// when the HTTP guard made room for it (callSlot).
type identityContext struct {
	context.Context
	id Identity
}

func (c *identityContext) Value(key any) any {
	if key == (identityKey{}) {
		return &c.id
	}
	return c.Context.Value(key)
}

// verifiedCaller is what an Authenticator may offer so that a token the HTTP guard validated
// is not validated again by the middleware in the same request (auth.Service does).
type verifiedCaller interface {
	VerifiedCaller(ctx context.Context, c *token.Claims) (auth.User, error)
}

// expiredSubjecter is what an Authenticator may offer so that a request with an expired token
// stays in its user's transport session (auth.Service does).
type expiredSubjecter interface {
	ExpiredSubject(ctx context.Context, token auth.Secret) string
}

// verifiedKey marks a request context the HTTP guard has looked at (a *guardedRequest).
type verifiedKey struct{}

// guardedRequest is what the HTTP guard learnt about a request, for the handlers after it.
type guardedRequest struct {
	token    auth.Secret
	claims   token.Claims // what Validate returned: meaningful only when verified
	verified bool
	// principal is the user the request speaks for, to bind transport sessions: the verified
	// token's subject, or an expired token's (its signature is ours, so its holder was that
	// user, and may refresh within the session: expiredSubjecter); "" for anyone else.
	principal string
	// initialize: the body holds an initialize request (which opens a streamable session);
	// listen: a 2026-07-28 subscriptions/listen (a stream that lasts, bounded like a session).
	initialize, listen bool
	modern             bool       // sent under the 2026-07-28 protocol (modernProtocol)
	body               []byte     // a POST's body, for the id a later refusal echoes
	addr               netip.Addr // the transport's client address (clientAddr)
	// slot is room for the context of the request's tool call (callContext).
	slot *callSlot
}

// clientAddr is the transport's client address (call.ClientAddr): the HTTP guard's copy when
// it saw the request, which spares a walk up the MCP server's contexts on every call.
func (v *guardedRequest) clientAddr(ctx context.Context) netip.Addr {
	if v != nil {
		return v.addr
	}
	return call.ClientAddr(ctx)
}

// callSlot is room, in the HTTP guard's allocation, for the context the middleware gives a
// tool call's handler. A POST carries one message (mcp-go parses no batch), so one call takes
// it; should a request ever carry more, the first decision takes it and the others get their
// own. Only its taker writes it, and only its taker's handler sees it: it is never a parent of
// the request's context, so no other call's context reaches its identity.
type callSlot struct {
	taken atomic.Bool
	ctx   identityContext
}

// callContext returns a context for one tool call, parented by ctx, whose identity the caller
// fills in: the request's slot when it is free, otherwise a new one.
func (v *guardedRequest) callContext(ctx context.Context) *identityContext {
	if v != nil && v.slot != nil && v.slot.taken.CompareAndSwap(false, true) {
		v.slot.ctx.Context = ctx
		return &v.slot.ctx
	}
	return &identityContext{Context: ctx}
}

// guardedCall is what the HTTP guard hands on with a request, in one allocation: the
// transport's request (call.From), what the guard learnt (guardedFrom), the body it read,
// room for one message's peeked names, and room for its tool call's context (callSlot). Until the guard is done only the Node is a context (a
// refusal's handlers see no guardedRequest), then the whole.
type guardedCall struct {
	call.Node
	guarded        guardedRequest
	body           bodyReader
	methods, calls [1]string
	slot           callSlot
}

// Value answers guardedFrom with the guard's findings, and anything else as the Node does.
func (c *guardedCall) Value(k any) any {
	if _, ok := k.(verifiedKey); ok {
		return &c.guarded
	}
	return c.Node.Value(k)
}

// guardedFrom returns what the HTTP guard left in ctx (nil when no guard saw the request).
func guardedFrom(ctx context.Context) *guardedRequest {
	v, _ := ctx.Value(verifiedKey{}).(*guardedRequest)
	return v
}

// authenticate resolves the call's credential into an identity, written to id. v is what the
// HTTP guard left in ctx (guardedFrom), looked up once by the caller.
func (g *Guard) authenticate(ctx context.Context, v *guardedRequest, id *Identity) caller {
	tok, method := g.cfg.Credentials(ctx)
	if tok == "" {
		return caller{absent: true, err: auth.ErrUnauthenticated}
	}
	// Written into id as they are read: the records are large, and this runs on every call
	// under the MCP server's deep stack, where copies in this frame would make it deeper.
	*id = Identity{}
	var err error
	if v != nil && v.verified && v.token == tok && g.verified != nil {
		id.Claims = v.claims
		id.User, err = g.verified.VerifiedCaller(ctx, &id.Claims)
	} else {
		err = g.callerInto(ctx, tok, id)
	}
	if err != nil {
		*id = Identity{}
		return caller{err: err}
	}
	if id.Claims.APIKeyID != "" {
		method = "api_key"
	}
	id.UserID, id.OrgID, id.SessionID = id.User.ID, orgOf(id.User.OrgID, id.Claims.OrgID), id.Claims.SessionID
	id.Scopes, id.AuthMethod = id.Claims.Scopes, method
	return caller{id: id, addr: v.clientAddr(ctx)}
}

// callerInto is Authenticator.Caller written into id, in a frame of its own (see authenticate).
//
//go:noinline
func (g *Guard) callerInto(ctx context.Context, tok auth.Secret, id *Identity) (err error) {
	id.User, id.Claims, err = g.cfg.Auth.Caller(ctx, tok)
	return err
}

// decide authorizes one call of tool. On success it returns the context for the handler; it
// also returns the caller, so that a denial's audit event can say whom it denied.
func (g *Guard) decide(ctx context.Context, tool string) (context.Context, caller, error) {
	v := guardedFrom(ctx)
	callCtx := v.callContext(ctx)
	c := g.authenticate(ctx, v, &callCtx.id)
	if err := g.check(ctx, tool, c, true); err != nil {
		return nil, c, err
	}
	if c.err != nil { // a public tool called without a valid credential: no identity
		return ctx, c, nil
	}
	return callCtx, c, nil
}

// check applies tool's rule to an authenticated (or not) caller; a call (not a listing) also
// counts against the identity's rate limit. The decision is written to the caller's identity.
func (g *Guard) check(ctx context.Context, tool string, c caller, isCall bool) error {
	rule, ok := g.cfg.Policy.Tools[tool]
	if !ok {
		return errUnmapped.With("tool", tool)
	}
	if c.err != nil {
		if rule.Public { // a stale token does not stop anyone from logging in again
			return nil
		}
		return c.err
	}
	id := c.id
	if isCall && g.cfg.Limiter != nil {
		d, err := g.cfg.Limiter.Allow(ctx, "calls:"+id.UserID, g.cfg.CallLimit)
		if err != nil {
			return apierr.New(apierr.Internal, "rate limiter unavailable ("+g.cfg.Limiter.Name()+")").Wrap(err)
		}
		if !d.Allowed {
			return auth.RateLimited(d.RetryAfter)
		}
	}
	if !rule.Public && !rule.Authenticated {
		d, err := g.authorize(ctx, rule, id, c.addr)
		if err != nil {
			return err
		}
		id.Decision = d
	}
	return nil
}

// orgOf is the organization a call acts in: its token's, else its user's.
func orgOf(userOrg, tokenOrg string) string {
	if tokenOrg != "" {
		return tokenOrg
	}
	return userOrg
}

// authorize grants the call if the credential may do any permission of the rule (rbac's
// effective-permission rule: a token may be narrower than its user, never wider).
func (g *Guard) authorize(ctx context.Context, rule Rule, id *Identity, ip netip.Addr) (rbac.Decision, error) {
	var last rbac.Decision
	cred := id.Credential()
	for _, perm := range rule.AnyOf {
		res, act, _ := strings.Cut(perm, ":")
		d := g.cfg.Authz.Decide(ctx, cred, rbac.Request{Resource: res, Action: act, OrgID: id.OrgID,
			Attributes: rbac.Attributes{SourceIP: ip}})
		if d.Allowed {
			return d, nil
		}
		last = d
		if d.Reason == rbac.ReasonSystemError {
			return d, errSystemError
		}
	}
	return last, apierr.New(apierr.PermissionDenied, "permission denied: "+last.Reason).
		With("required_permissions", rule.AnyOf)
}

func scopesAllow(scopes []string, perm string) bool {
	res, act, _ := strings.Cut(perm, ":")
	return rbac.ScopesAllow(scopes, res, act)
}

// Middleware is the tool-handler middleware (server.WithToolHandlerMiddleware): a denied call
// gets an isError result and never reaches the wrapped handler.
func (g *Guard) Middleware() server.ToolHandlerMiddleware {
	return func(next server.ToolHandlerFunc) server.ToolHandlerFunc {
		return func(ctx context.Context, req mcpgo.CallToolRequest) (res *mcpgo.CallToolResult, err error) {
			defer g.recoverCall(ctx, req.Params.Name, &res, &err)
			callCtx, derr := g.decideCall(ctx, req.Params.Name)
			if derr != nil {
				return ErrorResult(derr), nil
			}
			return next(callCtx, req) // decideCall has returned: its frame is not under the handler's
		}
	}
}

// recoverCall, deferred by the middleware, turns a panic of the guard or the handler into a
// denial (system_error) instead of a crashed server.
func (g *Guard) recoverCall(ctx context.Context, tool string, res **mcpgo.CallToolResult, err *error) {
	if r := recover(); r != nil {
		g.log.ErrorContext(ctx, "guard panicked: call denied", "tool", tool, "panic", fmt.Sprint(r))
		*res, *err = ErrorResult(errSystemError), nil
	}
}

// decideCall is the middleware's decision on one call of tool, measured, traced, recorded and
// (an internal error) logged: the context for its handler, or why it is denied.
func (g *Guard) decideCall(ctx context.Context, tool string) (context.Context, error) {
	watch := tally.Start()
	spanCtx, span := ctx, trace.Span(noop.Span{})
	if tracing.On() {
		spanCtx, span = tracer.Start(ctx, "guard.Decide", trace.WithAttributes(attribute.String("tool", tool)))
	}
	callCtx, who, derr := g.decide(spanCtx, tool)
	outcome := "granted"
	if derr != nil {
		outcome = string(apierr.CodeOf(derr))
	}
	decisions.Add(outcome)
	decisionDuration.Record(outcome, watch.Elapsed().Seconds())
	if span.IsRecording() {
		span.SetAttributes(attribute.Bool("allowed", derr == nil))
	}
	span.End()
	g.recordDecision(callCtx, ctx, tool, who, derr)
	if derr != nil && apierr.CodeOf(derr) == apierr.Internal {
		g.log.ErrorContext(ctx, "guard error: call denied", "tool", tool, "error", derr)
	}
	return callCtx, derr
}

// recordDecision writes the call's decision event: denials and errors always, grants sampled.
// A denial of an authenticated caller names the caller (subject and actor).
func (g *Guard) recordDecision(callCtx, ctx context.Context, tool string, who caller, derr error) {
	if g.cfg.Audit == nil {
		return
	}
	if derr == nil && (g.cfg.GrantedSampleRate <= 0 || (g.cfg.GrantedSampleRate < 1 && rand.Float64() >= g.cfg.GrantedSampleRate)) {
		return // a grant not sampled: nothing to build
	}
	e := audit.Event{Type: audit.AuthzGranted, Details: map[string]any{"tool": tool}}
	if derr == nil {
		ctx = callCtx
		if id, ok := IdentityFrom(callCtx); ok {
			e.Subject, e.OrgID, e.SessionID = id.UserID, id.OrgID, id.SessionID
			e.Details["required_permissions"] = id.Decision.Required
			e.Details["reason"] = id.Decision.Reason
		}
	} else {
		ae := apierr.From(derr)
		e.Type, e.Severity = audit.AuthzDenied, audit.Warning
		if who.err == nil {
			e.Subject, e.Actor, e.OrgID, e.SessionID = who.id.UserID, who.id.UserID, who.id.OrgID, who.id.SessionID
		}
		if ae.Code == apierr.Internal || ae.Message == rbac.ReasonSystemError {
			e.Type, e.Severity = audit.AuthzError, audit.Critical
		}
		e.Details["code"], e.Details["reason"] = string(ae.Code), ae.Message
		if req, ok := ae.Details["required_permissions"]; ok {
			e.Details["required_permissions"] = req
		}
	}
	if err := g.cfg.Audit.Record(ctx, e); err != nil {
		g.log.ErrorContext(ctx, "audit event not recorded", "type", e.Type, "error", err)
	}
}

// ErrMissingToken is the refusal of a guarded request that carries no credential.
var ErrMissingToken = apierr.New(apierr.Unauthenticated, "a bearer token is required")

// recordRefusal writes the decision events of tool calls the HTTP guard refused before the
// middleware could see them (401, 403): one per call in the request, as the middleware would
// have written, naming the caller when the token was valid. A request that calls no tool (a
// GET of the stream, a non-call method) is a transport matter, not a decision: nothing is
// recorded. Anyone can be refused without a valid credential (401), so those refusals are
// recorded only within the Limiter's CallLimit per client address ("refused:addr:"; a limiter
// error records); a refused authenticated caller (403) is always recorded.
func (g *Guard) recordRefusal(ctx context.Context, calls []string, c token.Claims, cause error) {
	for _, tool := range calls {
		if c.Subject == "" && !g.refusalRecordAllowed(ctx) {
			return // past the address's limit: the rest of the request's calls are not recorded either
		}
		who := caller{err: cause}
		if c.Subject != "" {
			who = caller{id: &Identity{UserID: c.Subject, OrgID: c.OrgID, SessionID: c.SessionID}}
		}
		derr := cause
		if rule, ok := g.cfg.Policy.Tools[tool]; ok && len(rule.AnyOf) > 0 && apierr.CodeOf(cause) != apierr.PermissionDenied {
			derr = apierr.From(cause).With("required_permissions", rule.AnyOf)
		}
		g.recordDecision(ctx, ctx, tool, who, derr)
	}
}

// refusalRecordAllowed consumes one event of the client address's limit for recording refusals
// of callers without a valid credential. No limiter, or a limiter error: record (keep the trail).
func (g *Guard) refusalRecordAllowed(ctx context.Context) bool {
	if g.cfg.Limiter == nil || g.cfg.Audit == nil {
		return true
	}
	d, err := g.cfg.Limiter.Allow(ctx, "refused:addr:"+call.From(ctx).Addr(), g.cfg.CallLimit)
	if err != nil {
		g.log.WarnContext(ctx, "rate limiter unavailable: refusal recorded without limit", "limiter", g.cfg.Limiter.Name(), "error", err)
		return true
	}
	return d.Allowed
}

// Filter is the tool filter (server.WithToolFilter): tools/list shows a caller only the tools
// it may call. At call time mcp-go passes the one tool called; the filter lets it through so
// the middleware answers a denial with PERMISSION_DENIED rather than "tool not found". (On a
// server with a single tool the two cannot be told apart, and that tool is filtered as a list.)
func (g *Guard) Filter() server.ToolFilterFunc {
	return func(ctx context.Context, list []mcpgo.Tool) (out []mcpgo.Tool) {
		defer func() {
			if r := recover(); r != nil {
				g.log.ErrorContext(ctx, "guard filter panicked: showing nothing", "panic", fmt.Sprint(r))
				out = nil
			}
		}()
		if len(list) == 1 {
			if s := server.ServerFromContext(ctx); s != nil && g.toolCount(s) > 1 {
				return list
			}
		}
		var id Identity
		c := g.authenticate(ctx, guardedFrom(ctx), &id) // once for the whole list
		if c.err == nil && c.id.Claims.ClientID != "" && c.id.Claims.ClientID != token.ClientID {
			// A token of an OAuth client lists what its user may do, not only what it was
			// granted: a call beyond its scopes answers 403 insufficient_scope with the scope
			// to ask for (step-up), which a client never tries for a tool it cannot see.
			stepUp := *c.id
			stepUp.Scopes = allScopes
			c.id = &stepUp
		}
		out = make([]mcpgo.Tool, 0, len(list))
		for _, t := range list {
			if err := g.check(ctx, t.Name, c, false); err == nil {
				out = append(out, t)
			}
		}
		return out
	}
}

// allScopes is a credential narrowed by nothing: its user's live grants decide.
var allScopes = []string{"*"}

// Body caps of the HTTP guard: a request with a valid credential may send up to maxBody; one
// without (anonymous initialize, tools/list, public tools, or a credential that failed) at most
// maxAnonymousBody, so a stranger cannot make the server hold megabytes per request (a whole
// initialize, clientInfo included, fits many times over).
const (
	maxBody           = 8 << 20
	maxAnonymousBody  = 64 << 10
	maxInitializeBody = 16 << 10
)

// HTTP guards the HTTP transports (streamable HTTP and SSE): bearer tokens from the
// Authorization header only, 401 with a WWW-Authenticate challenge pointing at the
// protected-resource metadata (RFC 9728, which it also serves), and 403 insufficient_scope
// for a tools/call whose tool needs a scope the token lacks.
func (g *Guard) HTTP(next http.Handler) http.Handler {
	return &guardHandler{g: g, transport: "http", next: next}
}

// guardHandler is Guard.HTTP: a type, not an http.HandlerFunc, whose frame would be one more
// above the MCP server (see endpoint).
type guardHandler struct {
	g         *Guard
	transport string
	next      http.Handler
}

func (h *guardHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// admit's frame is large and the MCP server under next is deep: admit returns before
	// next runs, so that a call's stack stays within the size its goroutine already has
	// (a deeper stack is copied anew after every GC has shrunk it).
	if gc := h.g.admit(w, r, h.transport); gc != nil {
		h.next.ServeHTTP(w, r.WithContext(gc))
	}
}

// admit is the HTTP guard's decision on one request: the context to serve it with, or nil
// when it has answered the request itself (a refusal, the metadata document).
func (g *Guard) admit(w http.ResponseWriter, r *http.Request, transport string) *guardedCall {
	if isMetadataPath(r.URL.Path) {
		g.serveMetadata(w, r)
		return nil
	}
	if hasQueryCredential(r) {
		refuseQueryCredential(w)
		return nil
	}
	gc := &guardedCall{Node: call.Node{Context: r.Context()}}
	if req := call.From(r.Context()); req != nil {
		gc.Request = *req
	} else {
		gc.Request = requestOf(r, transport)
	}
	ctx := context.Context(&gc.Node)
	ip := gc.Request.ClientAddr
	tok := auth.Secret(gc.Request.Bearer) // the transport's reading of the Authorization header (newRequest)
	// The credential first: how much body is read depends on it.
	claims, authErr := token.Claims{}, error(ErrMissingToken)
	if tok != "" {
		claims, authErr = g.cfg.Auth.Validate(ctx, tok)
	}
	// Without a token, a GET or DELETE (the stream itself) passes wherever anything does;
	// the session table then knows whose stream it is.
	passAnonymous := tok == "" && len(g.cfg.Policy.AnonymousMethods) > 0
	var body, methods, calls = []byte(nil), []string(nil), []string(nil)
	initialize, listen, modern := false, false, modernProtocol(r)
	if r.Method == http.MethodPost {
		limit := int64(maxAnonymousBody)
		if authErr == nil {
			limit = maxBody
		}
		var err error
		body, err = readBody(r, limit)
		if err != nil || int64(len(body)) > limit {
			msg := "a request is at most 8 MiB"
			if authErr != nil {
				msg = "a request without a valid credential is at most 64 KiB"
			}
			writeRefusal(w, nil, http.StatusRequestEntityTooLarge, codeInvalidRequest, apierr.New(apierr.InvalidArgument, msg+" (or its body could not be read)"))
			return nil
		}
		gc.body.Reset(body)
		r.Body = &gc.body
		methods, calls = peekInto(body, g.names, gc.methods[:0], gc.calls[:0])
		// What initialize sends (clientInfo, capabilities) is kept for the session's life.
		if initialize = slices.Contains(methods, string(mcpgo.MethodInitialize)); initialize && len(body) > maxInitializeBody {
			writeRefusal(w, body, http.StatusRequestEntityTooLarge, codeInvalidRequest,
				apierr.New(apierr.InvalidArgument, "an initialize request is at most 16 KiB"))
			return nil
		}
		listen = slices.Contains(methods, string(mcpgo.MethodSubscriptionsListen))
		if m, ok := g.notOffered(methods, modern); ok {
			methodNotFound(w, body, m, modern)
			return nil
		}
		if authErr != nil { // a valid credential needs no exemption
			passAnonymous = g.anonymous(methods, calls, tok != "")
		}
	}
	gc.guarded = guardedRequest{initialize: initialize, listen: listen, modern: modern, body: body, addr: ip, slot: &gc.slot}
	if authErr != nil {
		if passAnonymous { // the tool decides (e.g. auth_refresh with an expired access token)
			if e, ok := g.cfg.Auth.(expiredSubjecter); ok && errors.Is(authErr, token.ErrExpired) {
				gc.guarded.principal = e.ExpiredSubject(ctx, tok)
			}
			return gc
		}
		g.recordRefusal(ctx, calls, token.Claims{}, authErr)
		g.refuse(w, r, body, authErr)
		return nil
	}
	for _, tool := range calls {
		rule, ok := g.cfg.Policy.Tools[tool]
		if !ok || rule.Public || rule.Authenticated {
			continue // unmapped tools are denied by the middleware, with a clear error
		}
		if !slices.ContainsFunc(rule.AnyOf, func(p string) bool { return scopesAllow(claims.Scopes, p) }) {
			e := insufficientScope("the tool "+tool, rule.AnyOf)
			g.recordRefusal(ctx, []string{tool}, claims, e)
			g.deny(w, r, body, http.StatusForbidden, e)
			return nil
		}
	}
	for _, m := range methods {
		if !GuardedMethod(m) {
			continue
		}
		if err := g.authorizeMethod(ctx, m, claims, ip); err != nil {
			g.recordRefusal(ctx, []string{m}, claims, err)
			g.deny(w, r, body, http.StatusForbidden, apierr.From(err))
			return nil
		}
	}
	// The middleware will need this token's claims again, in this request: hand them over.
	v := &gc.guarded
	v.token, v.claims, v.verified, v.principal = tok, claims, true, claims.Subject
	return gc
}

// bodyReader hands the body the guard read on to the next handler.
type bodyReader struct{ bytes.Reader }

func (bodyReader) Close() error { return nil }

// readBody reads at most limit+1 bytes of r's body, in one allocation when its length is
// declared (net/http then reads no more than that).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if n := r.ContentLength; n >= 0 && n <= limit {
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, limit+1))
}

// GuardedMethod reports whether a JSON-RPC method reaches a server capability that the tool
// middleware and filter do not see (resources, prompts, completions, tasks): the HTTP guard
// decides it by Policy.Methods, and refuses it when there is no rule.
func GuardedMethod(m string) bool {
	return strings.HasPrefix(m, "resources/") || strings.HasPrefix(m, "prompts/") ||
		strings.HasPrefix(m, "completion/") || strings.HasPrefix(m, "tasks/")
}

// authorizeMethod applies Policy.Methods to a guarded method called with valid claims.
func (g *Guard) authorizeMethod(ctx context.Context, m string, claims token.Claims, ip netip.Addr) error {
	rule, ok := g.cfg.Policy.Methods[m]
	switch {
	case !ok:
		return apierr.New(apierr.PermissionDenied, "this method has no authorization rule").With("method", m)
	case rule.Public || rule.Authenticated:
		return nil
	}
	cred := rbac.Credential{Subject: claims.Subject, Scopes: claims.Scopes}
	for _, perm := range rule.AnyOf {
		res, act, _ := strings.Cut(perm, ":")
		if g.cfg.Authz.Decide(ctx, cred, rbac.Request{Resource: res, Action: act, OrgID: claims.OrgID,
			Attributes: rbac.Attributes{SourceIP: ip}}).Allowed {
			return nil
		}
	}
	return insufficientScope("the method "+m, rule.AnyOf)
}

// guardedMethods are the client-to-server methods the guard has a decision for, besides
// notifications, responses and the capability methods (GuardedMethod). Any other method never
// reaches the server: the guard answers it "method not found" itself, for every caller, so a
// method a later mcp-go learns is closed until it is added here.
var guardedMethods = []string{
	string(mcpgo.MethodInitialize), string(mcpgo.MethodPing), string(mcpgo.MethodServerDiscover),
	string(mcpgo.MethodToolsList), string(mcpgo.MethodToolsCall), string(mcpgo.MethodSetLogLevel),
	string(mcpgo.MethodSubscriptionsListen),
}

// removedIn20260728 are the methods 2026-07-28 removed (SEP-2575): a request of that revision
// calling one gets 404 "method not found", as mcp-go answers it.
var removedIn20260728 = []string{
	string(mcpgo.MethodInitialize), string(mcpgo.MethodPing), string(mcpgo.MethodSetLogLevel),
	string(mcpgo.MethodResourcesSubscribe), string(mcpgo.MethodResourcesUnsubscribe),
	string(mcpgo.MethodTasksList), string(mcpgo.MethodTasksResult),
}

// notOffered returns the first method the server does not offer to anyone: one the guard does
// not know, a capability method the policy has no rule for (the server has no such capability,
// or the operator did not open it: CheckTools warns of the latter), or, in a 2026-07-28 request,
// a method that revision removed. Answering those "method not found" before the server sees
// them tells nobody what the server holds, and no token makes a difference.
func (g *Guard) notOffered(methods []string, modern bool) (string, bool) {
	for _, m := range methods {
		switch {
		case m == "" || strings.HasPrefix(m, "notifications/"):
		case modern && slices.Contains(removedIn20260728, m):
			return m, true
		case GuardedMethod(m):
			if _, ok := g.cfg.Policy.Methods[m]; !ok {
				return m, true
			}
		case !slices.Contains(guardedMethods, m):
			return m, true
		}
	}
	return "", false
}

// methodNotFound answers a request for method m as a server without it: JSON-RPC -32601, with
// HTTP 404 in a 2026-07-28 request (as that revision prescribes) and 200 before it.
func methodNotFound(w http.ResponseWriter, body []byte, m string, modern bool) {
	status := http.StatusOK
	if modern {
		status = http.StatusNotFound
	}
	writeRefusal(w, body, status, mcpgo.METHOD_NOT_FOUND, apierr.New(apierr.NotFound, "method not found").With("method", m))
}

// anonymous reports whether every message may pass without a valid credential. Without a token
// (failedToken false): the anonymous methods, notifications, responses, and calls of public
// tools. With a token that failed, only calls of tools whose own argument is the credential they
// act on (Rule.TakesCredential): anything else answered as if no token had been sent would hide
// an expired or foreign token behind a short tool list.
func (g *Guard) anonymous(methods, calls []string, failedToken bool) bool {
	if len(methods) == 0 {
		return false
	}
	for _, m := range methods {
		switch {
		case m == "tools/call":
		case failedToken:
			return false
		case m == "":
		case m == string(mcpgo.MethodSubscriptionsListen):
			// 2026-07-28's stream, where an older client would GET one: anonymous wherever
			// anything is (the session table bounds them as sessions).
			if len(g.cfg.Policy.AnonymousMethods) == 0 {
				return false
			}
		case GuardedMethod(m):
			if !g.cfg.Policy.Methods[m].Public {
				return false
			}
		case !g.cfg.Policy.allowsAnonymous(m) && !strings.HasPrefix(m, "notifications/"):
			return false
		}
	}
	for _, tool := range calls {
		if rule := g.cfg.Policy.Tools[tool]; !rule.Public || failedToken && !rule.TakesCredential {
			return false
		}
	}
	return true
}

const metadataPath = "/.well-known/oauth-protected-resource"

func isMetadataPath(p string) bool {
	return p == metadataPath || strings.HasPrefix(p, metadataPath+"/")
}

// metadataURL is where the protected-resource metadata of the resource r addressed lives: the
// path form (RFC 9728 section 3.1) under the resource URI's origin when it is a URL, else
// under the request's own origin.
func (g *Guard) metadataURL(r *http.Request) string {
	if u, err := url.Parse(g.cfg.ResourceURI); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		return u.Scheme + "://" + u.Host + metadataPath + strings.TrimSuffix(u.Path, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + metadataPath + r.URL.Path
}

// refuse answers a credential that could not be accepted: 401 for a bad token, but 429 when the
// caller is being rate-limited and 503 when a dependency (the limiter, the revocation list) is
// down, so clients do not take an outage for "log in again".
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, body []byte, err error) {
	e := apierr.From(err)
	switch e.Code {
	case apierr.RateLimited:
		g.deny(w, r, body, http.StatusTooManyRequests, e)
	case apierr.Internal:
		g.log.ErrorContext(r.Context(), "could not check a bearer token", "error", err)
		g.deny(w, r, body, http.StatusServiceUnavailable, apierr.New(apierr.Internal, "the credential could not be checked now; try again"))
	default:
		g.deny(w, r, body, http.StatusUnauthorized, e)
	}
}

// deny answers a request the guard refuses with status: the WWW-Authenticate challenge of a 401
// (and of a 403 that names the scope to ask for), a Retry-After where waiting helps, and the
// JSON-RPC error response carrying e.
func (g *Guard) deny(w http.ResponseWriter, r *http.Request, body []byte, status int, e *apierr.Error) {
	code := CodeUnauthorized
	switch status {
	case http.StatusForbidden:
		code = CodeForbidden
	case http.StatusTooManyRequests:
		code = CodeRateLimited
		if secs, ok := e.Details["retry_after_seconds"].(int); ok {
			w.Header().Set("Retry-After", fmt.Sprint(secs))
		}
	case http.StatusServiceUnavailable:
		code = CodeUnavailable
		w.Header().Set("Retry-After", "1")
	}
	if _, scoped := e.Details["scope"]; status == http.StatusUnauthorized || status == http.StatusForbidden && scoped {
		ch := fmt.Sprintf(`Bearer resource_metadata=%q`, g.metadataURL(r))
		if more := challengeFor(status, e, bearer(r) == "", g.cfg.ScopesSupported); more != "" {
			ch += ", " + more
		}
		w.Header().Set("WWW-Authenticate", ch)
	}
	writeRefusal(w, body, status, code, e)
}

// ResourceMetadata is the RFC 9728 document.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	ResourceName           string   `json:"resource_name,omitempty"`
}

func (g *Guard) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	scopes := g.cfg.ScopesSupported
	for _, rule := range g.cfg.Policy.Tools {
		if g.cfg.ScopesSupported != nil {
			break
		}
		for _, p := range rule.AnyOf {
			if !slices.Contains(scopes, p) {
				scopes = append(scopes, p)
			}
		}
	}
	sort.Strings(scopes)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*") // public, no cookie read: any browser-based client may discover
	_ = json.NewEncoder(w).Encode(ResourceMetadata{Resource: g.cfg.ResourceURI, AuthorizationServers: g.cfg.AuthorizationServers,
		BearerMethodsSupported: []string{"header"}, ScopesSupported: scopes, ResourceName: ServerName})
}

// sourceAddr parses a RemoteAddr ("ip:port") for policy conditions.
func sourceAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
