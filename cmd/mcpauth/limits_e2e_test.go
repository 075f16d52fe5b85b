package main

// End-to-end tests of brute-force lockout and rate limits, in process and in a real Redis
// (redis-server on a free loopback port), and of Redis outages: the real mcpauth binary driven
// by mcp-go's client.

import (
	"context"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/bduf/mcpauth/internal/mcptest"
	"github.com/bduf/mcpauth/internal/redistest"
)

// backends are where the limits live: this process, or a redis-server of the test's own.
var backends = []struct {
	name string
	env  func(t *testing.T) []string
}{
	{"in_process", func(*testing.T) []string { return nil }},
	{"redis", func(t *testing.T) []string { return []string{"MCPAUTH_REDIS_URL=redis://" + redistest.Start(t)} }},
}

// errorBody returns a tool error's whole error object, to compare answers exactly.
func errorBody(t *testing.T, r mcptest.Result, code string) map[string]any {
	t.Helper()
	r.WantError(t, code)
	var body struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(r.Raw, &body); err != nil {
		t.Fatal(err)
	}
	return body.Error
}

// wantSameAnswer checks that two answers are identical (code, message and every detail).
func wantSameAnswer(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: answer %v differs from the wrong-password answer %v", what, got, want)
	}
}

// lockedLines counts the server's log lines of refused logins of a locked account.
func lockedLines(log, userID string) int {
	return strings.Count(log, `msg="login refused: account locked" user_id=`+userID+" ")
}

