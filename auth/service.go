package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/apikey"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/session"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/internal/tracing"
)

// Defaults for Config.
const (
	DefaultAccessTTL  = 15 * time.Minute
	DefaultRefreshTTL = 7 * 24 * time.Hour
)

// Config configures a Service. Zero values take the defaults.
type Config struct {
	Issuer     string
	Audience   string
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	// Password configures bcrypt's cost and the pool of hashing workers: beyond its queue or
	// its wait, a login is answered RATE_LIMITED.
	Password password.Config
	Now      func() time.Time
	Logger   *slog.Logger
	// Sealer encrypts TOTP secrets at rest (the master key). Without it MFA is unavailable.
	Sealer *token.Sealer
	// MFAIssuer names this service in authenticator apps (default "mcpauth").
	MFAIssuer string
	// Limiter and Lockout throttle logins, refreshes and API-key failures (default: in process).
	Limiter throttle.Limiter
	Lockout throttle.Lockout
	Limits  Limits // zero: DefaultLimits
	// Audit receives the security events (default: discarded).
	Audit audit.Recorder
	// Revocations is the revoked-session set validation consults (default: in process; with
	// Redis, shared by every instance).
	Revocations session.Revocations
	// Scopes returns the permissions an access token of u carries (its roles' permissions).
	Scopes func(ctx context.Context, u User) ([]string, error)
	// TokenCacheSize bounds the verified-token cache (default DefaultTokenCacheSize; negative:
	// off). UserCacheTTL is how long Caller trusts a user record no change was announced for
	// before reading it again in the background (default DefaultUserCacheTTL; negative: off);
	// see liveUsers.
	TokenCacheSize int
	UserCacheTTL   time.Duration
	// UserVersions announces user record changes between instances (nil: this instance is the
	// only writer; its own changes drop its cached records at once).
	UserVersions UserVersions
	// StepUpMaxAge is how long after a login its session's tokens are proof enough of the user
	// for a credential change (default DefaultStepUpMaxAge; negative: never, the password is
	// always asked). APIKeyTTL is the lifetime of a key created without an expiry (default
	// DefaultAPIKeyTTL; negative: such keys never expire).
	StepUpMaxAge time.Duration
	APIKeyTTL    time.Duration
}

// Service runs the authentication flows. It is safe for concurrent use.
type Service struct {
	store     Store
	keys      *token.KeySet
	codec     *token.Codec
	cfg       Config
	log       *slog.Logger
	passwords *password.Hasher
	revoked   session.Revocations
	apiKeys   *apikey.Keys
	sessions  *session.Sessions
	factors   *mfa.Factors
	users     *liveUsers
	// wallClock: cfg.Now is the wall clock (Config.Now unset), so a reading of time.Now taken
	// for a latency serves as the service's time too (at).
	wallClock bool
}

// Errors callers see. Login failures are deliberately one error: the same code, message and
// cost whether the account is unknown or the password wrong.
var (
	ErrInvalidCredentials = apierr.New(apierr.InvalidCredentials, "invalid credentials")
	ErrAccountDisabled    = apierr.New(apierr.AccountDisabled, "account is disabled")
	ErrUnauthenticated    = apierr.New(apierr.Unauthenticated, "authentication required: log in with auth_login or send a bearer token")
	ErrUserNotFound       = apierr.New(apierr.NotFound, "user not found")
	ErrUserTaken          = apierr.New(apierr.Conflict, "a user with that email or username already exists")
)

