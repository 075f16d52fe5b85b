package mcp

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/bduf/mcpauth/auth"
)

// DefaultWriteTimeout bounds one write of a response: a JSON answer, or one event of a stream.
// A stream lives as long as its session, so the server has no overall write timeout; instead
// every write gets this long from when it starts. A client that stops reading its stream is
// dropped after it, with what was queued for it, instead of pinning a goroutine and every
// later response forever.
const DefaultWriteTimeout = 30 * time.Second

// DefaultMaxConnsPerAddress bounds the connections one client address (IPv6 by /64) holds open.
const DefaultMaxConnsPerAddress = 256

type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

type flushErrorer interface{ FlushError() error }

// writeDeadlines gives every write of every response on the listener a deadline at least
// 15/16 of timeout from when it starts (the deadline is the connection's, so every response
// sets its own, or a keep-alive connection's next response would inherit a stale one). A write
// moves the deadline only when the last move is older than timeout/16: moving it re-arms a
// runtime timer, and a JSON answer, written right after its request set the deadline, then
// needs no second one. A failed write of a GET (a stream) ends the request's context: mcp-go's
// SSE loop ignores write errors and waits on it.
func writeDeadlines(timeout time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dl, ok := w.(writeDeadliner)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		now := time.Now()
		_ = dl.SetWriteDeadline(now.Add(timeout))
		dw := &deadlineWriter{ResponseWriter: w, dl: dl, timeout: timeout, set: now}
		if r.Method == http.MethodGet {
			serveStream(dw, r, next)
			return
		}
		next.ServeHTTP(dw, r) // a small frame under the MCP server's deep stack (see Guard.admit)
	})
}

// serveStream serves a GET (a stream) whose failed write ends its context.
func serveStream(dw *deadlineWriter, r *http.Request, next http.Handler) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	dw.cancel = cancel
	next.ServeHTTP(dw, r.WithContext(ctx))
}

type deadlineWriter struct {
	http.ResponseWriter
	dl      writeDeadliner
	timeout time.Duration
	set     time.Time          // when the deadline was last moved (to set+timeout)
	cancel  context.CancelFunc // nil: not a stream
}

// extend moves the deadline to timeout from now, unless it is still at least 15/16 of that.
// Its clock read is monotonic only (time.Since of the last move), half the cost of time.Now.
func (d *deadlineWriter) extend() {
	if d.set.IsZero() { // the handler set a deadline of its own
		d.move(time.Now())
	} else if since := time.Since(d.set); since >= d.timeout/16 {
		d.move(d.set.Add(since))
	}
}

func (d *deadlineWriter) move(now time.Time) {
	_ = d.dl.SetWriteDeadline(now.Add(d.timeout))
	d.set = now
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	d.extend()
	n, err := d.ResponseWriter.Write(p)
	if err != nil {
		d.failed()
	}
	return n, err
}

func (d *deadlineWriter) Flush() { _ = d.FlushError() }

func (d *deadlineWriter) FlushError() error {
	d.extend()
	var err error
	if f, ok := d.ResponseWriter.(flushErrorer); ok {
		err = f.FlushError()
	} else if f, ok := d.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	if err != nil {
		d.failed()
	}
	return err
}

// SetWriteDeadline lets a handler that sets its own deadline (mcp-go's resumption) do so; the
// next write moves it again, whatever it was.
func (d *deadlineWriter) SetWriteDeadline(t time.Time) error {
	d.set = time.Time{}
	return d.dl.SetWriteDeadline(t)
}

func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }

func (d *deadlineWriter) failed() {
	if d.cancel != nil {
		d.cancel()
	}
}

// limitConns caps the connections open at once from one client address: further ones are
// closed as soon as they are accepted. The peers in exempt (trusted proxies, which carry many
// clients) are not capped.
func limitConns(l net.Listener, max int, exempt func(netip.Addr) bool) net.Listener {
	if max <= 0 {
		return l
	}
	return &connLimiter{Listener: l, max: max, exempt: exempt, open: map[netip.Prefix]int{}}
}

type connLimiter struct {
	net.Listener
	max    int
	exempt func(netip.Addr) bool

	mu   sync.Mutex
	open map[netip.Prefix]int
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
		if err != nil || l.exempt(ap.Addr().Unmap()) {
			return c, nil // not an IP peer (a Unix socket), or a trusted proxy
		}
		key := auth.AddrGroup(ap.Addr())
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			_ = c.Close()
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l, key: key}, nil
	}
}

type limitedConn struct {
	net.Conn
	l    *connLimiter
	key  netip.Prefix
	once sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if n := c.l.open[c.key]; n > 1 {
			c.l.open[c.key] = n - 1
		} else {
			delete(c.l.open, c.key)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