func TestShouldLockAnAccountAfterRepeatedFailures(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t)
			// 3 failures lock for 10 minutes; login rate limits out of the way of the lockout.
			in.Extra = append(append(in.Extra, be.env(t)...), "MCPAUTH_LOCKOUT=3/15m/10m/1h",
				"MCPAUTH_RATE_LIMITS=login_id=1000/1m,login_addr=1000/1m")
			srv := startHTTP(t, in, "http")
			owner := dialHTTP(t, srv)
			owner.Login(t, nil, in.Owner())
			password := "e2e-Lock-" + randomHex(8)

			t.Run("sequential", func(t *testing.T) {
				// Not in parallel with "concurrent" either (see "unknown_account"): under its
				// flood, this one's user_create and logins could wait out the hashing queue.
				user := owner.CreateUser(t, "locked@example.com", password, "viewer")
				right := args{"email": "locked@example.com", "password": password}
				wrongArgs := args{"email": "locked@example.com", "password": "wrong-Password-42"}
				c := dialHTTP(t, srv)
				wrong := errorBody(t, c.Call(t, "auth_login", wrongArgs), "INVALID_CREDENTIALS")
				// A success resets the count: 2 failures, a success, 2 failures, a success.
				c.Call(t, "auth_login", wrongArgs)
				c.Login(t, nil, right)
				c.Call(t, "auth_login", wrongArgs)
				c.Call(t, "auth_login", wrongArgs)
				c.Login(t, nil, right)
				c.SetBearer("")
				// Three failures in a row lock the account. The answer to the right password is then
				// exactly the wrong-password answer, as is every answer while it is locked.
				for range 3 {
					wantSameAnswer(t, "wrong password", errorBody(t, c.Call(t, "auth_login", wrongArgs), "INVALID_CREDENTIALS"), wrong)
				}
				for range 2 {
					wantSameAnswer(t, "right password of a locked account", errorBody(t, c.Call(t, "auth_login", right), "INVALID_CREDENTIALS"), wrong)
					wantSameAnswer(t, "wrong password of a locked account", errorBody(t, c.Call(t, "auth_login", wrongArgs), "INVALID_CREDENTIALS"), wrong)
				}
				wantSameAnswer(t, "unknown account",
					errorBody(t, c.Call(t, "auth_login", args{"username": "nobody", "password": password}), "INVALID_CREDENTIALS"), wrong)
				// Only an admin (users:admin) unlocks.
				viewerConn(t, srv, owner, "viewer2@example.com").WantInsufficientScope(t, "user_unlock", args{"id": user.ID}, "users:admin")
				wantSameAnswer(t, "right password after a refused unlock", errorBody(t, c.Call(t, "auth_login", right), "INVALID_CREDENTIALS"), wrong)
				owner.Call(t, "user_unlock", args{"id": "usr_doesnotexist"}).WantError(t, "NOT_FOUND")
				owner.Call(t, "user_unlock", nil).WantFieldError(t, "id")
				if u := decode[struct{ Unlocked bool }](t, owner.Call(t, "user_unlock", args{"id": user.ID})); !u.Unlocked {
					t.Fatalf("user_unlock: %+v", u)
				}
				if tok := c.Login(t, nil, right); tok.User.ID != user.ID {
					t.Fatalf("login after user_unlock: %+v", tok.User)
				}
				if n := waitLockedLines(t, srv, user.ID, 5); n != 5 {
					t.Errorf("%d logins were refused as locked, want 5 (2 right, 2 wrong, and the one after the refused unlock)", n)
				}
			})

			t.Run("unknown_account", func(t *testing.T) {
				// Not in parallel with "concurrent": its flood of logins fills the hashing queue,
				// and a login waiting longer than the queue allows is (rightly) RATE_LIMITED.
				// Failures for an account that does not exist never block its later registration.
				c := dialHTTP(t, srv)
				for range 5 {
					c.Call(t, "auth_login", args{"email": "later@example.com", "password": password}).WantError(t, "INVALID_CREDENTIALS")
				}
				u := owner.CreateUser(t, "later@example.com", password, "viewer")
				if tok := c.Login(t, nil, args{"email": "later@example.com", "password": password}); tok.User.ID != u.ID {
					t.Fatalf("login of a user registered after failures under its name: %+v", tok.User)
				}
			})

			t.Run("concurrent", func(t *testing.T) {
				t.Parallel()
				user := owner.CreateUser(t, "victim@example.com", password, "viewer")
				right := args{"email": "victim@example.com", "password": password}
				wrongArgs := args{"email": "victim@example.com", "password": "wrong-Password-42"}
				const clients, calls = 4, 100
				conns := make([]*conn, clients)
				for i := range conns {
					conns[i] = dialHTTP(t, srv)
				}
				results := make([]*mcp.CallToolResult, calls)
				errs := make([]error, calls)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range calls {
					wg.Go(func() {
						ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
						defer cancel()
						req := mcp.CallToolRequest{}
						req.Params.Name = "auth_login"
						req.Params.Arguments = wrongArgs
						<-start
						results[i], errs[i] = conns[i%clients].Client.CallTool(ctx, req)
					})
				}
				close(start)
				wg.Wait()
				codes := map[string]int{}
				var wrong map[string]any
				for i, res := range results {
					if errs[i] != nil {
						t.Fatalf("concurrent auth_login %d: %v", i, errs[i])
					}
					if !res.IsError {
						t.Fatalf("concurrent auth_login %d with a wrong password succeeded", i)
					}
					b, _ := json.Marshal(res.StructuredContent)
					var body struct {
						Error map[string]any `json:"error"`
					}
					if err := json.Unmarshal(b, &body); err != nil {
						t.Fatalf("concurrent auth_login %d: %s", i, b)
					}
					code, _ := body.Error["code"].(string)
					codes[code]++
					switch code {
					case "INVALID_CREDENTIALS":
						if wrong == nil {
							wrong = body.Error
						}
						wantSameAnswer(t, "concurrent wrong password", body.Error, wrong)
					case "RATE_LIMITED":
					default:
						t.Fatalf("concurrent auth_login %d: %s, want INVALID_CREDENTIALS or RATE_LIMITED", i, b)
					}
				}
				t.Logf("100 concurrent wrong passwords: %v", codes)
				// The account is locked: the right password gets the wrong-password answer.
				c := dialHTTP(t, srv)
				wantSameAnswer(t, "right password after 100 concurrent failures", errorBody(t, c.Call(t, "auth_login", right), "INVALID_CREDENTIALS"), wrong)
				// Of the 100, at most 3 reached a password check: every other one that was not
				// rate-limited was refused as locked (the server logs each such refusal), and so was
				// the right password after them.
				reached := calls - codes["RATE_LIMITED"]
				locked := waitLockedLines(t, srv, user.ID, reached-3+1) - 1
				if checked := reached - locked; checked > 3 || (codes["RATE_LIMITED"] == 0 && checked != 3) {
					t.Fatalf("%d of 100 concurrent wrong passwords had their password checked (%d refused as locked), want at most 3 (exactly 3 when none was rate-limited)",
						checked, locked)
				}
				decode[struct{ Unlocked bool }](t, owner.Call(t, "user_unlock", args{"id": user.ID}))
				if tok := c.Login(t, nil, right); tok.User.ID != user.ID {
					t.Fatalf("login after user_unlock: %+v", tok.User)
				}
			})
		})
	}
}

// waitLockedLines waits (a bounded while) for the server to have logged at least want locked
// refusals of userID, and returns how many it logged.
func waitLockedLines(t *testing.T, srv *httpServer, userID string, want int) int {
	t.Helper()
	_ = srv.Stderr.WaitUntil(func(s string) bool { return lockedLines(s, userID) >= want }, srv.Exited, 10*time.Second)
	return lockedLines(srv.Stderr.String(), userID)
}