// NewService wires a Service and reloads recently revoked sessions into the revocation list.
func NewService(ctx context.Context, store Store, keys *token.KeySet, cfg Config) (*Service, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: issuer and audience are required")
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = DefaultAccessTTL
	}
	if cfg.RefreshTTL <= 0 {
		cfg.RefreshTTL = DefaultRefreshTTL
	}
	wallClock := cfg.Now == nil
	if wallClock {
		cfg.Now = time.Now
	}
	clock := cfg.Now
	// MongoDB keeps milliseconds: truncate so what we return equals what a later read returns.
	cfg.Now = func() time.Time { return clock().UTC().Truncate(time.Millisecond) }
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StepUpMaxAge == 0 {
		cfg.StepUpMaxAge = DefaultStepUpMaxAge
	}
	if cfg.APIKeyTTL == 0 {
		cfg.APIKeyTTL = DefaultAPIKeyTTL
	}
	if cfg.MFAIssuer == "" {
		cfg.MFAIssuer = "mcpauth"
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard
	}
	if cfg.Limiter == nil {
		cfg.Limiter = throttle.NewLocalLimiter(nil)
	}
	if cfg.Lockout == nil {
		cfg.Lockout = throttle.NewLocalLockout(throttle.DefaultPolicy, nil)
	}
	if cfg.Limits == (Limits{}) {
		cfg.Limits = DefaultLimits
	}
	if cfg.Scopes == nil {
		cfg.Scopes = func(context.Context, User) ([]string, error) { return nil, nil }
	}
	passwords, err := password.NewHasher(cfg.Password)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	s := &Service{
		store: store, keys: keys, cfg: cfg, log: cfg.Logger, passwords: passwords,
		codec: token.NewCodec(token.CodecConfig{Keys: keys, Issuer: cfg.Issuer, Audience: cfg.Audience,
			TTL: cfg.AccessTTL, CacheSize: cfg.TokenCacheSize}),
		revoked:   cfg.Revocations,
		users:     newLiveUsers(cfg.UserCacheTTL),
		wallClock: wallClock,
	}
	if s.revoked == nil {
		s.revoked = session.NewLocalRevocations(cfg.Now)
	}
	s.apiKeys = apikey.NewKeys(store, s.revoked, cfg.Now, cfg.APIKeyTTL)
	var sealer mfa.Sealer // a nil *token.Sealer would be a non-nil interface
	if cfg.Sealer != nil {
		sealer = cfg.Sealer
	}
	s.factors = mfa.NewFactors(store, sealer, cfg.MFAIssuer, cfg.Now)
	s.sessions = session.NewSessions(store, s.revoked, cfg.Now, cfg.RefreshTTL, cfg.AccessTTL)
	if err := s.sessions.ReloadRevoked(ctx); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return s, nil
}

// RotateSigningKey makes a new key the signing key; the old one verifies for one access-token
// lifetime more. Other instances pick the new key up when they first see its kid.
func (s *Service) RotateSigningKey(ctx context.Context) (string, error) {
	kid, err := s.keys.Rotate(ctx, s.cfg.Now())
	if err != nil {
		return "", apierr.Internalf("rotate signing key: %w", err)
	}
	s.log.InfoContext(ctx, "signing key rotated", "kid", kid)
	if err := s.recordDurable(ctx, audit.Event{Type: audit.KeyRotated, Details: map[string]any{"kid": kid}}); err != nil {
		return kid, apierr.Internalf("audit key rotation: %w", err)
	}
	return kid, nil
}

// Keys returns the key set (for the JWKS endpoint).
func (s *Service) Keys() *token.KeySet { return s.keys }

// AccessTTL is the configured access-token lifetime.
func (s *Service) AccessTTL() time.Duration { return s.cfg.AccessTTL }

// Tokens is what a login or refresh hands out.
type Tokens struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token"`
	TokenType    string    `json:"token_type"`
	ExpiresAt    time.Time `json:"expires_at"`
	SessionID    string    `json:"session_id"`
	// Scopes are the access token's (what the OAuth token endpoint answers as scope); tools
	// do not show them.
	Scopes []string `json:"-"`
}

// LoginRequest is a password login. Identifier is an email (contains '@') or a username.
type LoginRequest struct {
	Identifier string
	Password   Secret
	MFACode    Secret // a TOTP code or a recovery code, for accounts with MFA
	RememberMe bool
	Client     string
}

