package mcp_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/bduf/mcpauth/mcp"
)

func TestShouldResolveTheClientAddressOnlyThroughTrustedProxies(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		headers [][2]string
		want    string
	}{
		{name: "without trusted proxies X-Forwarded-For is ignored", remote: "10.0.0.1:4000",
			headers: [][2]string{{"X-Forwarded-For", "198.51.100.7"}}, want: "10.0.0.1"},
		{name: "without trusted proxies Forwarded is ignored", remote: "10.0.0.1:4000",
			headers: [][2]string{{"Forwarded", "for=198.51.100.7"}}, want: "10.0.0.1"},
		{name: "an untrusted RemoteAddr with X-Forwarded-For ignores it", trusted: proxies, remote: "192.0.2.50:4000",
			headers: [][2]string{{"X-Forwarded-For", "198.51.100.7"}}, want: "192.0.2.50"},
		{name: "a trusted proxy without forwarding headers is the client", trusted: proxies, remote: "10.0.0.1:4000",
			want: "10.0.0.1"},
		{name: "a trusted proxy's X-Forwarded-For names the client", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"X-Forwarded-For", "198.51.100.7"}}, want: "198.51.100.7"},
		{name: "a chain through a second trusted proxy skips it to the client", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"X-Forwarded-For", "198.51.100.7, 10.1.2.3"}}, want: "198.51.100.7"},
		{name: "a spoofed leftmost entry behind one trusted proxy gives the real client", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"X-Forwarded-For", "203.0.113.66, 198.51.100.7"}}, want: "198.51.100.7"},
		{name: "several X-Forwarded-For headers are one chain in order", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"X-Forwarded-For", "203.0.113.66"}, {"X-Forwarded-For", "198.51.100.7, 10.1.2.3"}}, want: "198.51.100.7"},
		{name: "a chain of trusted hops only gives the leftmost", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"X-Forwarded-For", "10.9.9.9, 10.1.2.3"}}, want: "10.9.9.9"},
		{name: "garbage right of the client stops the walk at RemoteAddr", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"X-Forwarded-For", "203.0.113.66, not-an-address"}}, want: "10.0.0.1"},
		{name: "garbage left of the client is never reached", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"X-Forwarded-For", "not-an-address, 198.51.100.7"}}, want: "198.51.100.7"},
		{name: "an X-Forwarded-For entry with a port names the client", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"X-Forwarded-For", "[2001:db8::1]:4711"}}, want: "2001:db8::1"},
		{name: "an IPv4-mapped entry is its IPv4 address", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"X-Forwarded-For", "::ffff:198.51.100.7"}}, want: "198.51.100.7"},
		{name: "Forwarded with a quoted IPv6 address and port names the client", trusted: proxies, remote: "[2001:db8:ffff::1]:443",
			headers: [][2]string{{"Forwarded", `for="[2001:db8::1]:4711";proto=https`}}, want: "2001:db8::1"},
		{name: "Forwarded skips trusted hops from the right", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"Forwarded", "for=203.0.113.66, for=198.51.100.7;by=10.0.0.1, for=10.1.2.3"}}, want: "198.51.100.7"},
		{name: "Forwarded's unknown stops the walk at RemoteAddr", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"Forwarded", "for=203.0.113.66, for=unknown"}}, want: "10.0.0.1"},
		{name: "Forwarded's obfuscated identifier stops the walk at RemoteAddr", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"Forwarded", "for=203.0.113.66, for=_hidden"}}, want: "10.0.0.1"},
		{name: "X-Forwarded-For wins over Forwarded", trusted: proxies, remote: "10.0.0.1:4000",
			headers: [][2]string{{"Forwarded", "for=203.0.113.66"}, {"X-Forwarded-For", "198.51.100.7"}}, want: "198.51.100.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			r.RemoteAddr = tc.remote
			for _, h := range tc.headers {
				r.Header.Add(h[0], h[1])
			}
			c := mcp.NewClientAddrs(tc.trusted)
			if got := c.Of(r); got.String() != tc.want {
				t.Fatalf("Of = %s, want %s", got, tc.want)
			}
			var seen string
			c.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { seen = r.RemoteAddr })).ServeHTTP(httptest.NewRecorder(), r)
			if ap, err := netip.ParseAddrPort(seen); err != nil || ap.Addr().String() != tc.want {
				t.Fatalf("the handler saw RemoteAddr %q, want the client %s", seen, tc.want)
			}
			if r.RemoteAddr != tc.remote {
				t.Fatalf("the caller's request was changed: RemoteAddr %q", r.RemoteAddr)
			}
		})
	}
}

func TestShouldNotAllocateForAClientThatIsNotATrustedProxy(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.RemoteAddr = "192.0.2.50:4000"
	r.Header.Set("X-Forwarded-For", "198.51.100.7")
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	w := httptest.NewRecorder()
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
	}{
		{"without trusted proxies", nil},
		{"with trusted proxies the client is not one of", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	} {
		c := mcp.NewClientAddrs(tc.trusted)
		h := c.Handler(next)
		if n := testing.AllocsPerRun(100, func() { _ = c.Of(r); h.ServeHTTP(w, r) }); n != 0 {
			t.Errorf("%s: %v allocations per request, want 0", tc.name, n)
		}
	}
}
