package app

import (
	"cmp"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/auth/password"
	"github.com/bduf/mcpauth/auth/throttle"
	"github.com/bduf/mcpauth/auth/token"
	"github.com/bduf/mcpauth/mcp"
)

// config is everything the binary reads from flags and the environment (flags win).
type config struct {
	// cli: a command of the CLI, which may run beside a server on the same data directory (its
	// audit events then go into a hash chain of their own).
	cli      bool
	DataDir  string
	MongoURI string
	MongoDB  string
	Issuer   string
	Audience string
	// issuerSet, audienceSet: configured, not defaulted (over HTTP the defaults are the
	// listener's origin and its MCP URL: originDefaults).
	issuerSet, audienceSet bool
	// OAuth is the authorization server's mode: auto (on over HTTP when the issuer is an
	// http(s) origin), on or off. OAuthRegistration turns dynamic client registration on.
	OAuth             string
	OAuthRegistration bool
	// OAuthDocuments turns client ID metadata documents on; OAuthDocumentsTestCA (environment
	// only, tests only) trusts a CA for document hosts and lets them be loopback or private.
	OAuthDocuments       bool
	OAuthDocumentsTestCA string
	// OAuthUnusedClientTTL and OAuthSweepInterval: see oauth.Server.Sweep.
	OAuthUnusedClientTTL, OAuthSweepInterval time.Duration
	// SSOConnectors is the file of identity providers the login page offers ("" for none).
	SSOConnectors string
	AccessTTL     time.Duration
	RefreshTTL    time.Duration
	BcryptCost    int
	SigningAlg    string
	LogLevel      string
	RedisURL      string
	RedisMode     string // single, cluster, sentinel; "": from the URL
	PolicyFile    string
	Limits        auth.Limits
	CallLimit     throttle.Limit
	Lockout       throttle.Policy
	// DegradeLimits: with Redis unreachable, fall back to in-process limits (logged loudly)
	// instead of refusing to authenticate.
	DegradeLimits bool
	// AuditRetention: events older than this are deleted at start (0: kept forever).
	AuditRetention time.Duration
	// AuditSearchTimeout bounds one audit search (0: audit.DefaultSearchTimeout).
	AuditSearchTimeout time.Duration
	// AuditGrantedSample is the share of AUTHZ_GRANTED events recorded (denials always are).
	AuditGrantedSample float64
	// TokenCacheSize bounds the verified-token cache (0: off); UserCacheTTL is how long a
	// caller's user record is trusted before it is read again (0: read on every call).
	TokenCacheSize int
	UserCacheTTL   time.Duration
	// StepUpMaxAge: how long after a login its tokens may change credentials without the
	// password (0: never). APIKeyTTL: the lifetime of a key created without an expiry.
	StepUpMaxAge time.Duration
	APIKeyTTL    time.Duration
	// MetricsListen is where /metrics is served ("" when off); AllowedOrigins the browser
	// origins the MCP endpoints accept; HTTPReadTimeout and HTTPIdleTimeout the listener's.
	MetricsListen                    string
	AllowedOrigins                   []string
	HTTPReadTimeout, HTTPIdleTimeout time.Duration
	// TrustedProxies are the proxies whose X-Forwarded-For/Forwarded name the client (none:
	// those headers are ignored).
	TrustedProxies []netip.Prefix
	// HTTPWriteTimeout bounds each write of a response or stream event; MaxSessions and
	// MaxSessionsPerAddress the transport sessions, MaxConnsPerAddress one address's
	// connections (0: no cap).
	HTTPWriteTimeout                                       time.Duration
	MaxSessions, MaxSessionsPerAddress, MaxConnsPerAddress int
	// AnonymousMethods, when set (AnonymousMethodsSet), replace the policy's: the JSON-RPC
	// methods that may arrive over HTTP without a token.
	AnonymousMethods    []string
	AnonymousMethodsSet bool

	// Environment only: secrets are never flags (they would show in ps).
	MasterKey         string
	BootstrapEmail    string
	BootstrapPassword auth.Secret
	Token             auth.Secret
}

