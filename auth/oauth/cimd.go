package oauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-json-experiment/json"
	lru "github.com/hashicorp/golang-lru/v2"
)

// Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document, which the MCP
// authorization spec adopts): a client_id that is an https URL names a JSON document, served
// there by the client's publisher, that says what a registration would have said. The server
// fetches it when the client first appears and keeps it as its Cache-Control says.
//
// Fetching a URL a stranger names is server-side request forgery waiting to happen, so a fetch
// goes only to a public address (checked on the address actually connected to, after DNS: a
// name that resolves to 127.0.0.1 or 10.x is refused at connect), over https, without
// redirects, proxies or cookies, within a few seconds and a few KiB.

// Limits of a document fetch.
const (
	MaxDocumentBytes   = 16 << 10
	documentTimeout    = 5 * time.Second
	documentMinTTL     = 5 * time.Minute
	documentMaxTTL     = 24 * time.Hour
	documentDefaultTTL = 10 * time.Minute
	// documentFailureTTL: a document that could not be used is not fetched again for a while
	// (a client retrying, or a stranger repeating one URL, costs one fetch a minute).
	documentFailureTTL = time.Minute
	documentCacheSize  = 1000
)

// IsDocumentID reports whether a client_id names a metadata document: an https URL with a
// host and a path, without user information, query, fragment or dot segments.
func IsDocumentID(id string) bool {
	if !strings.HasPrefix(id, "https://") || len(id) > 2048 {
		return false
	}
	u, err := url.Parse(id)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(id, "#") ||
		u.Path == "" || u.Path == "/" || u.Opaque != "" {
		return false
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if seg == "." || seg == ".." || strings.EqualFold(seg, "%2e") || strings.EqualFold(seg, "%2e%2e") {
			return false
		}
	}
	return true
}

// DocumentsConfig configures Documents.
type DocumentsConfig struct {
	// AllowPrivate lets documents come from loopback, private and link-local addresses: for
	// tests against a local server only.
	AllowPrivate bool
	// RootCAs verifies document hosts (nil: the system's roots).
	RootCAs *x509.CertPool
	Now     func() time.Time
}

// Documents fetches and caches client ID metadata documents.
type Documents struct {
	client *http.Client
	now    func() time.Time
	cache  *lru.Cache[string, documentEntry]
	// inflight makes concurrent first requests for one URL share a fetch.
	mu       sync.Mutex
	inflight map[string]*documentFetch
}

type documentEntry struct {
	client  Client
	err     error
	expires time.Time
}

type documentFetch struct {
	done  chan struct{}
	entry documentEntry
}

// DocumentError is a document that could not be used; Reason says why, in words for the person
// on the error page and the operator's log.
type DocumentError struct{ Reason string }

func (e *DocumentError) Error() string { return "client metadata document: " + e.Reason }

func documentError(format string, args ...any) error {
	return &DocumentError{Reason: fmt.Sprintf(format, args...)}
}

// NewDocuments returns a document resolver.
func NewDocuments(cfg DocumentsConfig) *Documents {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dialer := &net.Dialer{Timeout: documentTimeout, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return documentError("unexpected address %q", address)
		}
		if !cfg.AllowPrivate && !publicAddr(ap.Addr()) {
			return documentError("its host resolves to a non-public address (%s)", ap.Addr())
		}
		return nil
	}}
	transport := &http.Transport{
		Proxy:                  nil, // a proxy would be the address checked, not the host
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    documentTimeout,
		ResponseHeaderTimeout:  documentTimeout,
		MaxResponseHeaderBytes: 16 << 10,
		MaxIdleConns:           16,
		IdleConnTimeout:        30 * time.Second,
	}
	cache, _ := lru.New[string, documentEntry](documentCacheSize) // size > 0: no error
	return &Documents{
		client: &http.Client{Transport: transport, Timeout: documentTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		now: cfg.Now, cache: cache, inflight: map[string]*documentFetch{},
	}
}

// publicAddr reports an address a document may be fetched from: global unicast, not private
// (RFC 1918, fc00::/7), not shared (100.64/10), not a documentation, benchmarking or NAT64
// prefix that could reach inside.
func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"), netip.MustParsePrefix("64:ff9b:1::/48"), netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("2002::/16"), // 6to4 embeds an IPv4 address, private ones included
}

// Cached reports whether id's document (or its failure) is known and fresh: resolving it
// fetches nothing.
func (d *Documents) Cached(id string) bool {
	e, ok := d.cache.Peek(id)
	return ok && d.now().Before(e.expires)
}

