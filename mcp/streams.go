package mcp

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
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

type flushErrorer interface{ FlushError() error }

// writeDeadlines gives every write on the listener's connections a deadline at least 15/16 of
// timeout from when it starts: a client that stops reading (a JSON answer or a stream's
// events) is dropped after timeout with what was queued for it, instead of pinning a goroutine
// and every later response forever. The deadline is the connection's, and deadlineConn owns it
// across responses: net/http clears it after every response, which deadlineConn ignores (a
// deadline on an idle connection stops nothing, and the next write moves it first), and a
// write moves it only when the last move is older than timeout/16. Moving it re-arms a runtime
// timer: a busy keep-alive connection does so about once every timeout/16 instead of twice per
// response (set for the response, cleared after it), and a response's writes read only the
// monotonic clock.
func writeDeadlines(l net.Listener, timeout time.Duration) net.Listener {
	return &deadlineListener{Listener: l, timeout: timeout}
}

type deadlineListener struct {
	net.Listener
	timeout time.Duration
}

func (l *deadlineListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &deadlineConn{Conn: c, timeout: l.timeout}, nil
}

// monoBase anchors deadlineConn's clock: time.Since of it reads only the monotonic clock, half
// the cost of time.Now.
var monoBase = time.Now()

type deadlineConn struct {
	net.Conn
	timeout time.Duration
	// moved is when a write last moved the deadline (time since monoBase); 0: the deadline is
	// not a write's (none yet, or one someone else set).
	moved atomic.Int64
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	now := time.Since(monoBase)
	if m := c.moved.Load(); m == 0 || now-time.Duration(m) >= c.timeout/16 {
		_ = c.Conn.SetWriteDeadline(monoBase.Add(now + c.timeout))
		c.moved.Store(int64(now))
	}
	return c.Conn.Write(p)
}

// SetWriteDeadline lets anyone else (a handler, through http.ResponseController) set a
// deadline, which holds until the next write moves it again; clearing it while it is a
// write's is net/http's end of a response, and changes nothing.
func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() && c.moved.Load() != 0 {
		return nil
	}
	c.moved.Store(0)
	return c.Conn.SetWriteDeadline(t)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.moved.Store(0)
	return c.Conn.SetDeadline(t)
}

// CloseWrite half-closes the connection when it can, as net/http does before closing one
// whose request it did not read whole.
func (c *deadlineConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// streamWriter is a stream's writer (endpoint.serveStream): a failed write or flush ends the
// stream's context.
type streamWriter struct {
	http.ResponseWriter
	cancel context.CancelFunc
}

func (w *streamWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if err != nil {
		w.cancel()
	}
	return n, err
}

func (w *streamWriter) Flush() { _ = w.FlushError() }

func (w *streamWriter) FlushError() error {
	var err error
	if f, ok := w.ResponseWriter.(flushErrorer); ok {
		err = f.FlushError()
	} else if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	if err != nil {
		w.cancel()
	}
	return err
}

func (w *streamWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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
