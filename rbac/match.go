package rbac

import (
	"strings"

	"github.com/bduf/mcpauth/apierr"
)

// MaxPatternLen is the longest permission pattern ValidatePattern accepts, in bytes.
const MaxPatternLen = 128

// A permission is "resource:action": both parts non-empty, one ':' between them. A pattern is a
// permission whose parts may end in '*' (a prefix match; "*" alone matches anything), or a single
// part without ':', which means "<part>:*" ("projects" is "projects:*", "*" is "*:*").

// splitPattern splits a pattern into resource and action; a pattern without ':' is "<p>:*".
func splitPattern(p string) (resource, action string) {
	if i := strings.IndexByte(p, ':'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return p, "*"
}

// splitPermission splits a permission into its two non-empty parts; ok is false for anything
// else (no ':', more than one, an empty part).
func splitPermission(perm string) (resource, action string, ok bool) {
	i := strings.IndexByte(perm, ':')
	if i <= 0 || i == len(perm)-1 || strings.IndexByte(perm[i+1:], ':') >= 0 {
		return "", "", false
	}
	return perm[:i], perm[i+1:], true
}

// Match reports whether pattern grants permission. Resource and action are matched separately:
// "*" matches anything, a trailing '*' is a prefix match, anything else must be equal
// (case-sensitive). A malformed permission (empty, without ':', with an empty part or a second
// ':') matches nothing: fail closed.
//
// A permission that itself contains '*' (a request for "everything under projects") is granted
// only by a pattern that Covers it, never by the literal text: "proj*" grants "projects:*" but
// "projects:read" does not.
func Match(pattern, permission string) bool {
	res, act, ok := splitPermission(permission)
	if !ok {
		return false
	}
	if strings.IndexByte(permission, '*') >= 0 {
		return Covers(pattern, permission)
	}
	pr, pa := splitPattern(pattern)
	return matchPart(pr, res) && matchPart(pa, act)
}

// matchPart matches one part of a pattern against one literal part of a permission.
func matchPart(pattern, part string) bool {
	if n := len(pattern); n > 0 && pattern[n-1] == '*' {
		return strings.HasPrefix(part, pattern[:n-1])
	}
	return pattern == part
}

// Covers reports whether the holder pattern grants everything pattern could grant: whether a
// holder of holder may hand out pattern ("nobody can grant what they do not hold").
// "projects:*" covers "projects:read" and "projects:*"; "proj*" covers "projects:*";
// "projects:read" does not cover "projects:*"; only "*" (or "*:*") covers "*". An invalid
// holder or pattern (see ValidatePattern) covers and is covered by nothing.
func Covers(holder, pattern string) bool {
	if !validPattern(holder) || !validPattern(pattern) {
		return false
	}
	hr, ha := splitPattern(holder)
	pr, pa := splitPattern(pattern)
	return coversPart(hr, pr) && coversPart(ha, pa)
}

// coversPart: every string the pattern part p matches, the holder part h matches too.
func coversPart(h, p string) bool {
	if n := len(h); h[n-1] == '*' {
		return strings.HasPrefix(p, h[:n-1])
	}
	// An exact holder covers only the same exact part, never a wildcard.
	return h == p && p[len(p)-1] != '*'
}

// ValidatePattern checks a permission pattern as it may be stored in a role or a grant: at most
// MaxPatternLen bytes of [a-zA-Z0-9_.-], at most one ':' with a non-empty part on each side, and
// '*' only as the last character of a part. Errors are INVALID_ARGUMENT naming "permissions".
func ValidatePattern(p string) error {
	switch {
	case p == "":
		return apierr.Field("permissions", "a permission must not be empty")
	case len(p) > MaxPatternLen:
		return apierr.Field("permissions", "a permission is at most %d bytes", MaxPatternLen)
	}
	if !validPattern(p) {
		return apierr.Field("permissions", "%q is not resource:action of [a-zA-Z0-9_.-], with '*' only at the end of a part", p)
	}
	return nil
}

// validPattern is ValidatePattern without the error (no allocation).
func validPattern(p string) bool {
	if p == "" || len(p) > MaxPatternLen {
		return false
	}
	colons := 0
	partLen := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == ':':
			colons++
			if colons > 1 || partLen == 0 {
				return false
			}
			partLen = 0
			continue
		case c == '*':
			if i+1 < len(p) && p[i+1] != ':' {
				return false
			}
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
		partLen++
	}
	return partLen > 0
}
