package mcp

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
)

// Transport sessions belong to whoever opened them. A streamable-HTTP Mcp-Session-Id and an
// SSE sessionId travel in headers, URLs and logs, so knowing one must not be enough to use it:
// the table below remembers each session's principal (the user its opening request spoke
// for, or nobody) and the client address it came from, and a request under anyone else is
// answered 404, as for an id never issued, before it reaches the session. An anonymous
// session (an MCP client that logs in with auth_login after initialize) becomes its user's at
// the first authenticated request from the same address; a user's session is never handed
// back to an anonymous request, nor to another user. Anonymous requests from one address (an
// IPv6 /64) share one principal: the address is all that tells them apart.
//
// The table also bounds how many sessions exist (SessionLimits): each one keeps what its
// initialize sent until it is deleted or idle for SessionIdleTTL.

// SessionLimits bound the transport sessions of both transports together.
type SessionLimits struct {
	Max        int // open at once (default DefaultMaxSessions)
	PerAddress int // open at once from one client address, IPv6 by /64 (default DefaultMaxSessionsPerAddress)
}

// Session defaults. Sixty-four sessions per address leave room for many MCP hosts on one
// machine (each opens one or two) and bound what one stranger holds to about 1 MiB of
// initialize payloads (16 KiB each, see maxInitializeBody).
const (
	DefaultMaxSessions           = 10_000
	DefaultMaxSessionsPerAddress = 64
	// SessionIdleTTL is how long a streamable-HTTP session is kept without a request.
	SessionIdleTTL = 30 * time.Minute
)

var (
	errSessionsFull       = errors.New("the server holds as many sessions as it may; try again later")
	errSessionsPerAddress = errors.New("too many open sessions from this address; close some (DELETE) or let them expire")
	errUnknownSession     = errors.New("session not found")
)

// sessions is the table, and the streamable transport's server.SessionIdManager.
type sessions struct {
	limits SessionLimits
	idle   time.Duration // entries unused this long are stale (mcp-go's sweeper normally ends them first)
	now    func() time.Time

	// byID is read by every request of a session (claim, then mcp-go's Validate) without mu,
	// so that requests on both cores do not take turns on one lock; it changes only under mu,
	// with the counts.
	byID sync.Map // string → *sessionOwner

	mu      sync.Mutex
	held    int // entries of byID
	perAddr map[netip.Prefix]int
	pending int // admitted, not yet bound to an id
}

// opener is who opened a session and from where.
type opener struct {
	principal string       // a user id; "" for anonymous
	addr      netip.Prefix // the client address (IPv6 by /64)
}

type sessionOwner struct {
	addr netip.Prefix // where it was opened from
	// principal is the user it belongs to ("" for anonymous): set by the opener, and changed
	// once at most, from "" to a user (claim).
	principal atomic.Pointer[string]
	lastSeen  atomic.Int64 // unix nanoseconds
}

func newSessions(l SessionLimits, idle time.Duration) *sessions {
	if l.Max <= 0 {
		l.Max = DefaultMaxSessions
	}
	if l.PerAddress <= 0 {
		l.PerAddress = DefaultMaxSessionsPerAddress
	}
	return &sessions{limits: l, idle: idle, now: time.Now, perAddr: map[netip.Prefix]int{}}
}

// admit reserves a session for addr, refusing when a limit is reached.
func (s *sessions) admit(addr netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held+s.pending >= s.limits.Max {
		s.dropStale()
	}
	switch {
	case s.held+s.pending >= s.limits.Max:
		return errSessionsFull
	case s.perAddr[addr] >= s.limits.PerAddress:
		return errSessionsPerAddress
	}
	s.perAddr[addr]++
	s.pending++
	return nil
}

// dropStale forgets sessions unused for twice the idle time: those whose end mcp-go never
// reported (it sweeps the others itself). Called with mu held, only when the table is full.
func (s *sessions) dropStale() {
	cutoff := s.now().Add(-2 * s.idle).UnixNano()
	s.byID.Range(func(id, o any) bool {
		if o.(*sessionOwner).lastSeen.Load() < cutoff {
			s.forget(id.(string), o.(*sessionOwner))
		}
		return true
	})
}

