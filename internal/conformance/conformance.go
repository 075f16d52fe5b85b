// Package conformance holds what the stores' conformance suites (auth/storetest,
// session/sessiontest, apikey/apikeytest, mfa/mfatest, token/tokentest) share: times at the
// stores' resolution, the assertions, and the race every atomicity case starts.
package conformance

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// Concurrency is how many goroutines race in the concurrency cases.
const Concurrency = 50

// Now is a base time at MongoDB's resolution (milliseconds, UTC).
func Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// SameTime compares instants within a millisecond (stores may keep only milliseconds).
func SameTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d < time.Millisecond && d > -time.Millisecond
}

// MustTime fails t unless got is want (within a millisecond).
func MustTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !SameTime(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// MustErr stops t unless err is (wraps) want.
func MustErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

// MustOK stops t on an error.
func MustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// Race starts n goroutines that call f(i) at once and waits for all of them.
func Race(n int, f func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Go(func() {
			start.Wait()
			f(i)
		})
	}
	start.Done()
	done.Wait()
}