// Defaults. Over HTTP the issuer and audience default to the listener's origin and its MCP URL
// (originDefaults), what OAuth clients discover and compare; over stdio and in the CLI, where
// there is no listener, to URNs.
const (
	defaultMongoDB  = "mcpauth"
	defaultIssuer   = "urn:mcpauth"
	defaultAudience = "urn:mcpauth:mcp"
	defaultAlg      = token.AlgEdDSA
	// defaultMetricsListen is loopback on the port OpenTelemetry's Prometheus exporter uses.
	defaultMetricsListen = "127.0.0.1:9464"
)

// envVar binds a flag to its environment variable.
type envVar struct {
	flag, env, usage string
}

var storeFlags = []envVar{
	{"data-dir", "MCPAUTH_DATA_DIR", "data directory: embedded store and master key (default: $XDG_DATA_HOME/mcpauth or ~/.local/share/mcpauth)"},
	{"mongo-uri", "MCPAUTH_MONGO_URI", "MongoDB URI; empty: run the embedded store in the data directory"},
	{"mongo-db", "MCPAUTH_MONGO_DB", "MongoDB database name (default \"mcpauth\")"},
	{"issuer", "MCPAUTH_ISSUER", "issuer (iss of tokens, the authorization server's identifier), an origin such as https://auth.example.com (default: over HTTP the listener's origin, http://127.0.0.1:8080; over stdio \"urn:mcpauth\")"},
	{"audience", "MCPAUTH_AUDIENCE", "resource URI put in aud: the MCP URL clients call (default: the issuer followed by /mcp; over stdio \"urn:mcpauth:mcp\")"},
	{"oauth", "MCPAUTH_OAUTH", "the OAuth 2.1 authorization server MCP clients log in with: auto (on over HTTP when the issuer is an http(s) origin), on or off (default auto)"},
	{"oauth-registration", "MCPAUTH_OAUTH_REGISTRATION", "dynamic client registration (RFC 7591) at /register: open or off (default open; rate-limited per address)"},
	{"sso-connectors", "MCPAUTH_SSO_CONNECTORS", "JSON file of OpenID Connect identity providers the sign-in page offers (single sign-on; see README, Connect your identity provider)"},
	{"oauth-unused-client-ttl", "MCPAUTH_OAUTH_UNUSED_CLIENT_TTL", "how long a dynamically registered client may go without redeeming a code or refreshing before it is deleted, 1s to 720h (default 24h)"},
	{"oauth-sweep-interval", "MCPAUTH_OAUTH_SWEEP_INTERVAL", "how often expired codes and browser sessions and unused clients are deleted from the store, 100ms to 24h (default 1h)"},
	{"oauth-client-metadata", "MCPAUTH_OAUTH_CLIENT_METADATA", "client ID metadata documents (a client_id that is an https URL, fetched from public addresses only): on or off (default on)"},
	{"access-ttl", "MCPAUTH_ACCESS_TTL", "access token lifetime, e.g. 15m (default 15m)"},
	{"refresh-ttl", "MCPAUTH_REFRESH_TTL", "refresh token lifetime with remember_me, e.g. 168h (default 168h)"},
	{"bcrypt-cost", "MCPAUTH_BCRYPT_COST", "bcrypt cost, 4-31 (default 10; below 10 only for tests)"},
	{"signing-alg", "MCPAUTH_SIGNING_ALG", "access token algorithm: EdDSA, ES256 or RS256 (default EdDSA)"},
	{"log-level", "MCPAUTH_LOG_LEVEL", "debug, info, warn or error (default info)"},
	{"redis-url", "MCPAUTH_REDIS_URL", "Redis URL (redis:// or rediss://) shared by instances: one server, a Cluster (redis://h1:p1?addr=h2:p2&addr=h3:p3) or Sentinels (redis://s1:p1?master_name=M&addr=s2:p2); empty: one instance, in-process state"},
	{"redis-mode", "MCPAUTH_REDIS_MODE", "the Redis topology: single, cluster or sentinel (default: from the URL: master_name is sentinel, addr parameters a cluster)"},
	{"policy", "MCPAUTH_POLICY_FILE", "guard policy file (YAML or JSON) for tools beyond mcpauth's own"},
	{"rate-limits", "MCPAUTH_RATE_LIMITS", "rate limits as name=rate/period[/burst],... for login_id, login_addr, refresh, apikey_fail, calls (default login_id=10/1m,login_addr=60/1m/30,refresh=60/1m/30,apikey_fail=20/1m/10,calls=6000/1m/1000)"},
	{"lockout", "MCPAUTH_LOCKOUT", "account lockout: failures/window[/backoff[/max-backoff[/permanent-after]]]; failures lock out the address they come from, permanent-after (1..100) consecutive failures from any address lock the account until an admin unlocks it (default 5/15m/1m/1h/100)"},
	{"audit-retention", "MCPAUTH_AUDIT_RETENTION", "delete audit events older than this at start, e.g. 2160h (default: keep forever)"},
	{"audit-search-timeout", "MCPAUTH_AUDIT_SEARCH_TIMEOUT", "longest one audit search may run, e.g. 10s (default 30s)"},
	{"token-cache-size", "MCPAUTH_TOKEN_CACHE_SIZE", "verified access tokens remembered (by hash), 0 turns the cache off (default 10000)"},
	{"user-cache-ttl", "MCPAUTH_USER_CACHE_TTL", "how long a caller's user record is trusted when no change of it was announced (changes through any instance are seen within a second), at most 1m; 0: read every call (default 30s)"},
	{"audit-granted-sample", "MCPAUTH_AUDIT_GRANTED_SAMPLE", "share of granted tool calls recorded in the audit trail, 0-1 (default 1; denials are always recorded)"},
	{"step-up-max-age", "MCPAUTH_STEP_UP_MAX_AGE", "how long after a login its tokens may create API keys and change MFA or email without the password, at most 1h; 0: always ask (default 5m)"},
	{"apikey-ttl", "MCPAUTH_APIKEY_TTL", "lifetime of an API key created without expires_at, from 1m to 87600h (default 2160h: 90 days; a key that never expires is asked for explicitly)"},
	{"metrics-listen", "MCPAUTH_METRICS_LISTEN", "where /metrics is served, a listener of its own; off: nowhere (default 127.0.0.1:9464)"},
	{"allowed-origins", "MCPAUTH_ALLOWED_ORIGINS", "comma-separated browser origins allowed to call /mcp, /sse and /message, e.g. https://app.example.com (default: none; any other Origin is refused)"},
	{"anonymous-methods", "MCPAUTH_ANONYMOUS_METHODS", "comma-separated JSON-RPC methods that may arrive over HTTP without a token; server/discover goes with initialize; none: nothing, every request needs a token (default: none with the authorization server on, else initialize,ping,tools/list; calls of public tools such as auth_login always may)"},
	{"trusted-proxies", "MCPAUTH_TRUSTED_PROXIES", "comma-separated CIDRs or addresses of the reverse proxies whose X-Forwarded-For (or Forwarded) names the client, e.g. 10.0.0.0/8 (default: none; those headers are ignored)"},
	{"http-read-timeout", "MCPAUTH_HTTP_READ_TIMEOUT", "longest time to read a whole HTTP request, body included (default 30s)"},
	{"http-idle-timeout", "MCPAUTH_HTTP_IDLE_TIMEOUT", "how long an idle keep-alive connection is kept (default 2m)"},
	{"http-write-timeout", "MCPAUTH_HTTP_WRITE_TIMEOUT", "longest time one write of a response or stream event may take; a client that stops reading its stream is dropped after it (default 30s)"},
	{"max-sessions", "MCPAUTH_MAX_SESSIONS", "transport sessions (streamable HTTP and SSE) open at once (default 10000)"},
	{"max-sessions-per-address", "MCPAUTH_MAX_SESSIONS_PER_ADDRESS", "transport sessions open at once from one client address, IPv6 by /64 (default 64)"},
	{"max-conns-per-address", "MCPAUTH_MAX_CONNS_PER_ADDRESS", "connections open at once from one client address, IPv6 by /64, trusted proxies exempt; 0: no cap (default 256)"},
	{"degrade-limits", "MCPAUTH_DEGRADE_LIMITS", "true: with Redis down, use in-process limits (logged loudly) instead of refusing logins"},
}