// bind gives an admitted reservation its id.
func (s *sessions) bind(id string, by opener) {
	o := &sessionOwner{addr: by.addr}
	o.principal.Store(&by.principal)
	o.lastSeen.Store(s.now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending--
	if old, loaded := s.byID.Swap(id, o); loaded { // ids are random: never, but counted right
		s.decAddr(old.(*sessionOwner).addr)
	} else {
		s.held++
	}
}

// release returns an admitted reservation that got no id.
func (s *sessions) release(addr netip.Prefix) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending--
	s.decAddr(addr)
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.byID.Load(id); ok {
		s.forget(id, o.(*sessionOwner))
	}
}

// forget drops a session; called with mu held.
func (s *sessions) forget(id string, o *sessionOwner) {
	s.byID.Delete(id)
	s.held--
	s.decAddr(o.addr)
}

func (s *sessions) decAddr(addr netip.Prefix) {
	if n := s.perAddr[addr]; n > 1 {
		s.perAddr[addr] = n - 1
	} else {
		delete(s.perAddr, addr)
	}
}

// claim reports whether a request by principal from addr may use session id; an anonymous
// session claimed by a user from the address that opened it becomes that user's.
func (s *sessions) claim(id, principal string, addr netip.Prefix) bool {
	o, ok := s.byID.Load(id)
	if !ok || !o.(*sessionOwner).take(principal, addr) {
		return false
	}
	o.(*sessionOwner).lastSeen.Store(s.now().UnixNano())
	return true
}

// take reports whether principal from addr may use the session, which becomes principal's if
// it was anonymous. Two users logging in with one anonymous session at once: one takes it.
func (o *sessionOwner) take(principal string, addr netip.Prefix) bool {
	for {
		cur := o.principal.Load()
		switch {
		case *cur == principal && (principal != "" || o.addr == addr):
			return true // its user (from anywhere), or anonymous from its address
		case *cur != "":
			return false // another user's, or a user's asked for anonymously
		case o.addr != addr:
			return false // anonymous: the address is the principal
		}
		p := new(string) // an anonymous session's login: it becomes the user's
		*p = principal
		if o.principal.CompareAndSwap(cur, p) {
			return true
		}
	}
}

// Generate, Validate and Terminate make the table the streamable transport's
// server.SessionIdManager: ids are minted here and bound by streamable once the initialize
// response names them; an id the table does not hold is invalid (mcp-go answers 404).
func (s *sessions) Generate() string { return rand.Text() }

func (s *sessions) Validate(id string) (isTerminated bool, err error) {
	if _, ok := s.byID.Load(id); !ok {
		return false, errUnknownSession
	}
	return false, nil
}

func (s *sessions) Terminate(id string) (isNotAllowed bool, err error) {
	s.remove(id)
	return false, nil
}

// asker is who asks and from where, as the guard and the client-address resolver left it,
// with what the guard read of the request.
type asker struct {
	principal string
	addr      netip.Prefix
	// initialize: an initialize request; listen: a 2026-07-28 subscriptions/listen; modern:
	// sent under the 2026-07-28 protocol (Mcp-Protocol-Version), which has no sessions.
	initialize, listen, modern bool
}

// requester is r's asker.
func requester(r *http.Request) asker {
	if v := guardedFrom(r.Context()); v != nil {
		return asker{principal: v.principal, addr: auth.AddrGroup(v.addr), initialize: v.initialize, listen: v.listen, modern: v.modern}
	}
	return asker{addr: auth.AddrGroup(sourceAddr(r.RemoteAddr)), modern: modernProtocol(r)}
}

// streamRoute is what becomes of a streamable-HTTP request, as the session table sees it.
type streamRoute int

const (
	routeAnswered streamRoute = iota // refused: answered already
	routePass                        // a request of a session its requester holds, or of no session
	routeOpen                        // it opens a session (initialize) or a lasting stream (a 2026-07-28 listen)
)

// route decides what becomes of r; a refusal it answers itself.
func (s *sessions) route(w http.ResponseWriter, r *http.Request) streamRoute {
	a := requester(r)
	id := header(r.Header, headerSessionID)
	switch {
	case r.Method == http.MethodPost && a.initialize:
		return routeOpen
	case a.modern:
		// 2026-07-28 has no sessions: mcp-go serves such a request in a session of its own
		// whatever Mcp-Session-Id says (and answers its GET and DELETE 405). Its
		// subscriptions/listen stream lasts like a session, so it counts as one.
		if a.listen && r.Method == http.MethodPost {
			return routeOpen
		}
	case id != "":
		if !s.claim(id, a.principal, a.addr) {
			refuseSession(w, r, errUnknownSession)
			return routeAnswered
		}
	case r.Method == http.MethodGet || r.Method == http.MethodDelete:
		// Without a session there is no stream to open and nothing to delete (and a GET
		// would otherwise open an unbound stream for anyone).
		writeRefusal(w, nil, http.StatusBadRequest, codeInvalidRequest, apierr.Field("Mcp-Session-Id", "is required (header)"))
		return routeAnswered
	}
	return routePass
}

