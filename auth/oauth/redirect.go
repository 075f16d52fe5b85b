package oauth

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
)

// maxURIBytes bounds every URI a client gives us: real redirect URIs are well under 200 bytes,
// and each one is stored and compared on every authorization request.
const maxURIBytes = 2000

// deniedSchemes can never be redirect targets: they run script, read local files, stay inside
// the browser or are not HTTP at all. Every other scheme is a private-use one (RFC 8252 §7.1).
var deniedSchemes = map[string]bool{
	"javascript": true, "vbscript": true, "data": true, "blob": true, "about": true,
	"file": true, "filesystem": true, "view-source": true, "ftp": true, "ws": true, "wss": true,
}

// CheckRedirectURI validates a redirect URI a client registers. native reports a loopback http
// URI or a private-use scheme, the redirects of native applications (RFC 8252). The error says
// in words what is wrong, fit for an invalid_redirect_uri error_description.
func CheckRedirectURI(raw string) (native bool, err error) {
	if raw == "" {
		return false, errors.New("redirect URI is empty")
	}
	if len(raw) > maxURIBytes {
		return false, errors.New("redirect URI is longer than 2000 bytes")
	}
	if !uriChars(raw) {
		return false, errors.New("redirect URI contains a character that is not allowed in a URI")
	}
	if strings.Contains(raw, "#") {
		return false, errors.New("redirect URI must not contain a fragment")
	}
	if !validScheme(raw) {
		return false, errors.New("redirect URI is not an absolute URI")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false, errors.New("redirect URI is not a valid URI")
	}
	if u.User != nil {
		return false, errors.New("redirect URI must not contain user information")
	}
	switch {
	case deniedSchemes[u.Scheme]:
		return false, errors.New("redirect URI scheme " + u.Scheme + " is not allowed")
	case u.Opaque != "":
		// scheme:rest without a slash is no place to return to; this also refuses the
		// retired out-of-band value urn:ietf:wg:oauth:2.0:oob.
		return false, errors.New("redirect URI must have a path starting with /")
	case u.Scheme == "https":
		if u.Hostname() == "" {
			return false, errors.New("https redirect URI must have a host")
		}
		return false, nil
	case u.Scheme == "http":
		if _, ok := splitLoopback(raw); !ok {
			return false, errors.New("http redirect URI is allowed only for a loopback host (127.0.0.1, [::1] or localhost); use https")
		}
	}
	return true, nil
}

// MatchRedirectURI finds the registered redirect URI the presented one stands for and returns
// it. Matching is by exact string, but for http on a loopback host, where the port may differ
// (RFC 8252 §7.3: native apps listen on whatever port is free). Nothing is normalised: a path
// that differs in one byte does not match.
func MatchRedirectURI(registered []string, presented string) (string, bool) {
	if len(presented) > maxURIBytes || strings.Contains(presented, "#") {
		return "", false
	}
	if u, err := url.Parse(presented); err != nil || u.User != nil {
		return "", false
	}
	for _, r := range registered {
		if r == presented {
			return r, true
		}
	}
	p, ok := splitLoopback(presented)
	if !ok {
		return "", false
	}
	for _, r := range registered {
		reg, ok := splitLoopback(r)
		// Both hosts are plain ASCII here (splitLoopback checked), so EqualFold cannot fold
		// a look-alike such as the Kelvin sign into a letter.
		if ok && reg.scheme == p.scheme && strings.EqualFold(reg.host, p.host) && reg.rest == p.rest {
			return r, true
		}
	}
	return "", false
}

// loopbackURI is an http loopback URI cut into the parts MatchRedirectURI compares, taken from
// the raw string so that no parser normalises them.
type loopbackURI struct {
	scheme string // as written
	host   string // without the port; IPv6 in brackets
	rest   string // path and query
}

func splitLoopback(raw string) (loopbackURI, bool) {
	if !uriChars(raw) {
		return loopbackURI{}, false
	}
	scheme, after, ok := strings.Cut(raw, "://")
	if !ok || !strings.EqualFold(scheme, "http") {
		return loopbackURI{}, false
	}
	end := strings.IndexAny(after, "/?#")
	if end < 0 {
		end = len(after)
	}
	authority, rest := after[:end], after[end:]
	host, port := authority, ""
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.Contains(authority[i:], "]") {
		host, port = authority[:i], authority[i+1:]
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return loopbackURI{}, false
		}
	}
	if strings.ContainsRune(authority, '@') || !loopbackHost(host) {
		return loopbackURI{}, false
	}
	return loopbackURI{scheme: scheme, host: host, rest: rest}, true
}

// loopbackHost reports whether host (without its port) names the loopback interface:
// localhost, an IPv4 address in 127.0.0.0/8 or [::1]. Address literals must be canonical (no
// 127.1, no leading zeros, no zone), so what we compare is what a browser dials.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		return err == nil && a == netip.IPv6Loopback()
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Is4() && a.As4()[0] == 127
}

// validScheme reports whether raw starts with an RFC 3986 scheme followed by a colon.
func validScheme(raw string) bool {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return true
		default:
			return false
		}
	}
	return false
}

// uriChars reports whether s holds only characters RFC 3986 allows in a URI. Spaces,
// backslashes (which browsers read as slashes), quotes and non-ASCII look-alikes are refused
// rather than interpreted.
func uriChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("-._~:/?#[]@!$&'()*+,;=%", rune(c)) {
			return false
		}
	}
	return true
}
