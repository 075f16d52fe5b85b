package auth_test

import (
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/throttle"
)

func TestShouldLimitLoginsPerAddressByIPv6Slash64(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		first, second string
		shareBudget   bool
	}{
		{"two addresses of one IPv6 /64 share one budget", "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe", true},
		{"two addresses of different IPv6 /64s have a budget each", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"an IPv4-mapped IPv6 address shares its IPv4 address's budget", "192.0.2.10", "::ffff:192.0.2.10", true},
		{"two IPv4 addresses have a budget each", "192.0.2.10", "192.0.2.11", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			limits := unthrottled
			limits.LoginPerAddress = throttle.Limit{Rate: 2, Period: time.Minute, Burst: 2}
			svc := e.newService(t, e.keys, func(c *auth.Config) {
				c.Limits, c.Limiter = limits, throttle.NewLocalLimiter(e.clock.Now)
			})
			login := func(addr string) error {
				_, _, err := svc.Login(fromAddr(addr),
					auth.LoginRequest{Identifier: "ghost@example.com", Password: "whatever it is"})
				return err
			}
			for range 2 {
				wantCode(t, "a guess within the first address's budget", login(tc.first), apierr.InvalidCredentials)
			}
			want := apierr.InvalidCredentials
			if tc.shareBudget {
				want = apierr.RateLimited
			}
			wantCode(t, "a guess from the second address", login(tc.second), want)
		})
	}
}