// Login checks a password (and the second factor, if the account has one) and opens a session.
//
// Order matters: rate limits and the lockout are checked before any password is hashed; an
// unknown account, a wrong password and a locked account all answer INVALID_CREDENTIALS after
// the same bcrypt work, so neither existence nor lockout can be told from the answer.
func (s *Service) Login(ctx context.Context, req LoginRequest) (_ Tokens, _ User, err error) {
	ctx, span := tracing.Start(ctx, tracer, "auth.Login")
	defer func(start time.Time) { observe(span, start, err, loginDuration, loginCount) }(time.Now())
	tokens, u, err := s.login(ctx, req)
	if apierr.CodeOf(err) == apierr.Internal {
		// Like every failed login, it names what was typed (the account may not be known).
		identifier, _ := normalizeIdentifier(req.Identifier)
		s.record(ctx, authFailed(u, audit.ReasonSystemError, "", map[string]any{"identifier": identifier}))
	}
	return tokens, u, err
}

// login runs a login's phases: bound what was typed, throttle, prove the user (password, the
// account's state, the second factor), open the session.
func (s *Service) login(ctx context.Context, req LoginRequest) (Tokens, User, error) {
	if err := password.CheckPresented("password", req.Password.Reveal()); err != nil {
		return Tokens{}, User{}, err
	}
	identifier, err := normalizeIdentifier(req.Identifier)
	if err != nil {
		return Tokens{}, User{}, err
	}
	if err := s.throttleLogin(ctx, identifier); err != nil {
		return Tokens{}, User{}, err
	}
	u, mfaOn, err := s.proveLogin(ctx, identifier, req)
	if err != nil {
		return Tokens{}, User{}, err
	}
	tokens, err := s.openSession(ctx, u, req.RememberMe, req.Client, time.Time{})
	if err != nil {
		return Tokens{}, User{}, err
	}
	s.log.InfoContext(ctx, "login", "user_id", u.ID, "session_id", tokens.SessionID)
	s.record(ctx, audit.Event{Type: audit.AuthSuccess, Subject: u.ID, Actor: u.ID, OrgID: u.OrgID, SessionID: tokens.SessionID,
		Details: map[string]any{"method": "password", "mfa": mfaOn}})
	return tokens, u, nil
}

// throttleLogin applies the per-identifier and per-address login limits, before any password
// is hashed; a refusal is recorded with what was typed.
func (s *Service) throttleLogin(ctx context.Context, identifier string) error {
	for _, lim := range []struct {
		key   string
		limit throttle.Limit
	}{{"login:id:" + identifier, s.cfg.Limits.LoginPerIdentifier}, {"login:addr:" + limitAddr(ctx), s.cfg.Limits.LoginPerAddress}} {
		if err := s.allow(ctx, lim.key, lim.limit); err != nil {
			if apierr.CodeOf(err) == apierr.RateLimited {
				s.record(ctx, audit.Event{Type: audit.AuthRateLimited, Severity: audit.Warning,
					Details: map[string]any{"limit": limitName(lim.key), "identifier": identifier}})
			}
			return err
		}
	}
	return nil
}