// serveOpening serves a request that opens a session or a stream, if its address may open
// one more: the session is bound to its opener, the stream counted while it lasts.
func (s *sessions) serveOpening(w http.ResponseWriter, r *http.Request, next http.Handler) {
	a := requester(r)
	if err := s.admit(a.addr); err != nil {
		refuseSession(w, r, err)
		return
	}
	if a.initialize {
		bw := &bindingWriter{ResponseWriter: w, s: s, owner: opener{principal: a.principal, addr: a.addr}}
		defer bw.done()
		next.ServeHTTP(bw, r)
		return
	}
	defer s.release(a.addr)
	next.ServeHTTP(w, r)
}

// bindingWriter binds the session id an initialize response carries to its opener, before
// the response (and so the id) reaches the client.
type bindingWriter struct {
	http.ResponseWriter
	s       *sessions
	owner   opener
	written bool
	bound   bool
}

func (b *bindingWriter) WriteHeader(code int) {
	if !b.written {
		b.written = true
		if id := b.Header().Get(server.HeaderKeySessionID); id != "" && code < 300 {
			b.s.bind(id, b.owner)
			b.bound = true
		}
	}
	b.ResponseWriter.WriteHeader(code)
}

func (b *bindingWriter) Write(p []byte) (int, error) {
	if !b.written {
		b.WriteHeader(http.StatusOK)
	}
	return b.ResponseWriter.Write(p)
}

func (b *bindingWriter) Flush() {
	if !b.written {
		b.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(b.ResponseWriter).Flush()
}

func (b *bindingWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }

func (b *bindingWriter) done() {
	if !b.bound {
		b.s.release(b.owner.addr)
	}
}

// sseOpening carries a /sse request's reservation to sseSessionID, which mints its id.
type sseOpening struct {
	owner opener
	id    string
}

type sseOpeningKey struct{}

// sseStream binds the stream an SSE GET opens; the stream's session ends with it.
func (s *sessions) sseStream(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		a := requester(r)
		if err := s.admit(a.addr); err != nil {
			refuseSession(w, r, err)
			return
		}
		o := &sseOpening{owner: opener{principal: a.principal, addr: a.addr}}
		defer func() {
			if o.id != "" {
				s.remove(o.id)
			} else {
				s.release(a.addr)
			}
		}()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sseOpeningKey{}, o)))
	})
}

// sseSessionID is the SSE transport's session id generator (server.WithSessionIDGenerator).
func (s *sessions) sseSessionID(ctx context.Context, _ *http.Request) (string, error) {
	o, ok := ctx.Value(sseOpeningKey{}).(*sseOpening)
	if !ok || o.id != "" {
		return "", errors.New("an SSE stream must be opened through the session table")
	}
	o.id = rand.Text()
	s.bind(o.id, o.owner)
	return o.id, nil
}

// sseMessages refuses a POST to /message for a session the request's principal does not own.
func (s *sessions) sseMessages(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.URL.Query().Get("sessionId"); id != "" {
			if a := requester(r); !s.claim(id, a.principal, a.addr) {
				refuseSession(w, r, errUnknownSession)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func refuseSession(w http.ResponseWriter, r *http.Request, err error) {
	var body []byte
	if v := guardedFrom(r.Context()); v != nil {
		body = v.body
	}
	switch {
	case errors.Is(err, errSessionsPerAddress), errors.Is(err, errSessionsFull):
		status := http.StatusTooManyRequests
		if errors.Is(err, errSessionsFull) {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Retry-After", "60")
		writeRefusal(w, body, status, CodeSessionLimit, apierr.New(apierr.RateLimited, err.Error()).With("retry_after_seconds", 60))
	default: // unknown, ended, or someone else's: the same answer
		writeRefusal(w, body, http.StatusNotFound, CodeSessionNotFound,
			apierr.New(apierr.NotFound, "session not found: it ended, or it was never this client's; initialize a new one"))
	}
}
