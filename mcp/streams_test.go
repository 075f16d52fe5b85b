package mcp

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"
)

// deadlineRecorder is a connection that records the write deadlines set on it.
type deadlineRecorder struct {
	net.Conn // nil: only Write and SetWriteDeadline are called
	set      []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

func (d *deadlineRecorder) Write(p []byte) (int, error) { return len(p), nil }

func TestShouldMoveTheWriteDeadlineOnlyWhenItHasAged(t *testing.T) {
	const timeout = 160 * time.Millisecond
	rec := &deadlineRecorder{}
	c := &deadlineConn{Conn: rec, timeout: timeout}
	var counts []int
	write := func() {
		_, _ = c.Write([]byte("x"))
		counts = append(counts, len(rec.set))
	}
	write() // the first write sets it
	write() // right after: the deadline stays
	for start := time.Now(); time.Since(start) <= timeout/16; {
	} // the deadline has aged past timeout/16
	write()                                           // moved
	_ = c.SetWriteDeadline(time.Time{})               // net/http's end of a response: the deadline stays
	write()                                           // and needs no move
	_ = c.SetWriteDeadline(time.Now().Add(time.Hour)) // a handler's own
	write()                                           // moved again at once
	if want := []int{1, 1, 2, 2, 4}; !slices.Equal(counts, want) {
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

// A client that reads one answer and not the next is dropped after the write timeout: the
// deadline outlives net/http's clearing at the end of the first response.
func TestShouldFailTheWriteOfAnAnswerNobodyReads(t *testing.T) {
	const timeout = 200 * time.Millisecond
	failed := make(chan error, 1)
	big := make([]byte, 1<<20)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			_, _ = w.Write([]byte("ok"))
			return
		}
		for { // far more than the sockets buffer, to a client that reads none of it
			if _, err := w.Write(big); err != nil {
				failed <- err
				return
			}
		}
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(writeDeadlines(l, timeout)) }()
	t.Cleanup(func() { _ = srv.Close() })
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	if _, err := io.WriteString(c, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the unread answer's write failed with %v, want its deadline", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the write of an answer nobody reads was still blocked after a minute")
	}
}