// proveLogin checks the password of the account identifier names (an unknown account costs
// the same compare, against the dummy hash, and a locked one answers like a wrong password),
// then that the account may log in, then its second factor; only the whole proof clears the
// lockout's count. It reports whether MFA is on.
func (s *Service) proveLogin(ctx context.Context, identifier string, req LoginRequest) (User, bool, error) {
	u, err := s.findByIdentifier(ctx, identifier)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, false, err
	}
	// A worker before anything depends on whether the account exists: see password.Hasher.
	release, err := s.hashWorker(ctx, identifier)
	if err != nil {
		return User{}, false, err
	}
	defer release()
	if u.ID == "" { // not found
		s.passwords.CompareDummy(req.Password.Reveal())
		s.record(ctx, authFailed(User{}, audit.ReasonUserNotFound, "", map[string]any{"identifier": identifier}))
		return User{}, false, ErrInvalidCredentials
	}
	if err := s.checkPassword(ctx, u, req.Password, "", release); err != nil {
		if apierr.CodeOf(err) == apierr.AccountLocked {
			return User{}, false, ErrInvalidCredentials
		}
		return User{}, false, err
	}
	if u.Disabled {
		s.record(ctx, authFailed(u, audit.ReasonAccountInactive, "", nil))
		return User{}, false, s.failed(ctx, u.ID, ErrAccountDisabled)
	}
	mfaOn, err := s.secondFactorIfEnabled(ctx, u, req.MFACode, "")
	if errors.Is(err, mfa.ErrRequired) { // the password was right: Authenticate's page asks for the code
		u.PasswordHash = nil
		return u, true, err
	}
	if err != nil {
		return User{}, false, err
	}
	return u, mfaOn, s.succeeded(ctx, u.ID)
}

// normalizeIdentifier validates a login identifier: an email (contains '@') or a username.
func normalizeIdentifier(identifier string) (string, error) {
	if strings.Contains(identifier, "@") {
		return NormalizeEmail("email", identifier)
	}
	return NormalizeUsername("username", identifier)
}

func (s *Service) findByIdentifier(ctx context.Context, identifier string) (User, error) {
	var (
		u   User
		err error
	)
	if strings.Contains(identifier, "@") {
		u, err = s.store.GetUserByEmail(ctx, identifier)
	} else {
		u, err = s.store.GetUserByUsername(ctx, identifier)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return User{}, apierr.Internalf("find user: %w", err)
	}
	return u, err
}

func (s *Service) openSession(ctx context.Context, u User, rememberMe bool, client string, notAfter time.Time) (Tokens, error) {
	sess, refresh, err := s.sessions.Open(ctx, u.ID, u.OrgID, rememberMe, client, notAfter)
	if err != nil {
		return Tokens{}, err
	}
	return s.tokensFor(ctx, u, sess, refresh)
}

// tokensFor mints an access token of u for sess, beside its new refresh token: with the
// user's permissions in a session of mcpauth's own tools, with what was granted in an OAuth
// client's (the guard narrows either to the user's live permissions on every call).
func (s *Service) tokensFor(ctx context.Context, u User, sess session.Session, refresh string) (Tokens, error) {
	sub := token.Subject{User: u.ID, Session: sess.ID, Org: u.OrgID, AuthTime: sess.CreatedAt}
	if g := sess.Grant; g != nil {
		sub.Scopes, sub.AuthTime, sub.ClientID = g.Scopes, g.AuthTime, g.ClientID
	} else {
		scopes, err := s.cfg.Scopes(ctx, u)
		if err != nil {
			return Tokens{}, apierr.Internalf("scopes of %s: %w", u.ID, err)
		}
		sub.Scopes = scopes
	}
	access, claims, err := s.codec.Sign(sub, s.cfg.Now())
	if err != nil {
		return Tokens{}, apierr.Internalf("%w", err)
	}
	return Tokens{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer",
		ExpiresAt: claims.ExpiresAt, SessionID: sess.ID, Scopes: sub.Scopes}, nil
}

// Refresh rotates a refresh token: the presented one is spent, a new pair is issued. A token
// that was already spent is reuse: the whole session (family) is revoked.
func (s *Service) Refresh(ctx context.Context, refreshToken Secret) (_ Tokens, err error) {
	ctx, span := tracing.Start(ctx, tracer, "auth.Refresh")
	defer func(start time.Time) { observe(span, start, err, refreshDuration, refreshCount) }(time.Now())
	return s.refresh(ctx, refreshToken)
}