// Client resolves a document client_id to the client it describes.
func (d *Documents) Client(ctx context.Context, id string) (Client, error) {
	if !IsDocumentID(id) {
		return Client{}, documentError("the client_id is not an https URL with a path")
	}
	if e, ok := d.cache.Get(id); ok && d.now().Before(e.expires) {
		return e.client, e.err
	}
	d.mu.Lock()
	f, ok := d.inflight[id]
	if !ok {
		f = &documentFetch{done: make(chan struct{})}
		d.inflight[id] = f
		go func() { // detached from ctx: a caller that gives up does not spoil the others' fetch
			f.entry = d.fetch(context.WithoutCancel(ctx), id)
			d.cache.Add(id, f.entry)
			d.mu.Lock()
			delete(d.inflight, id)
			d.mu.Unlock()
			close(f.done)
		}()
	}
	d.mu.Unlock()
	select {
	case <-f.done:
		return f.entry.client, f.entry.err
	case <-ctx.Done():
		return Client{}, ctx.Err()
	}
}

func (d *Documents) fetch(ctx context.Context, id string) documentEntry {
	now := d.now()
	fail := func(err error) documentEntry { return documentEntry{err: err, expires: now.Add(documentFailureTTL)} }
	ctx, cancel := context.WithTimeout(ctx, documentTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return fail(documentError("the URL cannot be fetched"))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		if de := (*DocumentError)(nil); errors.As(err, &de) { // the dialer's refusal
			return fail(de)
		}
		return fail(documentError("it could not be fetched (%s)", fetchFailure(err)))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail(documentError("its URL answered %d, not 200 (redirects are not followed)", resp.StatusCode))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		return fail(documentError("it is not served as application/json"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxDocumentBytes+1))
	if err != nil {
		return fail(documentError("it could not be read"))
	}
	if len(body) > MaxDocumentBytes {
		return fail(documentError("it is larger than %d KiB", MaxDocumentBytes>>10))
	}
	c, err := ParseDocument(body, id)
	if err != nil {
		return fail(err)
	}
	c.CreatedAt = now
	return documentEntry{client: c, expires: now.Add(documentTTL(resp.Header.Get("Cache-Control")))}
}

// fetchFailure words a transport error without the internals of the dialer.
func fetchFailure(err error) string {
	var nerr net.Error
	switch {
	case errors.As(err, &nerr) && nerr.Timeout():
		return "timed out"
	case errors.As(err, new(*tls.CertificateVerificationError)), errors.As(err, new(x509.UnknownAuthorityError)),
		errors.As(err, new(x509.HostnameError)):
		return "its certificate is not trusted"
	case errors.As(err, new(*net.DNSError)):
		return "its host is unknown"
	}
	return "the connection failed"
}

// documentTTL is how long a document is kept: its max-age, within [5 min, 24 h].
func documentTTL(cacheControl string) time.Duration {
	for _, d := range strings.Split(cacheControl, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(d), "=")
		if strings.EqualFold(k, "max-age") {
			if n, err := strconv.Atoi(strings.Trim(v, `"`)); err == nil {
				return min(max(time.Duration(n)*time.Second, documentMinTTL), documentMaxTTL)
			}
		}
	}
	return documentDefaultTTL
}

// documentMembers are the members a document has beyond a registration's.
type documentMembers struct {
	ClientID     string  `json:"client_id"`
	AuthMethod   string  `json:"token_endpoint_auth_method"`
	ClientSecret *string `json:"client_secret"`
	SecretExpiry *int64  `json:"client_secret_expires_at"`
}

// ParseDocument validates a metadata document fetched from id: the registration members as
// /register checks them, client_id equal to id (simple string comparison), no secret (the
// client has none: it authenticates with PKCE alone, token_endpoint_auth_method none).
func ParseDocument(body []byte, id string) (Client, error) {
	var m documentMembers
	if err := json.Unmarshal(body, &m); err != nil {
		return Client{}, documentError("it is not a valid JSON object")
	}
	switch {
	case m.ClientID != id:
		return Client{}, documentError("its client_id is not the URL it was fetched from")
	case m.ClientSecret != nil || m.SecretExpiry != nil:
		return Client{}, documentError("it carries a client secret, which a published document must not")
	case m.AuthMethod != "" && m.AuthMethod != AuthNone:
		return Client{}, documentError("token_endpoint_auth_method must be none (the client has no secret)")
	}
	reg, err := ParseRegistration(body)
	if err != nil {
		var rerr *RegistrationError
		if errors.As(err, &rerr) {
			return Client{}, documentError("%s", rerr.Description)
		}
		return Client{}, documentError("%v", err)
	}
	reg.AuthMethod = AuthNone
	c := reg.Client(id, "", time.Time{})
	c.Source = SourceMetadata
	return c, nil
}
