package auth_test

import (
	"testing"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/throttle"
)

func TestShouldRecordMalformedAPIKeysOfOneAddressOnlyWithinTheFailureLimit(t *testing.T) {
	t.Parallel()
	const burst = 3
	tests := []struct {
		name    string
		limiter func() throttle.Limiter
		// How many API_KEY_USED_FAILED events 50 malformed keys from one address leave.
		atMost, atLeast int
	}{
		{"a flood of malformed keys records at most the limit's burst", func() throttle.Limiter { return throttle.NewLocalLimiter(nil) }, burst, burst},
		{"a limiter that fails keeps every record", func() throttle.Limiter { return brokenLimiter{} }, 50, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			limits := unthrottled
			limits.APIKeyFailures = throttle.Limit{Rate: 1, Period: time.Hour, Burst: burst}
			e, rec := adminEnv(t, func(c *auth.Config) { c.Limits, c.Limiter = limits, tt.limiter() })
			svc := e.svc
			attacker := fromAddr("203.0.113.7")
			for range 50 {
				_, err := svc.Validate(attacker, auth.Secret("mcpk_x"))
				wantCode(t, "a malformed key", err, apierr.TokenInvalid) // a typo is not a guess: never RATE_LIMITED
			}
			got, _ := rec.of(audit.APIKeyUsedFailed, "")
			if len(got) > tt.atMost || len(got) < tt.atLeast {
				t.Fatalf("50 malformed keys from one address recorded %d API_KEY_USED_FAILED events, want %d to %d", len(got), tt.atLeast, tt.atMost)
			}
			// Another address is not silenced by the first one's flood.
			_, err := svc.Validate(fromAddr("198.51.100.1"), auth.Secret("mcpk_x"))
			wantCode(t, "a malformed key from another address", err, apierr.TokenInvalid)
			if again, _ := rec.of(audit.APIKeyUsedFailed, ""); len(again) != len(got)+1 {
				t.Fatalf("a malformed key from another address: %d events, want %d", len(again), len(got)+1)
			}
		})
	}
}