func (s *Service) refresh(ctx context.Context, refreshToken Secret) (Tokens, error) {
	return s.rotate(ctx, refreshToken, func(sess session.Session) bool { return sess.Grant == nil }, nil)
}

// rotate spends a refresh token and issues the next pair, when its session is one the caller
// may refresh (mine): auth_refresh those of mcpauth's own tools, an OAuth client its own
// grant's. A token presented where it does not belong is spent and its session revoked.
func (s *Service) rotate(ctx context.Context, refreshToken Secret, mine func(session.Session) bool, narrow []string) (Tokens, error) {
	if err := s.allow(ctx, "refresh:addr:"+limitAddr(ctx), s.cfg.Limits.Refresh); err != nil {
		return Tokens{}, err
	}
	rt, sess, err := s.sessions.Spend(ctx, refreshToken.Reveal())
	if err == nil && !mine(sess) {
		if _, rerr := s.revokeSession(ctx, sess.ID, "refresh token presented by another client"); rerr != nil {
			return Tokens{}, rerr
		}
		s.log.WarnContext(ctx, "refresh token presented by another client: session revoked", "user_id", rt.UserID, "session_id", sess.ID)
		return Tokens{}, ErrNotThisClient
	}
	if errors.Is(err, session.ErrReused) {
		if _, rerr := s.revokeSession(ctx, rt.SessionID, "refresh token reuse"); rerr != nil {
			return Tokens{}, rerr
		}
		s.log.WarnContext(ctx, "refresh token reuse: session revoked", "user_id", rt.UserID, "session_id", rt.SessionID)
		s.record(ctx, audit.Event{Type: audit.TokenReuseDetected, Severity: audit.Critical, Subject: rt.UserID, OrgID: sess.OrgID, SessionID: rt.SessionID})
		return Tokens{}, token.ErrRevoked.With("reason", "refresh token reuse detected; the session has been revoked")
	}
	if err != nil {
		return Tokens{}, err
	}
	u, err := s.store.GetUser(ctx, rt.UserID)
	if errors.Is(err, ErrNotFound) {
		return Tokens{}, token.ErrRevoked
	}
	if err != nil {
		return Tokens{}, apierr.Internalf("user of refresh token: %w", err)
	}
	if u.Disabled {
		return Tokens{}, ErrAccountDisabled
	}
	refresh, err := s.sessions.Rotate(ctx, rt, sess)
	if err != nil {
		return Tokens{}, err
	}
	if narrow != nil && sess.Grant != nil {
		g := *sess.Grant
		g.Scopes = slices.DeleteFunc(slices.Clone(g.Scopes), func(sc string) bool { return !slices.Contains(narrow, sc) })
		sess.Grant = &g
	}
	tokens, err := s.tokensFor(ctx, u, sess, refresh)
	if err != nil {
		return Tokens{}, err
	}
	if err := s.sessions.Rotated(ctx, rt); err != nil {
		// The tokens are good; reuse of the old one is flagged only after a while.
		s.log.WarnContext(ctx, "could not record completed rotation", "session_id", sess.ID, "error", err)
	}
	s.record(ctx, audit.Event{Type: audit.TokenRefreshed, Subject: u.ID, OrgID: u.OrgID, SessionID: sess.ID})
	return tokens, nil
}

// Validate verifies an access token (and checks that its session is not revoked) or an API key.
func (s *Service) Validate(ctx context.Context, tok Secret) (_ token.Claims, err error) {
	ctx, span := tracing.Start(ctx, tracer, "auth.Validate")
	start := time.Now()
	defer func() { observe(span, start, err, validateDuration, validateCount) }()
	return s.validate(ctx, tok, s.at(start))
}

// at is the service's time (cfg.Now) when the wall clock read t: t itself, as cfg.Now would
// give it, unless a clock of the caller's is configured. Validate runs on every request; one
// clock read then serves its latency and its expiry check.
func (s *Service) at(t time.Time) time.Time {
	if s.wallClock {
		return t.UTC().Truncate(time.Millisecond)
	}
	return s.cfg.Now()
}

