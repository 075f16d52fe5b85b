package mcp

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddrs resolves the address of the client of an HTTP request: the one place that does,
// so that the audit trail (client_addr), the per-address limits, the lockout and the policy's
// source_cidrs all see the same client.
//
// The rule:
//   - RemoteAddr (the peer of the connection) is the client, unless it is a trusted proxy.
//     With no trusted proxies, X-Forwarded-For and Forwarded are ignored entirely: a client
//     cannot choose its address.
//   - When RemoteAddr is a trusted proxy, the client is the rightmost address of the
//     X-Forwarded-For chain (every X-Forwarded-For header, in order) that is not a trusted
//     proxy: the walk goes from the right, skipping trusted hops, and stops at the first
//     untrusted one. Entries left of it were written by the client itself and are never used.
//   - With no X-Forwarded-For, RFC 7239 Forwarded's for= parameters are walked the same way
//     (quoted IPv6 with a port, for="[2001:db8::1]:4711", included).
//   - If every hop is trusted, the client is the leftmost hop.
//   - An entry that is not an address (garbage, an empty entry, Forwarded's "unknown" or an
//     obfuscated identifier such as "_hidden", an element without for=) stops the walk: nothing
//     left of it can be told apart from what the client wrote, so the client is RemoteAddr.
//
// Addresses are compared unmapped (::ffff:192.0.2.1 is 192.0.2.1) and without zone.
type ClientAddrs struct {
	trusted []netip.Prefix
}

// NewClientAddrs returns the resolver that trusts the proxies in trusted (none: RemoteAddr only).
func NewClientAddrs(trusted []netip.Prefix) ClientAddrs {
	c := ClientAddrs{}
	for _, p := range trusted {
		if !p.IsValid() {
			continue
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	return c
}

// Of is the client address of r by the rule above (invalid if RemoteAddr is not "ip:port").
func (c ClientAddrs) Of(r *http.Request) netip.Addr {
	remote := sourceAddr(r.RemoteAddr)
	if !c.trusts(remote) {
		return remote
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		return c.walk(remote, xff, parseForwardedForEntry)
	}
	if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
		return c.walk(remote, fwd, parseForwardedElement)
	}
	return remote
}

// trusts reports whether ip is a trusted proxy.
func (c ClientAddrs) trusts(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range c.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Handler passes next the request with RemoteAddr set to its client ("ip:0") when RemoteAddr is
// a trusted proxy that forwarded for another client; otherwise the request as it is (without
// trusted proxies, next itself: nothing is parsed, nothing allocated).
func (c ClientAddrs) Handler(next http.Handler) http.Handler {
	if len(c.trusted) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if remote := sourceAddr(r.RemoteAddr); c.trusts(remote) {
			if client := c.Of(r); client.IsValid() && client != remote {
				r = r.WithContext(r.Context()) // a shallow copy: the caller's request is not changed
				r.RemoteAddr = netip.AddrPortFrom(client, 0).String()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// walk goes through the hops of values (comma-separated, the rightmost last) from the right.
func (c ClientAddrs) walk(remote netip.Addr, values []string, parse func(string) (netip.Addr, bool)) netip.Addr {
	leftmost := remote
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for {
			j := strings.LastIndexByte(v, ',')
			hop, ok := parse(strings.TrimSpace(v[j+1:]))
			if !ok {
				return remote
			}
			if !c.trusts(hop) {
				return hop
			}
			leftmost = hop
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return leftmost
}

// parseForwardedForEntry parses one X-Forwarded-For entry: an address, possibly with a port
// ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseForwardedForEntry(s string) (netip.Addr, bool) {
	return parseNode(s)
}

// parseForwardedElement parses one RFC 7239 forwarded-element ("for=192.0.2.1;proto=https") to
// its for= node; "unknown", obfuscated identifiers and elements without for= are not addresses.
func parseForwardedElement(s string) (netip.Addr, bool) {
	for s != "" {
		pair := s
		if i := strings.IndexByte(s, ';'); i >= 0 {
			pair, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(name), "for") {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
			value = value[1 : len(value)-1]
		}
		return parseNode(value)
	}
	return netip.Addr{}, false
}

// parseNode parses an address with an optional port, IPv6 in brackets when it has one.
func parseNode(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	var ip netip.Addr
	if a, err := netip.ParseAddr(s); err == nil {
		ip = a
	} else if ap, err := netip.ParseAddrPort(s); err == nil {
		ip = ap.Addr()
	} else if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' { // "[2001:db8::1]" without a port
		a, err := netip.ParseAddr(s[1 : len(s)-1])
		if err != nil || !a.Is6() {
			return netip.Addr{}, false
		}
		ip = a
	} else {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}
