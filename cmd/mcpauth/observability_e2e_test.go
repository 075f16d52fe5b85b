package main

// End-to-end test of the operational endpoints: /metrics (Prometheus exposition of the
// OpenTelemetry metrics), /healthz and /readyz.

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// metricSample is one line of a Prometheus exposition.
type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// scrape fetches the metrics listener's /metrics and parses it.
func scrape(t *testing.T, metricsURL string) []metricSample {
	t.Helper()
	r := mcptest.Get(t, metricsURL)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	var out []metricSample
	for _, line := range strings.Split(string(r.Body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("/metrics: not a sample line: %q", line)
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		s := metricSample{name: m[1], labels: map[string]string{}, value: v}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out = append(out, s)
	}
	return out
}

// metricValue sums the samples of name whose labels include want ("name=value" pairs); ok is
// false when there is none.
func metricValue(samples []metricSample, name string, want ...string) (sum float64, ok bool) {
next:
	for _, s := range samples {
		if s.name != name {
			continue
		}
		for _, kv := range want {
			k, v, _ := strings.Cut(kv, "=")
			if s.labels[k] != v {
				continue next
			}
		}
		sum += s.value
		ok = true
	}
	return sum, ok
}

func TestShouldExposeMovingCountersAndReadiness(t *testing.T) {
	t.Parallel()
	in := newInstance(t)
	// Small limits, so that a few calls reach them: a lockout after 2 failures, 4 logins a
	// minute per identifier.
	in.Extra = append(in.Extra, "MCPAUTH_LOCKOUT=2/15m", "MCPAUTH_RATE_LIMITS=login_id=4/1m")
	srv := startHTTP(t, in, "http")

	if r := mcptest.Get(t, srv.URL+"/healthz"); r.Status != http.StatusOK {
		t.Fatalf("GET /healthz: %d %s", r.Status, r.Body)
	}
	if rd := getReady(t, srv.URL); rd.Status != http.StatusOK || !rd.Ready || rd.Checks["mongodb"] != "ok" || rd.Checks["audit"] != "ok" {
		t.Fatalf("/readyz: %+v", rd)
	}

	if srv.MetricsURL == "" {
		t.Fatalf("the server logged no metrics listener; stderr:\n%s", srv.Stderr)
	}
	// Not on the public listener: its labels (failed logins by reason) would tell a stranger
	// whether an account exists.
	if r := mcptest.Get(t, srv.URL+"/metrics"); r.Status != http.StatusNotFound {
		t.Errorf("GET /metrics on the public listener: %d, want 404", r.Status)
	}
	before := scrape(t, srv.MetricsURL)
	for _, name := range []string{"mcpauth_audit_queue_depth", "mcpauth_audit_spill_bytes"} {
		if v, ok := metricValue(before, name); !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want present and 0", name, v, ok)
		}
	}

	c := dialHTTP(t, srv)
	c.Login(t, nil, in.Owner())
	wrong := args{"email": in.OwnerEmail, "password": "wrong-Password-42"}
	c.Call(t, "auth_login", wrong).WantError(t, "INVALID_CREDENTIALS")
	c.Call(t, "auth_login", wrong).WantError(t, "INVALID_CREDENTIALS")
	c.Call(t, "auth_login", in.Owner()).WantError(t, "INVALID_CREDENTIALS") // locked: refused unchecked
	ghost := args{"email": "ghost@example.com", "password": "wrong-Password-42"}
	for range 4 {
		c.Call(t, "auth_login", ghost).WantError(t, "INVALID_CREDENTIALS")
	}
	wantRateLimited(t, c.Call(t, "auth_login", ghost), 60)
	// A call the guard's middleware denies: an admin's token still carries users:read after
	// the owner takes the role away.
	password := "e2e-Metrics-" + randomHex(8)
	admin := c.CreateUser(t, "admin@example.com", password, "admin")
	ac := dialHTTP(t, srv)
	ac.Login(t, nil, args{"email": "admin@example.com", "password": password})
	decode[userListResult](t, ac.Call(t, "user_list", nil))
	decode[okResult](t, c.Call(t, "role_revoke", args{"user_id": admin.ID, "role": "admin"}))
	ac.Call(t, "user_list", nil).WantError(t, "PERMISSION_DENIED")
	calls := 14 // tool calls the guard decided

	after := scrape(t, srv.MetricsURL)
	delta := func(name string, labels ...string) float64 {
		a, ok := metricValue(after, name, labels...)
		if !ok {
			t.Errorf("/metrics has no %s{%s}", name, strings.Join(labels, ","))
		}
		b, _ := metricValue(before, name, labels...)
		return a - b
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mcpauth_auth_logins_total", []string{"result=success"}, 2},
		{"mcpauth_auth_logins_total", []string{"result=INVALID_CREDENTIALS"}, 7},
		{"mcpauth_auth_logins_total", []string{"result=RATE_LIMITED"}, 1},
		{"mcpauth_auth_login_duration_seconds_count", nil, 10},
		{"mcpauth_auth_rate_limited_total", nil, 1},
		{"mcpauth_auth_lockout_refusals_total", nil, 1},
		{"mcpauth_guard_decisions_total", []string{"outcome=granted"}, float64(calls - 1)},
		{"mcpauth_guard_decisions_total", []string{"outcome=PERMISSION_DENIED"}, 1},
		{"mcpauth_guard_decision_duration_seconds_count", nil, float64(calls)},
	} {
		if got := delta(tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s{%s} moved by %v, want %v", tc.name, strings.Join(tc.labels, ","), got, tc.want)
		}
	}
	if got := delta("mcpauth_auth_validations_total"); got < 1 {
		t.Errorf("mcpauth_auth_validations_total moved by %v, want more", got)
	}
	if _, ok := metricValue(after, "mcpauth_audit_queue_depth"); !ok {
		t.Errorf("/metrics lost mcpauth_audit_queue_depth")
	}
	for _, s := range after {
		for k, v := range s.labels {
			if strings.Contains(v, in.OwnerPassword) || strings.Contains(v, c.Bearer()) || strings.Contains(v, "@") {
				t.Errorf("metric %s has label %s=%q: no secrets or identifiers in labels", s.name, k, v)
			}
		}
	}
}