// validate is Validate at now.
func (s *Service) validate(ctx context.Context, tok Secret, now time.Time) (token.Claims, error) {
	if strings.HasPrefix(tok.Reveal(), apikey.Prefix) {
		_, c, err := s.validateAPIKey(ctx, tok.Reveal())
		return c, err
	}
	c, err := s.codec.Verify(ctx, tok.Reveal(), now)
	if err != nil {
		return token.Claims{}, err
	}
	if c.SessionID != "" {
		revoked, err := s.sessions.IsRevoked(ctx, c.SessionID)
		if err != nil {
			return token.Claims{}, apierr.New(apierr.Internal, "revocation list unavailable; refusing the token").Wrap(err)
		}
		if revoked {
			return token.Claims{}, token.ErrRevoked
		}
	}
	return c, nil
}

// ExpiredSubject is the user of a genuine access token that has expired ("" for any other
// token). The HTTP guard binds transport sessions to users: a client whose token expired is
// still that session's user while it refreshes, though the token authorizes nothing.
func (s *Service) ExpiredSubject(ctx context.Context, tok Secret) string {
	c, err := s.codec.Verify(ctx, tok.Reveal(), s.cfg.Now())
	if errors.Is(err, token.ErrExpired) {
		return c.Subject
	}
	return ""
}

// Caller validates a bearer token and loads its live user record: a disabled or deleted user
// is refused even while the token is unexpired (when the change was made by another instance:
// as soon as Config.UserVersions announces it, at most Config.UserCacheTTL). The user comes
// without its password hash.
//
// Caller is the guard's per-call check: it records no validation metrics or span of its own
// (the guard records its decision, which includes this; the HTTP guard's Validate has already
// counted the credential once).
func (s *Service) Caller(ctx context.Context, tok Secret) (User, token.Claims, error) {
	if tok.Reveal() == "" {
		return User{}, token.Claims{}, ErrUnauthenticated
	}
	c, err := s.validate(ctx, tok, s.cfg.Now())
	if err != nil {
		return User{}, token.Claims{}, err
	}
	u, err := s.callerOf(ctx, &c)
	if err != nil {
		return User{}, token.Claims{}, err
	}
	return u, c, nil
}

// VerifiedCaller is Caller for claims this Service's Validate returned earlier in the same
// request (the HTTP guard validates a request's token before the MCP server sees it; the tool
// middleware then needs only the live user, which it returns). Claims from anywhere else must
// go through Caller. c is a pointer, and only the user is returned, because this runs under
// the MCP server's deep stack on every tool call: small frames keep it from growing.
func (s *Service) VerifiedCaller(ctx context.Context, c *token.Claims) (User, error) {
	return s.callerOf(ctx, c)
}

// callerOf is the live, enabled user behind verified claims.
func (s *Service) callerOf(ctx context.Context, c *token.Claims) (User, error) {
	u, err := s.liveUser(ctx, c.Subject)
	if errors.Is(err, ErrNotFound) {
		if c.APIKeyID != "" {
			return User{}, apikey.ErrInvalid
		}
		return User{}, token.ErrRevoked
	}
	if err != nil {
		return User{}, apierr.Internalf("load caller: %w", err)
	}
	if u.Disabled {
		if c.APIKeyID != "" { // a disabled owner's keys are simply invalid
			return User{}, apikey.ErrInvalid
		}
		return User{}, ErrAccountDisabled
	}
	return u, nil
}

// revokeSession revokes a session (in the store and the shared revocation set) and records it;
// it reports whether this call did the revoking.
func (s *Service) revokeSession(ctx context.Context, sid, reason string) (bool, error) {
	done, err := s.sessions.Revoke(ctx, sid, reason)
	if done {
		e := audit.Event{Type: audit.SessionRevoked, SessionID: sid, Details: map[string]any{"reason": reason}}
		if sess, err := s.sessions.Get(ctx, sid); err == nil { // whose session: for audit_query by user
			e.Subject, e.OrgID = sess.UserID, sess.OrgID
		}
		s.record(ctx, e)
	}
	return done, err
}

