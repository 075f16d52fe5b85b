package mcp

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// deadlineRecorder is a response writer that records the write deadlines set on it.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	set []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

func TestShouldMoveTheWriteDeadlineOnlyWhenItHasAged(t *testing.T) {
	const timeout = 160 * time.Millisecond
	rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	var counts []int
	write := func(w http.ResponseWriter) {
		_, _ = w.Write([]byte("x"))
		counts = append(counts, len(rec.set))
	}
	h := writeDeadlines(timeout, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		write(w) // right after the request set it: the deadline stays
		write(w)
		for start := time.Now(); time.Since(start) <= timeout/16; {
		} // the deadline has aged past timeout/16
		write(w)                                             // moved
		_ = w.(writeDeadliner).SetWriteDeadline(time.Time{}) // the handler clears it
		write(w)                                             // moved again at once
	}))
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mcp", nil))
	if want := []int{1, 1, 2, 4}; !slices.Equal(counts, want) {
		t.Fatalf("deadlines set after each write = %v, want %v", counts, want)
	}
	for i, d := range rec.set {
		if i == 2 {
			continue // the handler's own
		}
		if left := time.Until(d); d.IsZero() || left > timeout || left < timeout*15/16-timeout/4 {
			t.Fatalf("deadline %d is %v from now, want about %v", i, left, timeout)
		}
	}
}
