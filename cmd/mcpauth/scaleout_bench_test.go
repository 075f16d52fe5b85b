package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// Through HAProxy (deploy/haproxy.cfg) against one, two and three instances in one run, beside
// the same load sent to one instance directly (the balancer hop's cost): run with
//
//	go test ./cmd/mcpauth/ -run '^$' -bench Balancer -benchtime 5s
//
// On a 2-core machine three instances share the cores the load generator and HAProxy use too:
// what this shows is that the balancer's hop costs little and that adding instances loses
// nothing, not a linear speed-up.
func BenchmarkThroughTheBalancer(b *testing.B) {
	f := startFleet(b, "redis://"+startRedis(b), "MCPAUTH_RATE_LIMITS=calls=100000000/1m/10000000")
	tok := mcptest.DialHTTP(b, f.front).Login(b, nil, f.owner)
	rates := map[string]float64{}
	run := func(name, url string) {
		b.Run(name, func(b *testing.B) {
			rates[name] = parallelCalls(b, url, func(ctx context.Context, c *http.Client) (bool, string) {
				return statelessCall(ctx, c, url, tok.AccessToken, "auth_whoami", nil)
			})
		})
	}
	f.lb.SetMaint(b, "i2", true)
	f.lb.SetMaint(b, "i3", true)
	run("direct/instances=1", f.srv[0].URL)
	run("balancer/instances=1", f.lb.URL)
	f.lb.SetMaint(b, "i2", false)
	f.lb.AwaitUp(b, "ready", 2, 10*time.Second)
	run("balancer/instances=2", f.lb.URL)
	f.lb.SetMaint(b, "i3", false)
	f.lb.AwaitUp(b, "ready", 3, 10*time.Second)
	run("balancer/instances=3", f.lb.URL)
	base := rates["direct/instances=1"]
	for _, n := range []string{"balancer/instances=1", "balancer/instances=2", "balancer/instances=3"} {
		b.Logf("%s: %.0f calls/s, %.2f× the direct baseline (%.0f calls/s)", n, rates[n], rates[n]/base, base)
	}
}

// Password logins (bcrypt cost 10, the default) through the balancer against one, two and
// three instances: logins per minute.
func BenchmarkPasswordLoginsThroughTheBalancer(b *testing.B) {
	f := startFleet(b, "redis://"+startRedis(b), "MCPAUTH_BCRYPT_COST=10",
		"MCPAUTH_RATE_LIMITS=login_id=100000000/1m/10000000,login_addr=100000000/1m/10000000")
	// One account per caller: concurrent checks of one account's password count against its
	// lockout (in flight, they are attempts), which is not what this measures.
	owner := mcptest.DialHTTP(b, f.front)
	owner.Login(b, nil, f.owner)
	const callers = 64
	users := make([]args, callers)
	for i := range users {
		users[i] = args{"email": fmt.Sprintf("login%d@example.com", i), "password": "Login-password-123"}
		owner.CreateUser(b, users[i]["email"].(string), "Login-password-123", "viewer")
	}
	var next atomic.Int64
	rates := map[int]float64{}
	for n := 1; n <= 3; n++ {
		for i, name := range []string{"i1", "i2", "i3"} {
			f.lb.SetMaint(b, name, i >= n)
		}
		f.lb.AwaitUp(b, "ready", n, 10*time.Second)
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			perSecond := parallelCalls(b, f.lb.URL, func(ctx context.Context, c *http.Client) (bool, string) {
				return statelessCall(ctx, c, f.lb.URL, "", "auth_login", users[next.Add(1)%callers])
			})
			rates[n] = perSecond * 60
			b.ReportMetric(perSecond*60, "logins/min")
		})
	}
	for n := 1; n <= 3; n++ {
		b.Logf("instances=%d: %.0f logins/min, %.2f× one instance", n, rates[n], rates[n]/rates[1])
	}
}

// parallelCalls runs b.N calls from 16 goroutines per core and returns (and reports) calls/s;
// a failed call fails b.
func parallelCalls(b *testing.B, url string, call func(context.Context, *http.Client) (bool, string)) float64 {
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var failed atomic.Int64
	var first atomic.Value
	b.SetParallelism(16)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ok, detail := call(context.Background(), client); !ok {
				failed.Add(1)
				first.CompareAndSwap(nil, detail)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d calls to %s failed, first: %v", n, b.N, url, first.Load())
	}
	perSecond := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(perSecond, "calls/s")
	return perSecond
}
