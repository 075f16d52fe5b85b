package app

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/throttle"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func parseServe(t *testing.T, args []string, env map[string]string) (config, error) {
	t.Helper()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vals := registerFlags(fs, storeFlags)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse: %v", err)
	}
	return buildConfig(resolve(fs, storeFlags, vals, envOf(env)), envOf(env))
}

func TestShouldLetFlagsWinOverEnvironment(t *testing.T) {
	env := map[string]string{"MCPAUTH_ACCESS_TTL": "5m", "MCPAUTH_ISSUER": "https://env.example", "MCPAUTH_DATA_DIR": "/tmp/x"}
	c, err := parseServe(t, []string{"--access-ttl", "2m"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessTTL != 2*time.Minute {
		t.Errorf("access ttl = %s, want the flag's 2m", c.AccessTTL)
	}
	if c.Issuer != "https://env.example" {
		t.Errorf("issuer = %q, want the environment's", c.Issuer)
	}
}

func TestShouldApplyDefaults(t *testing.T) {
	c, err := parseServe(t, nil, map[string]string{"HOME": "/home/ada", "XDG_DATA_HOME": "/xdg"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != defaultIssuer || c.Audience != defaultAudience || c.MongoDB != "mcpauth" ||
		c.BcryptCost != 10 || c.AccessTTL != 15*time.Minute || c.SigningAlg != "EdDSA" || c.DataDir != "/xdg/mcpauth" ||
		c.TokenCacheSize != 10_000 || c.UserCacheTTL != auth.DefaultUserCacheTTL {
		t.Fatalf("defaults wrong: %+v", c)
	}
}

func TestShouldKeepMetricsOnLoopbackAndBrowsersOutByDefault(t *testing.T) {
	c, err := parseServe(t, nil, map[string]string{"MCPAUTH_DATA_DIR": "/tmp/x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsListen != "127.0.0.1:9464" || len(c.AllowedOrigins) != 0 || c.StepUpMaxAge != auth.DefaultStepUpMaxAge ||
		c.APIKeyTTL != auth.DefaultAPIKeyTTL || c.HTTPReadTimeout != 30*time.Second {
		t.Fatalf("defaults: metrics %q, origins %v, step-up %s, key ttl %s, read timeout %s",
			c.MetricsListen, c.AllowedOrigins, c.StepUpMaxAge, c.APIKeyTTL, c.HTTPReadTimeout)
	}
	if c.HTTPWriteTimeout != 30*time.Second || c.MaxSessions != 10_000 || c.MaxSessionsPerAddress != 64 || c.MaxConnsPerAddress != 256 {
		t.Fatalf("defaults: write timeout %s, sessions %d, per address %d, connections per address %d",
			c.HTTPWriteTimeout, c.MaxSessions, c.MaxSessionsPerAddress, c.MaxConnsPerAddress)
	}
	c, err = parseServe(t, []string{"--metrics-listen", "off", "--allowed-origins", " https://a.example, http://localhost:3000 "},
		map[string]string{"MCPAUTH_DATA_DIR": "/tmp/x", "MCPAUTH_STEP_UP_MAX_AGE": "0"})
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsListen != "" || strings.Join(c.AllowedOrigins, " ") != "https://a.example http://localhost:3000" || c.StepUpMaxAge != 0 {
		t.Fatalf("set: metrics %q, origins %v, step-up %s", c.MetricsListen, c.AllowedOrigins, c.StepUpMaxAge)
	}
}

func TestShouldRejectBadSettingsWithTheirName(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"duration that does not parse", []string{"--access-ttl", "soon"}, "--access-ttl"},
		{"duration below the minimum", []string{"--access-ttl", "1ms"}, "--access-ttl"},
		{"bcrypt cost out of range", []string{"--bcrypt-cost", "3"}, "--bcrypt-cost"},
		{"unknown algorithm", []string{"--signing-alg", "HS256"}, "--signing-alg"},
		{"unknown log level", []string{"--log-level", "loud"}, "--log-level"},
		{"negative token cache", []string{"--token-cache-size", "-1"}, "--token-cache-size"},
		{"user cache trusted too long", []string{"--user-cache-ttl", "1h"}, "--user-cache-ttl"},
		{"permanent lockout later than NIST's 100 failures", []string{"--lockout", "5/15m/1m/1h/101"}, "--lockout"},
		{"permanent lockout after no failure", []string{"--lockout", "5/15m/1m/1h/0"}, "--lockout"},
		{"permanent lockout after a duration", []string{"--lockout", "5/15m/1m/1h/2h"}, "--lockout"},
		{"lockout with a sixth part", []string{"--lockout", "5/15m/1m/1h/100/1"}, "--lockout"},
		{"an origin with a path", []string{"--allowed-origins", "https://app.example.com/"}, "--allowed-origins"},
		{"an origin without a scheme", []string{"--allowed-origins", "app.example.com"}, "--allowed-origins"},
		{"a wildcard origin", []string{"--allowed-origins", "*"}, "--allowed-origins"},
		{"an origin of another scheme", []string{"--allowed-origins", "ftp://app.example.com"}, "--allowed-origins"},
		{"a trusted proxy that is not an address", []string{"--trusted-proxies", "proxy.example.com"}, "--trusted-proxies"},
		{"a trusted proxy CIDR with a bad length", []string{"--trusted-proxies", "10.0.0.0/33"}, "--trusted-proxies"},
		{"a bad trusted proxy after a good one", []string{"--trusted-proxies", "10.0.0.0/8, 192.0.2.300"}, "--trusted-proxies"},
		{"a trusted proxy with a port", []string{"--trusted-proxies", "10.0.0.1:443"}, "--trusted-proxies"},
		{"tools/call as an anonymous method", []string{"--anonymous-methods", "initialize,tools/call"}, "--anonymous-methods"},
		{"an anonymous method with a space", []string{"--anonymous-methods", "initialize, tools list"}, "--anonymous-methods"},
		{"a read timeout below a second", []string{"--http-read-timeout", "10ms"}, "--http-read-timeout"},
		{"a write timeout below a second", []string{"--http-write-timeout", "10ms"}, "--http-write-timeout"},
		{"no sessions at all", []string{"--max-sessions", "0"}, "--max-sessions"},
		{"sessions per address that are not a number", []string{"--max-sessions-per-address", "many"}, "--max-sessions-per-address"},
		{"a negative connection cap", []string{"--max-conns-per-address", "-1"}, "--max-conns-per-address"},
		{"step-up age over an hour", []string{"--step-up-max-age", "2h"}, "--step-up-max-age"},
		{"an API key lifetime below a minute", []string{"--apikey-ttl", "1s"}, "--apikey-ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseServe(t, tt.args, map[string]string{"MCPAUTH_DATA_DIR": "/tmp/x"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestShouldParseLockoutSpecs(t *testing.T) {
	tests := []struct {
		name string
		spec string
		want throttle.Policy
	}{
		{"no spec is the default policy", "", throttle.DefaultPolicy},
		{"failures and window keep the default back-off and permanent lock", "7/10m",
			throttle.Policy{Attempts: 7, Window: 10 * time.Minute, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 100}},
		{"a longest lock shorter than the first is raised to it", "3/1m/2h/1h",
			throttle.Policy{Attempts: 3, Window: time.Minute, Backoff: 2 * time.Hour, MaxBackoff: 2 * time.Hour, PermanentAfter: 100}},
		{"a fifth part sets the permanent lock", "5/15m/1m/1h/20",
			throttle.Policy{Attempts: 5, Window: 15 * time.Minute, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 20}},
		{"the permanent lock may come after NIST's 100", "100/15m/1m/1h/100",
			throttle.Policy{Attempts: 100, Window: 15 * time.Minute, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 100}},
		{"the permanent lock may come after one failure", "5/15m/1m/1h/1",
			throttle.Policy{Attempts: 5, Window: 15 * time.Minute, Backoff: time.Minute, MaxBackoff: time.Hour, PermanentAfter: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c config
			if err := parseLockout(&c, tt.spec); err != nil {
				t.Fatal(err)
			}
			if c.Lockout != tt.want {
				t.Fatalf("lockout %q = %+v, want %+v", tt.spec, c.Lockout, tt.want)
			}
		})
	}
}

func TestShouldCreateTheMasterKeyFileOnceWithOwnerOnlyMode(t *testing.T) {
	dir := t.TempDir()
	c := config{DataDir: dir}
	k1, err := loadMasterKey(c)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, masterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %o, want 600", st.Mode().Perm())
	}
	k2, err := loadMasterKey(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(k1) != string(k2) || len(k1) != 32 {
		t.Fatal("second load did not return the same 32-byte key")
	}
	if err := os.Chmod(filepath.Join(dir, masterKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadMasterKey(c); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key file was accepted: %v", err)
	}
}

func TestShouldRejectAMasterKeyOfTheWrongSize(t *testing.T) {
	if _, err := loadMasterKey(config{MasterKey: "c2hvcnQ="}); err == nil {
		t.Fatal("a 5-byte master key was accepted")
	}
	if _, err := loadMasterKey(config{MasterKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}); err != nil {
		t.Fatalf("a valid 32-byte key was refused: %v", err)
	}
}

func TestShouldNeverPrintAStorePassword(t *testing.T) {
	for _, uri := range []string{
		"mongodb://app:s3cret@db1:27017/?replicaSet=rs0",
		"rediss://default:s3cret@redis.example:6380",
		"redis://sentinel:s3cret@10.0.0.1:26379?master_name=m&password=s3cret&addr=10.0.0.2:26379", // the Redis password in the query
		"redis://10.0.0.1:26379?master_name=m&sentinel_password=s3cret",
	} {
		if got := redactURI(uri); strings.Contains(got, "s3cret") || !strings.Contains(got, "REDACTED") {
			t.Errorf("redacted %q = %q", uri, got)
		}
	}
}

func TestShouldParseThrottleSettings(t *testing.T) {
	c, err := parseServe(t, []string{"--rate-limits", "login_id=3/1m,calls=100/1s/50", "--lockout", "7/10m/30s/2h", "--degrade-limits", "true"},
		map[string]string{"MCPAUTH_DATA_DIR": "/tmp/x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.LoginPerIdentifier.Rate != 3 || c.CallLimit.Burst != 50 || c.Limits.Refresh != auth.DefaultLimits.Refresh {
		t.Errorf("limits = %+v, calls %+v", c.Limits, c.CallLimit)
	}
	if c.Lockout.Attempts != 7 || c.Lockout.Window != 10*time.Minute || c.Lockout.Backoff != 30*time.Second ||
		c.Lockout.MaxBackoff != 2*time.Hour || c.Lockout.PermanentAfter != 100 || !c.DegradeLimits {
		t.Errorf("lockout = %+v, degrade %v", c.Lockout, c.DegradeLimits)
	}
	for _, bad := range [][]string{
		{"--rate-limits", "logins=3/1m"}, {"--rate-limits", "login_id=3"}, {"--lockout", "0/1m"},
		{"--lockout", "500/1m"}, {"--lockout", "5"}, {"--degrade-limits", "maybe"},
	} {
		if _, err := parseServe(t, bad, map[string]string{"MCPAUTH_DATA_DIR": "/tmp/x"}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestShouldParseTrustedProxies(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  string
		want string
	}{
		{"no trusted proxies by default", "", ""},
		{"CIDRs are kept, masked", " 10.1.2.3/8, 2001:db8::1/32 ", "10.0.0.0/8 2001:db8::/32"},
		{"a single address is its /32 or /128", "192.0.2.1,::ffff:192.0.2.2,2001:db8::1", "192.0.2.1/32 192.0.2.2/32 2001:db8::1/128"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServe(t, nil, map[string]string{"MCPAUTH_DATA_DIR": "/tmp/x", "MCPAUTH_TRUSTED_PROXIES": tt.env})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range c.TrustedProxies {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != tt.want {
				t.Fatalf("trusted proxies = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestShouldParseAnonymousMethods(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     string
		wantSet bool
		want    string
	}{
		{"unset leaves the policy's list", "", false, ""},
		{"none is the empty list: every request needs a token", "none", true, ""},
		{"a list, trimmed and without repeats", " initialize, ping ,tools/list,server/discover,ping ", true, "initialize ping tools/list server/discover"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseServe(t, nil, map[string]string{"MCPAUTH_DATA_DIR": "/tmp/x", "MCPAUTH_ANONYMOUS_METHODS": tt.env})
			if err != nil {
				t.Fatal(err)
			}
			if c.AnonymousMethodsSet != tt.wantSet || strings.Join(c.AnonymousMethods, " ") != tt.want {
				t.Fatalf("anonymous methods = %q (set %v), want %q (set %v)", c.AnonymousMethods, c.AnonymousMethodsSet, tt.want, tt.wantSet)
			}
		})
	}
}