// registerFlags defines string flags for vars on fs and returns their values.
func registerFlags(fs *flag.FlagSet, vars []envVar) map[string]*string {
	vals := make(map[string]*string, len(vars))
	for _, v := range vars {
		vals[v.flag] = fs.String(v.flag, "", fmt.Sprintf("%s [$%s]", v.usage, v.env))
	}
	return vals
}

// resolve returns each variable's value: the flag if set on the command line, else the
// environment, else "".
func resolve(fs *flag.FlagSet, vars []envVar, vals map[string]*string, getenv func(string) string) map[string]string {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	out := make(map[string]string, len(vars))
	for _, v := range vars {
		if set[v.flag] {
			out[v.flag] = *vals[v.flag]
		} else {
			out[v.flag] = getenv(v.env)
		}
	}
	return out
}

// buildConfig turns resolved values into a checked config.
func buildConfig(vals map[string]string, getenv func(string) string) (config, error) {
	c := config{
		DataDir: vals["data-dir"], MongoURI: vals["mongo-uri"], MongoDB: vals["mongo-db"],
		Issuer: vals["issuer"], Audience: vals["audience"], SigningAlg: vals["signing-alg"],
		LogLevel:          vals["log-level"],
		RedisURL:          vals["redis-url"],
		RedisMode:         vals["redis-mode"],
		PolicyFile:        vals["policy"],
		MasterKey:         getenv("MCPAUTH_MASTER_KEY"),
		BootstrapEmail:    getenv("MCPAUTH_BOOTSTRAP_ADMIN_EMAIL"),
		BootstrapPassword: auth.Secret(getenv("MCPAUTH_BOOTSTRAP_ADMIN_PASSWORD")),
		Token:             auth.Secret(getenv("MCPAUTH_TOKEN")),
	}
	if c.Token == "" {
		c.Token = auth.Secret(getenv("MCPAUTH_API_KEY"))
	}
	if c.MongoDB == "" {
		c.MongoDB = defaultMongoDB
	}
	if err := parseLimits(&c, vals["rate-limits"]); err != nil {
		return c, err
	}
	if err := parseLockout(&c, vals["lockout"]); err != nil {
		return c, err
	}
	var err error
	if v := vals["audit-search-timeout"]; v != "" {
		if c.AuditSearchTimeout, err = time.ParseDuration(v); err != nil || c.AuditSearchTimeout <= 0 {
			return c, fmt.Errorf("--audit-search-timeout: want a positive duration, got %q", v)
		}
	}
	if v := vals["audit-retention"]; v != "" {
		if c.AuditRetention, err = time.ParseDuration(v); err != nil || c.AuditRetention < time.Hour {
			return c, fmt.Errorf("--audit-retention: want a duration of at least 1h, got %q", v)
		}
	}
	c.TokenCacheSize = token.DefaultCacheSize
	if v := vals["token-cache-size"]; v != "" {
		if c.TokenCacheSize, err = strconv.Atoi(v); err != nil || c.TokenCacheSize < 0 || c.TokenCacheSize > 10_000_000 {
			return c, fmt.Errorf("--token-cache-size: want an integer from 0 to 10000000, got %q", v)
		}
	}
	c.UserCacheTTL = auth.DefaultUserCacheTTL
	if v := vals["user-cache-ttl"]; v != "" {
		if c.UserCacheTTL, err = time.ParseDuration(v); err != nil || c.UserCacheTTL < 0 || c.UserCacheTTL > time.Minute {
			return c, fmt.Errorf("--user-cache-ttl: want a duration from 0 to 1m, got %q", v)
		}
	}
	c.AuditGrantedSample = 1
	if v := vals["audit-granted-sample"]; v != "" {
		if c.AuditGrantedSample, err = strconv.ParseFloat(v, 64); err != nil || c.AuditGrantedSample < 0 || c.AuditGrantedSample > 1 {
			return c, fmt.Errorf("--audit-granted-sample: want a number from 0 to 1, got %q", v)
		}
	}
	switch vals["degrade-limits"] {
	case "", "false":
	case "true":
		c.DegradeLimits = true
	default:
		return c, fmt.Errorf("--degrade-limits: want true or false, got %q", vals["degrade-limits"])
	}
	c.issuerSet, c.audienceSet = c.Issuer != "", c.Audience != ""
	if c.Issuer == "" {
		c.Issuer = defaultIssuer
	}
	if c.Audience == "" {
		c.Audience = defaultAudience
		if isOrigin(c.Issuer) {
			c.Audience = c.Issuer + mcpPath
		}
	}
	switch c.OAuth = cmp.Or(vals["oauth"], "auto"); c.OAuth {
	case "auto", "off":
	case "on":
		if !isOrigin(c.Issuer) && c.issuerSet {
			return c, fmt.Errorf("--oauth=on: the issuer must be an http(s) origin such as https://auth.example.com, got %q", c.Issuer)
		}
	default:
		return c, fmt.Errorf("--oauth: want auto, on or off, got %q", c.OAuth)
	}
	switch vals["oauth-client-metadata"] {
	case "", "on":
		c.OAuthDocuments = true
	case "off":
	default:
		return c, fmt.Errorf("--oauth-client-metadata: want on or off, got %q", vals["oauth-client-metadata"])
	}
	c.OAuthDocumentsTestCA = getenv("MCPAUTH_OAUTH_CIMD_TEST_CA")
	c.SSOConnectors = vals["sso-connectors"]
	switch vals["oauth-registration"] {
	case "", "open":
		c.OAuthRegistration = true
	case "off":
	default:
		return c, fmt.Errorf("--oauth-registration: want open or off, got %q", vals["oauth-registration"])
	}
	if c.OAuthUnusedClientTTL, err = parseDuration("oauth-unused-client-ttl", vals["oauth-unused-client-ttl"],
		oauth.DefaultUnusedClientTTL, time.Second, 720*time.Hour); err != nil {
		return c, err
	}
	if c.OAuthSweepInterval, err = parseDuration("oauth-sweep-interval", vals["oauth-sweep-interval"],
		oauth.DefaultSweepInterval, 100*time.Millisecond, 24*time.Hour); err != nil {
		return c, err
	}
	if c.SigningAlg == "" {
		c.SigningAlg = defaultAlg
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.AccessTTL, err = parseDuration("access-ttl", vals["access-ttl"], auth.DefaultAccessTTL, time.Second, 24*time.Hour); err != nil {
		return c, err
	}
	if c.RefreshTTL, err = parseDuration("refresh-ttl", vals["refresh-ttl"], auth.DefaultRefreshTTL, time.Minute, 365*24*time.Hour); err != nil {
		return c, err
	}
	if c.StepUpMaxAge, err = parseDuration("step-up-max-age", vals["step-up-max-age"], auth.DefaultStepUpMaxAge, 0, time.Hour); err != nil {
		return c, err
	}
	if c.APIKeyTTL, err = parseDuration("apikey-ttl", vals["apikey-ttl"], auth.DefaultAPIKeyTTL, time.Minute, 87600*time.Hour); err != nil {
		return c, err
	}
	if c.HTTPReadTimeout, err = parseDuration("http-read-timeout", vals["http-read-timeout"], mcp.DefaultReadTimeout, time.Second, time.Hour); err != nil {
		return c, err
	}
	if c.HTTPIdleTimeout, err = parseDuration("http-idle-timeout", vals["http-idle-timeout"], mcp.DefaultIdleTimeout, time.Second, time.Hour); err != nil {
		return c, err
	}
	if c.HTTPWriteTimeout, err = parseDuration("http-write-timeout", vals["http-write-timeout"], mcp.DefaultWriteTimeout, time.Second, time.Hour); err != nil {
		return c, err
	}
	if c.MaxSessions, err = parseCount("max-sessions", vals["max-sessions"], mcp.DefaultMaxSessions, 1); err != nil {
		return c, err
	}
	if c.MaxSessionsPerAddress, err = parseCount("max-sessions-per-address", vals["max-sessions-per-address"], mcp.DefaultMaxSessionsPerAddress, 1); err != nil {
		return c, err
	}
	if c.MaxConnsPerAddress, err = parseCount("max-conns-per-address", vals["max-conns-per-address"], mcp.DefaultMaxConnsPerAddress, 0); err != nil {
		return c, err
	}
	switch c.MetricsListen = vals["metrics-listen"]; c.MetricsListen {
	case "":
		c.MetricsListen = defaultMetricsListen
	case "off":
		c.MetricsListen = ""
	}
	if c.AllowedOrigins, err = parseOrigins(vals["allowed-origins"]); err != nil {
		return c, err
	}
	if c.TrustedProxies, err = parseTrustedProxies(vals["trusted-proxies"]); err != nil {
		return c, err
	}
	if c.AnonymousMethods, c.AnonymousMethodsSet, err = parseAnonymousMethods(vals["anonymous-methods"]); err != nil {
		return c, err
	}
	c.BcryptCost = password.DefaultCost
	if s := vals["bcrypt-cost"]; s != "" {
		if c.BcryptCost, err = strconv.Atoi(s); err != nil || c.BcryptCost < 4 || c.BcryptCost > 31 {
			return c, fmt.Errorf("--bcrypt-cost: want an integer from 4 to 31, got %q", s)
		}
	}
	switch c.SigningAlg {
	case token.AlgEdDSA, token.AlgES256, token.AlgRS256:
	default:
		return c, fmt.Errorf("--signing-alg: want EdDSA, ES256 or RS256, got %q", c.SigningAlg)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return c, fmt.Errorf("--log-level: want debug, info, warn or error, got %q", c.LogLevel)
	}
	if c.DataDir == "" {
		if c.DataDir, err = defaultDataDir(getenv); err != nil {
			return c, err
		}
	}
	return c, nil
}

// parseOrigins reads a comma-separated list of origins: scheme://host[:port], nothing more
// (an Origin header is compared as sent: a path or a trailing slash would never match).
func parseOrigins(s string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(s, ",") {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" ||
			u.Fragment != "" || u.User != nil || o != u.Scheme+"://"+u.Host {
			return nil, fmt.Errorf("--allowed-origins: %q is not an origin (scheme://host[:port], e.g. https://app.example.com)", o)
		}
		out = append(out, o)
	}
	return out, nil
}

// mcpPath is where streamable HTTP is served (mcp.NewHTTP).
const mcpPath = "/mcp"

// isOrigin reports an http(s) origin: scheme and host, no path, query or trailing slash (what
// an OAuth issuer must be).
func isOrigin(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Path == "" &&
		u.RawQuery == "" && u.Fragment == "" && u.User == nil && !strings.HasSuffix(s, "/")
}

// originDefaults gives an HTTP server the issuer and audience OAuth clients expect when none
// is configured: the listener's origin (a wildcard address is named by 127.0.0.1: behind a
// public name, set MCPAUTH_ISSUER) and its MCP URL.
func (c *config) originDefaults(addr net.Addr) {
	if !c.issuerSet {
		host, port, _ := net.SplitHostPort(addr.String())
		if ip, err := netip.ParseAddr(host); err != nil || ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		c.Issuer = "http://" + net.JoinHostPort(host, port)
	}
	if !c.audienceSet && isOrigin(c.Issuer) {
		c.Audience = c.Issuer + mcpPath
	}
}

// oauthOn reports whether the authorization server runs: over HTTP, unless off, when the
// issuer is an origin (a URN issuer is for stdio and tokens minted elsewhere).
func (c *config) oauthOn(stdio bool) bool {
	return !stdio && c.OAuth != "off" && isOrigin(c.Issuer)
}

// parseAnonymousMethods reads --anonymous-methods: "" is unset (the policy's list stands),
// "none" the empty list, anything else JSON-RPC method names. A capability method
// (resources/read...) is refused by Policy.Validate; tools/call is refused here, since whether a
// call may come without a token is the tool's rule (public), not the method's.
func parseAnonymousMethods(s string) ([]string, bool, error) {
	switch s = strings.TrimSpace(s); s {
	case "":
		return nil, false, nil
	case "none":
		return []string{}, true, nil
	}
	out := []string{}
	for _, m := range strings.Split(s, ",") {
		switch m = strings.TrimSpace(m); {
		case m == "":
		case m == "tools/call":
			return nil, false, errors.New("--anonymous-methods: tools/call is decided per tool: give the tool a public rule in the policy instead")
		case strings.ContainsAny(m, " \t\"'") || len(m) > 64:
			return nil, false, fmt.Errorf("--anonymous-methods: %q is not a JSON-RPC method name (e.g. initialize,ping,tools/list)", m)
		case !slices.Contains(out, m):
			out = append(out, m)
		}
	}
	return out, true, nil
}

// parseTrustedProxies reads a comma-separated list of CIDRs or single addresses (a /32 or /128).
func parseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if a, err := netip.ParseAddr(p); err == nil && a.Zone() == "" {
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is not a CIDR or an address (e.g. 10.0.0.0/8, 192.0.2.1, 2001:db8::/32)", p)
		}
		out = append(out, prefix.Masked())
	}
	return out, nil
}