// Revoke revokes the session behind a refresh token or an access token (RFC 7009: holding the
// token is the authority to revoke it). An access token's whole session ends with it, refresh
// family included; an expired but genuine access token still ends its session.
func (s *Service) Revoke(ctx context.Context, tok Secret) (bool, error) {
	t := tok.Reveal()
	if session.IsRefreshToken(t) {
		return s.revokeByRefreshToken(ctx, tok)
	}
	c, err := s.codec.Verify(ctx, t, s.cfg.Now())
	if err != nil && !errors.Is(err, token.ErrExpired) {
		return false, err
	}
	if c.SessionID == "" {
		return false, token.ErrInvalid.With("reason", "token has no session")
	}
	done, err := s.revokeSession(ctx, c.SessionID, "revoked by token holder")
	if err == nil {
		s.record(ctx, audit.Event{Type: audit.TokenRevoked, Subject: c.Subject, OrgID: c.OrgID, SessionID: c.SessionID,
			Details: map[string]any{"token_type": "access_token", "jti": c.TokenID}})
	}
	return done, err
}

func (s *Service) revokeByRefreshToken(ctx context.Context, tok Secret) (bool, error) {
	rt, err := s.sessions.SpendForRevocation(ctx, tok.Reveal())
	if err != nil {
		return false, err
	}
	done, err := s.revokeSession(ctx, rt.SessionID, "revoked by token holder")
	if err == nil {
		s.record(ctx, audit.Event{Type: audit.TokenRevoked, Subject: rt.UserID, SessionID: rt.SessionID,
			Details: map[string]any{"token_type": "refresh_token"}})
	}
	return done, err
}

// Logout ends sessions: the one of refreshToken if given, else every session of the caller
// (all), else the caller's current session. It returns how many sessions it revoked.
func (s *Service) Logout(ctx context.Context, caller *token.Claims, refreshToken Secret, all bool) (int, error) {
	count := 0
	if refreshToken != "" {
		done, err := s.revokeByRefreshToken(ctx, refreshToken)
		if err != nil {
			return 0, err
		}
		if done {
			count++
		}
		if !all {
			return count, nil
		}
	}
	if caller == nil {
		return 0, ErrUnauthenticated
	}
	if !all {
		if caller.SessionID == "" {
			return 0, apierr.New(apierr.InvalidArgument, "this credential has no session; pass refresh_token or all_sessions")
		}
		done, err := s.revokeSession(ctx, caller.SessionID, "logout")
		if err != nil {
			return 0, err
		}
		if done {
			count++
		}
		return count, nil
	}
	n, err := s.revokeSessionsOf(ctx, caller.Subject, "logout of all sessions", "")
	return count + n, err
}

// SessionInfo is a session as its owner sees it.
type SessionInfo struct {
	ID         string    `json:"id"`
	Client     string    `json:"client,omitempty"`
	RememberMe bool      `json:"remember_me"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Current    bool      `json:"current"`
}

// Sessions lists the caller's active sessions.
func (s *Service) Sessions(ctx context.Context, caller token.Claims) ([]SessionInfo, error) {
	active, err := s.sessions.Active(ctx, caller.Subject)
	if err != nil {
		return nil, err
	}
	out := []SessionInfo{}
	for _, sess := range active {
		out = append(out, SessionInfo{ID: sess.ID, Client: sess.Client, RememberMe: sess.RememberMe,
			CreatedAt: sess.CreatedAt, LastUsedAt: sess.LastUsedAt, ExpiresAt: sess.ExpiresAt,
			Current: sess.ID == caller.SessionID})
	}
	return out, nil
}