// viewerConn creates a viewer with email (as owner) and returns a conn logged in as it.
func viewerConn(t *testing.T, srv *httpServer, owner *conn, email string) *conn {
	t.Helper()
	password := "e2e-Viewer-" + randomHex(8)
	owner.CreateUser(t, email, password, "viewer")
	c := dialHTTP(t, srv)
	c.Login(t, nil, args{"email": email, "password": password})
	return c
}

func TestShouldUnlockByItselfAfterTheBackOff(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t)
			in.Extra = append(append(in.Extra, be.env(t)...), "MCPAUTH_LOCKOUT=3/15m/1s/2s",
				"MCPAUTH_RATE_LIMITS=login_id=1000/1m,login_addr=1000/1m")
			c := dialStdio(t, in)
			c.Login(t, nil, in.Owner())
			password := "e2e-Lock-" + randomHex(8)
			user := c.CreateUser(t, "locked@example.com", password, "viewer")
			right := args{"email": "locked@example.com", "password": password}
			var sent time.Time
			for range 3 {
				sent = time.Now()
				c.Call(t, "auth_login", args{"email": "locked@example.com", "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
			}
			// The lock engaged during the third call and lasts 1 s; trying the right password every
			// 50 ms meanwhile does not extend it.
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			deadline := time.Now().Add(15 * time.Second)
			for {
				r := c.Call(t, "auth_login", right)
				if !r.IsError {
					if lasted := time.Since(sent); lasted < time.Second {
						t.Fatalf("a 1 s lock let the right password in after %s", lasted)
					}
					if tok := decode[tokenResult](t, r); tok.User.ID != user.ID {
						t.Fatalf("login after the lock: %+v", tok.User)
					}
					break
				}
				r.WantError(t, "INVALID_CREDENTIALS")
				if time.Now().After(deadline) {
					t.Fatalf("the 1 s lock still held %s after the third failure: attempts during it extend it", time.Since(sent))
				}
				<-tick.C
			}
			t.Logf("locked for %s", time.Since(sent).Round(time.Millisecond))
		})
	}
}

// wantRateLimited checks a RATE_LIMITED answer and its retry_after_seconds.
func wantRateLimited(t *testing.T, r mcptest.Result, maxRetry int) mcptest.APIError {
	t.Helper()
	e := r.WantError(t, "RATE_LIMITED")
	if e.RetryAfterSeconds < 1 || e.RetryAfterSeconds > maxRetry {
		t.Fatalf("RATE_LIMITED with retry_after_seconds %d, want 1 to %d: %s", e.RetryAfterSeconds, maxRetry, r.Raw)
	}
	return e
}