// parseCount reads a limit from lo to 10,000,000 (def when s is empty).
func parseCount(name, s string, def, lo int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > 10_000_000 {
		return 0, fmt.Errorf("--%s: want an integer from %d to 10000000, got %q", name, lo, s)
	}
	return n, nil
}

func parseDuration(name, s string, def, lo, hi time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		return 0, fmt.Errorf("--%s: want a duration from %s to %s (e.g. 15m), got %q", name, lo, hi, s)
	}
	return d, nil
}

func defaultDataDir(getenv func(string) string) (string, error) {
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "mcpauth"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: set MCPAUTH_DATA_DIR (%w)", err)
	}
	return filepath.Join(home, ".local", "share", "mcpauth"), nil
}

// ensureDataDir creates the data directory (0700) and proves it is writable.
func ensureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s is not usable: %w", dir, errors.Unwrap(err))
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, errors.Unwrap(err))
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

const masterKeyFile = "master.key"

// loadMasterKey returns the 32-byte master key: MCPAUTH_MASTER_KEY (base64) if set, else the
// key file in the data directory, created (0600) on first start. A key file others can read is
// refused.
func loadMasterKey(c config) ([]byte, error) {
	if c.MasterKey != "" {
		return decodeMasterKey("MCPAUTH_MASTER_KEY", c.MasterKey)
	}
	path := filepath.Join(c.DataDir, masterKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, token.MasterKeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create master key file: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("write master key file: %w", werr)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read master key file: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s is accessible by others (mode %o); run chmod 600 on it", path, st.Mode().Perm())
	}
	return decodeMasterKey(path, strings.TrimSpace(string(b)))
}