func TestShouldRateLimitLogins(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t)
			in.Extra = append(append(in.Extra, be.env(t)...), "MCPAUTH_RATE_LIMITS=login_id=2/1m")
			srv := startHTTP(t, in, "http")
			owner := dialHTTP(t, srv)
			owner.Login(t, nil, in.Owner())
			password := "e2e-Rate-" + randomHex(8)
			owner.CreateUser(t, "limited@example.com", password, "viewer")

			// Two logins a minute per identifier (burst 2, then one every 30 s), whatever the
			// password: the third gets RATE_LIMITED with retry_after_seconds.
			c := dialHTTP(t, srv)
			c.Call(t, "auth_login", args{"email": "limited@example.com", "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
			c.Login(t, nil, args{"email": "limited@example.com", "password": password})
			e := wantRateLimited(t, c.Call(t, "auth_login", args{"email": "limited@example.com", "password": password}), 30)
			t.Logf("RATE_LIMITED: %+v", e)
			wantRateLimited(t, c.Call(t, "auth_login", args{"email": "LIMITED@example.com", "password": "wrong-Password-42"}), 30)

			// The same for an account that does not exist (guessing is limited either way) ...
			for range 2 {
				c.Call(t, "auth_login", args{"email": "ghost@example.com", "password": password}).WantError(t, "INVALID_CREDENTIALS")
			}
			wantRateLimited(t, c.Call(t, "auth_login", args{"email": "ghost@example.com", "password": password}), 30)
			// ... which never blocks registering it.
			owner.CreateUser(t, "ghost@example.com", password, "viewer")
			// Other identifiers are not limited.
			c.Call(t, "auth_login", args{"email": "someone@example.com", "password": password}).WantError(t, "INVALID_CREDENTIALS")
		})
	}
	t.Run("per_address", func(t *testing.T) {
		t.Parallel()
		in := newInstance(t)
		in.Extra = append(in.Extra, "MCPAUTH_RATE_LIMITS=login_addr=3/1m")
		c := dialStdio(t, in)
		for i := range 3 {
			c.Call(t, "auth_login", args{"username": "guess" + string(rune('a'+i)), "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
		}
		wantRateLimited(t, c.Call(t, "auth_login", args{"username": "guessd", "password": "wrong-Password-42"}), 20)
		wantRateLimited(t, c.Call(t, "auth_login", in.Owner()), 20)
	})
}

var limiterDownMessage = regexp.MustCompile(`rate limiter unavailable \(redis\)`)

func TestShouldFailClosedWhileRedisIsDownAndRecoverWithoutARestart(t *testing.T) {
	t.Parallel()
	rs := redistest.StartServer(t)
	in := newInstance(t)
	in.Extra = append(in.Extra, "MCPAUTH_REDIS_URL=redis://"+rs.Addr())
	srv := startHTTP(t, in, "http")
	c := dialHTTP(t, srv)
	tok := c.Login(t, nil, in.Owner())
	decode[whoamiResult](t, c.Call(t, "auth_whoami", nil))
	c.SetBearer("")

	rs.Kill()
	e := c.Call(t, "auth_login", in.Owner()).WantError(t, "INTERNAL")
	if !limiterDownMessage.MatchString(e.Message) {
		t.Fatalf("auth_login with Redis down: %q does not name the limiter", e.Message)
	}
	c.Call(t, "auth_login", args{"email": "nobody@example.com", "password": "wrong-Password-42"}).WantError(t, "INTERNAL")
	if e := c.Call(t, "auth_refresh", args{"refresh_token": tok.RefreshToken}).WantError(t, "INTERNAL"); !limiterDownMessage.MatchString(e.Message) {
		t.Fatalf("auth_refresh with Redis down: %q does not name the limiter", e.Message)
	}

	// Redis comes back (empty, on the same port): logins work again, without a restart.
	rs.Restart(t)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	back := time.Now()
	deadline := back.Add(20 * time.Second)
	for {
		r := c.Call(t, "auth_login", in.Owner())
		if !r.IsError {
			c.SetBearer(decode[tokenResult](t, r).AccessToken)
			break
		}
		r.WantError(t, "INTERNAL")
		if time.Now().After(deadline) {
			t.Fatalf("logins still fail %s after Redis returned: %s", time.Since(back), r.Raw)
		}
		<-tick.C
	}
	t.Logf("logins work again %s after Redis returned", time.Since(back).Round(time.Millisecond))
	decode[whoamiResult](t, c.Call(t, "auth_whoami", nil))
	decode[userListResult](t, c.Call(t, "user_list", nil))
	c.Refresh(t, nil, tok.RefreshToken)
	_ = c.Client.Close()
	srv.StopCleanly(t) // the same process all along
}

func TestShouldFallBackToInProcessLimitsWhenConfigured(t *testing.T) {
	t.Parallel()
	rs := redistest.StartServer(t)
	in := newInstance(t)
	in.Extra = append(in.Extra, "MCPAUTH_REDIS_URL=redis://"+rs.Addr(), "MCPAUTH_DEGRADE_LIMITS=true",
		"MCPAUTH_LOCKOUT=3/15m/10m/1h", "MCPAUTH_RATE_LIMITS=login_id=1000/1m,login_addr=1000/1m")
	c := dialStdio(t, in)
	c.Login(t, nil, in.Owner())
	password := "e2e-Degrade-" + randomHex(8)
	c.CreateUser(t, "user@example.com", password, "viewer")
	decode[countResult](t, c.Call(t, "auth_logout", nil))

	rs.Kill()
	// Logins work, and say so loudly in the log.
	tok := decode[tokenResult](t, c.Call(t, "auth_login", in.Owner()))
	if tok.AccessToken == "" {
		t.Fatalf("auth_login with Redis down and MCPAUTH_DEGRADE_LIMITS=true: %+v", tok)
	}
	if err := c.Stderr.WaitUntil(func(s string) bool { return strings.Contains(s, "level=ERROR msg=\"REDIS UNREACHABLE") }, nil, 10*time.Second); err != nil {
		t.Errorf("no ERROR log of the fallback: %v\n%s", err, c.Stderr)
	}
	// The in-process limits hold meanwhile: three failures lock the account.
	wrong := errorBody(t, c.Call(t, "auth_login", args{"email": "user@example.com", "password": "wrong-Password-42"}), "INVALID_CREDENTIALS")
	for range 2 {
		c.Call(t, "auth_login", args{"email": "user@example.com", "password": "wrong-Password-42"}).WantError(t, "INVALID_CREDENTIALS")
	}
	wantSameAnswer(t, "right password of an account locked in process",
		errorBody(t, c.Call(t, "auth_login", args{"email": "user@example.com", "password": password}), "INVALID_CREDENTIALS"), wrong)
}