func decodeMasterKey(source, s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == token.MasterKeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s: master key must be %d bytes, base64-encoded (generate one with: openssl rand -base64 32)", source, token.MasterKeySize)
}

// redactURI hides the password of a MongoDB URI for messages.
func redactURI(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparseable URI)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		}
	}
	// A Sentinel URL carries the Redis password in its query (go-redis's ParseFailoverURL).
	if q := u.Query(); q.Has("password") || q.Has("sentinel_password") {
		for _, k := range []string{"password", "sentinel_password"} {
			if q.Has(k) {
				q.Set(k, "REDACTED")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// DefaultCallLimit bounds the guarded tool calls of one identity (per instance without Redis).
var DefaultCallLimit = throttle.Limit{Rate: 6000, Period: time.Minute, Burst: 1000}

func parseLimits(c *config, spec string) error {
	c.Limits, c.CallLimit = auth.DefaultLimits, DefaultCallLimit
	if spec == "" {
		return nil
	}
	targets := map[string]*throttle.Limit{
		"login_id": &c.Limits.LoginPerIdentifier, "login_addr": &c.Limits.LoginPerAddress,
		"refresh": &c.Limits.Refresh, "apikey_fail": &c.Limits.APIKeyFailures, "calls": &c.CallLimit,
	}
	for _, item := range strings.Split(spec, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(item), "=")
		target := targets[name]
		if !ok || target == nil {
			return fmt.Errorf("--rate-limits: %q: want name=rate/period with name one of login_id, login_addr, refresh, apikey_fail, calls", item)
		}
		l, err := throttle.ParseLimit(value)
		if err != nil {
			return fmt.Errorf("--rate-limits: %w", err)
		}
		*target = l
	}
	return nil
}

func parseLockout(c *config, spec string) error {
	c.Lockout = throttle.DefaultPolicy
	if spec == "" {
		return nil
	}
	parts := strings.Split(spec, "/")
	bad := fmt.Errorf("--lockout: want failures/window[/backoff[/max-backoff[/permanent-after]]] (failures and permanent-after 1..100), e.g. 5/15m/1m/1h/100, got %q", spec)
	if len(parts) < 2 || len(parts) > 5 {
		return bad
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 1 || n > 100 {
		return bad
	}
	c.Lockout.Attempts = n
	if len(parts) == 5 { // NIST SP 800-63B: at most 100 consecutive failures
		if c.Lockout.PermanentAfter, err = strconv.Atoi(parts[4]); err != nil || c.Lockout.PermanentAfter < 1 || c.Lockout.PermanentAfter > 100 {
			return bad
		}
		parts = parts[:4]
	}
	durs := []*time.Duration{&c.Lockout.Window, &c.Lockout.Backoff, &c.Lockout.MaxBackoff}
	for i, p := range parts[1:] {
		d, err := time.ParseDuration(p)
		if err != nil || d <= 0 {
			return bad
		}
		*durs[i] = d
	}
	c.Lockout.MaxBackoff = max(c.Lockout.MaxBackoff, c.Lockout.Backoff)
	return nil
}
