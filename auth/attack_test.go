package auth_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/token"
)

// The JWT attack suite: forged and malformed access tokens presented to Validate and to Caller
// (what the guard authenticates a tool call with). Wherever a case is about one property of a
// token (a header, a claim, the encoding) the token is signed with our own signing key, unsealed
// from the store with the master key, so nothing but that property can be why it is refused;
// the details' reason is asserted for those cases to show which check fired. The attacker's
// tokens are signed with keys generated here.

// attackerKeys are keys the attacker owns.
type attackerKeys struct {
	ed   ed25519.PrivateKey
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	cert []byte // a self-signed certificate for the RSA key (DER)
}

var attacker = sync.OnceValue(func() attackerKeys {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: testIssuer},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rk.PublicKey, rk)
	if err != nil {
		panic(err)
	}
	return attackerKeys{ed: ed, rsa: rk, ec: ek, cert: cert}
})

// attackEnv is a deployment under attack: ada and bob exist, ada is logged in.
type attackEnv struct {
	*env
	ada, bob auth.User
	tokens   auth.Tokens // ada's genuine login
	kid      string      // our signing key's id
	key      ed25519.PrivateKey
	genuine  map[string]any // the payload of ada's genuine access token
}

func newAttackEnv(t *testing.T) *attackEnv {
	t.Helper()
	a := &attackEnv{env: newEnv(t)}
	a.ada = a.createUser(t, "ada@example.com", "ada")
	a.bob = a.createUser(t, "bob@example.com", "bob")
	a.tokens = a.login(t, "ada")
	a.kid, _ = header(t, a.tokens.AccessToken)["kid"].(string)
	keys, err := a.store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, sk := range keys {
		if sk.ID != a.kid {
			continue
		}
		der, err := newSealer(t, a.master).Open(sk.ID, sk.PrivateSealed)
		if err != nil {
			t.Fatal(err)
		}
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			t.Fatal(err)
		}
		a.key, _ = priv.(ed25519.PrivateKey)
	}
	if a.key == nil {
		t.Fatalf("no Ed25519 signing key %q in the store", a.kid)
	}
	a.genuine = decodeSegment(t, segments(t, a.tokens.AccessToken)[1])
	// Verified once, the genuine token is in the verified-token cache, which finds an entry
	// by the token's signature: every case that reuses that signature meets the cached entry,
	// the path that must still refuse it.
	a.validate(t, a.svc, a.tokens.AccessToken)
	return a
}

// head is the header of our own tokens.
func (a *attackEnv) head() map[string]any {
	return map[string]any{"alg": token.AlgEdDSA, "typ": token.AccessTokenType, "kid": a.kid}
}

// claims is a copy of the genuine payload.
func (a *attackEnv) claims() map[string]any { return maps.Clone(a.genuine) }

// ours signs h and c with our own key.
func (a *attackEnv) ours(t *testing.T, h, c any) string {
	t.Helper()
	return signEd(a.key, mustJSON(t, h), mustJSON(t, c))
}

// oursRaw signs raw header and payload bytes (not necessarily JSON) with our own key.
func (a *attackEnv) oursRaw(h, c string) string { return signEd(a.key, []byte(h), []byte(c)) }

// claimsWith is the genuine payload with key set to v (deleted if v is nil).
func (a *attackEnv) claimsWith(key string, v any) map[string]any {
	c := a.claims()
	if v == nil {
		delete(c, key)
	} else {
		c[key] = v
	}
	return c
}

// headWith is our header with key set to v (deleted if v is nil).
func (a *attackEnv) headWith(key string, v any) map[string]any {
	h := a.head()
	if v == nil {
		delete(h, key)
	} else {
		h[key] = v
	}
	return h
}

// ourPublic is our signing key's public half.
func (a *attackEnv) ourPublic() ed25519.PublicKey { return a.key.Public().(ed25519.PublicKey) }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	if s, ok := v.(string); ok {
		return []byte(s) // already JSON (or deliberately not)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signEd is a compact JWS of header and payload signed with priv.
func signEd(priv ed25519.PrivateKey, header, payload []byte) string {
	input := b64(header) + "." + b64(payload)
	return input + "." + b64(ed25519.Sign(priv, []byte(input)))
}

// unsigned is a compact JWS of header and payload with sig as the signature segment.
func unsigned(t *testing.T, h, c any, sig string) string {
	t.Helper()
	return b64(mustJSON(t, h)) + "." + b64(mustJSON(t, c)) + "." + sig
}

// withJWT signs c with golang-jwt: the attacker's method and key, h's entries added to the header.
func withJWT(t *testing.T, method jwt.SigningMethod, key any, h, c map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, jwt.MapClaims(c))
	for k, v := range h {
		if k != "alg" {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}

// hs256 is an HS256 token keyed with secret (an empty secret too, which golang-jwt refuses).
func hs256(t *testing.T, h, c map[string]any, secret []byte) string {
	t.Helper()
	h = maps.Clone(h)
	h["alg"] = "HS256"
	input := b64(mustJSON(t, h)) + "." + b64(mustJSON(t, c))
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + b64(mac.Sum(nil))
}

func segments(t *testing.T, tok string) []string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	return parts
}

func decodeSegment(t *testing.T, seg string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep the times as the integers they were
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// tamper re-encodes the genuine token's payload after edit, keeping the original signature.
func (a *attackEnv) tamper(t *testing.T, edit func(c map[string]any)) string {
	t.Helper()
	parts := segments(t, a.tokens.AccessToken)
	c := a.claims()
	edit(c)
	return parts[0] + "." + b64(mustJSON(t, c)) + "." + parts[2]
}

// withSignature replaces the genuine token's signature bytes by edit's result.
func (a *attackEnv) withSignature(t *testing.T, edit func(sig []byte) []byte) string {
	t.Helper()
	parts := segments(t, a.tokens.AccessToken)
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	return parts[0] + "." + parts[1] + "." + b64(edit(bytes.Clone(sig)))
}

// fresh returns a's genuine claims moved to now (iat, nbf) with exp one access TTL later.
func (a *attackEnv) fresh() map[string]any {
	now := a.clock.Now()
	c := a.claims()
	c["iat"], c["nbf"], c["exp"] = now.Unix(), now.Unix(), now.Add(auth.DefaultAccessTTL).Unix()
	return c
}

// Reasons in the error details: which check refused a token signed with our own key.
const (
	reasonMalformed = "malformed"
	reasonRejected  = "signature or header rejected"
	reasonIssuer    = "wrong issuer"
	reasonAudience  = "wrong audience"
	reasonSubject   = "no subject"
	reasonMissing   = "missing exp or iat"
	reasonFuture    = "issued in the future"
	reasonNotYet    = "not yet valid"
)

type attackCase struct {
	name string
	// own marks the cases that change the deployment (move the clock, rotate, revoke, restart,
	// edit the user): they get one of their own. The others share one.
	own bool
	// token builds the token to present; only an own case may change a.
	token func(t *testing.T, a *attackEnv) string
	// code is what both Validate and Caller answer, unless caller says otherwise.
	code   apierr.Code
	caller apierr.Code
	// reason, if set, is the details' reason Validate gives: which check fired.
	reason string
	// validateAccepts marks the account cases: Validate checks the token, not the account (the
	// token is genuine and its session live), so it accepts; Caller, which the guard uses to
	// authenticate every tool call, loads the live user and refuses.
	validateAccepts bool
}

func attackCases() []attackCase {
	const (
		invalid = apierr.TokenInvalid
		expired = apierr.TokenExpired
		revoked = apierr.TokenRevoked
	)
	return []attackCase{
		// --- alg none ---
		{name: "alg none with no signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return unsigned(t, a.headWith("alg", "none"), a.claims(), "")
			}},
		{name: "alg none keeping the genuine signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return unsigned(t, a.headWith("alg", "none"), a.claims(), segments(t, a.tokens.AccessToken)[2])
			}},
		{name: "alg None with no signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return unsigned(t, a.headWith("alg", "None"), a.claims(), "")
			}},
		{name: "alg NONE with no signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return unsigned(t, a.headWith("alg", "NONE"), a.claims(), "")
			}},
		{name: "alg none signed by golang-jwt's none method", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return withJWT(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, a.head(), a.claims())
			}},
		{name: "no alg at all, with our signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.headWith("alg", nil), a.claims()) }},
		{name: "alg eddsa in lower case, with our signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.headWith("alg", "eddsa"), a.claims()) }},

		// --- algorithm confusion: HMAC keyed with what we publish ---
		{name: "HS256 keyed with our Ed25519 public key bytes", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return hs256(t, a.head(), a.claims(), a.ourPublic()) }},
		{name: "HS256 keyed with our public key as PEM text", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				der, err := x509.MarshalPKIXPublicKey(a.ourPublic())
				if err != nil {
					t.Fatal(err)
				}
				return hs256(t, a.head(), a.claims(), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
			}},
		{name: "HS256 keyed with our published JWK as JSON text", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return hs256(t, a.head(), a.claims(), mustJSON(t, a.keys.JWKS().Keys[0]))
			}},
		{name: "HS256 keyed with our whole JWKS document", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return hs256(t, a.head(), a.claims(), mustJSON(t, a.keys.JWKS()))
			}},
		{name: "HS256 keyed with our JWK's base64url x value", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return hs256(t, a.head(), a.claims(), []byte(a.keys.JWKS().Keys[0].X))
			}},
		{name: "HS256 keyed with an empty secret", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return hs256(t, a.head(), a.claims(), nil) }},

		// --- the attacker's own keys under our kid ---
		{name: "RS256 signed by the attacker's RSA key under our kid", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return withJWT(t, jwt.SigningMethodRS256, attacker().rsa, a.head(), a.claims())
			}},
		{name: "ES256 signed by the attacker's P-256 key under our kid", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return withJWT(t, jwt.SigningMethodES256, attacker().ec, a.head(), a.claims())
			}},
		{name: "EdDSA signed by the attacker's Ed25519 key under our kid", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return signEd(attacker().ed, mustJSON(t, a.head()), mustJSON(t, a.claims()))
			}},

		// --- kid ---
		{name: "an unknown kid on the attacker's own key", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return signEd(attacker().ed, mustJSON(t, a.headWith("kid", "k_attacker")), mustJSON(t, a.claims()))
			}},
		{name: "an unknown kid with our signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.headWith("kid", "k_0000000000000000"), a.claims())
			}},
		{name: "no kid, with our signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.headWith("kid", nil), a.claims()) }},
		{name: "an empty kid, with our signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.headWith("kid", ""), a.claims()) }},
		{name: "a kid with path traversal", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.headWith("kid", "../../../../etc/passwd"), a.claims())
			}},
		{name: "a kid with SQL injection", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.headWith("kid", "' OR 1=1 --"), a.claims())
			}},
		{name: "a kid that is a MongoDB query operator", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.headWith("kid", map[string]any{"$ne": nil}), a.claims())
			}},
		{name: "a kid that is a number", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.headWith("kid", 1), a.claims()) }},
		{name: "a kid that is a list holding our kid", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.headWith("kid", []string{a.kid}), a.claims())
			}},
		{name: "our kid in upper case", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.headWith("kid", strings.ToUpper(a.kid)), a.claims())
			}},
		{name: "our kid followed by a NUL byte", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.headWith("kid", a.kid+"\x00"), a.claims()) }},

		// --- keys named or carried by the token ---
		{name: "a jku header pointing at the attacker's key set", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				h := a.headWith("kid", "k_attacker")
				h["jku"] = "https://evil.example.test/.well-known/jwks.json"
				return signEd(attacker().ed, mustJSON(t, h), mustJSON(t, a.claims()))
			}},
		{name: "a jku header on a token otherwise signed by us", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.headWith("jku", "https://evil.example.test/.well-known/jwks.json"), a.claims())
			}},
		{name: "an x5u header on a token otherwise signed by us", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.headWith("x5u", "https://evil.example.test/cert.pem"), a.claims())
			}},
		{name: "a jwk header embedding the attacker's key, signed by it", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				h := a.headWith("jwk", map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": a.kid,
					"x": b64(attacker().ed.Public().(ed25519.PublicKey))})
				return signEd(attacker().ed, mustJSON(t, h), mustJSON(t, a.claims()))
			}},
		{name: "a jwk header embedding our own key, signed by us", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.headWith("jwk", a.keys.JWKS().Keys[0]), a.claims())
			}},
		{name: "an x5c header with the attacker's certificate, signed by its key", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				h := a.headWith("x5c", []string{base64.StdEncoding.EncodeToString(attacker().cert)})
				return withJWT(t, jwt.SigningMethodRS256, attacker().rsa, h, a.claims())
			}},
		{name: "an unknown crit extension", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				h := a.headWith("crit", []string{"https://evil.example.test/ext"})
				h["https://evil.example.test/ext"] = true
				return a.ours(t, h, a.claims())
			}},
		{name: "crit b64 false (an unencoded payload)", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				h := a.headWith("crit", []string{"b64"})
				h["b64"] = false
				return a.ours(t, h, a.claims())
			}},

		// --- time claims (signed by us) ---
		{name: "a genuine token one access TTL old", own: true, code: expired,
			token: func(t *testing.T, a *attackEnv) string {
				a.clock.Advance(auth.DefaultAccessTTL)
				return a.tokens.AccessToken
			}},
		{name: "exp one second ago", code: expired,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("exp", a.clock.Now().Add(-time.Second).Unix()))
			}},
		{name: "exp at exactly now", code: expired,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("exp", a.clock.Now().Unix()))
			}},
		{name: "nbf 31 seconds ahead, beyond the clock skew", code: invalid, reason: reasonNotYet,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("nbf", a.clock.Now().Add(31*time.Second).Unix()))
			}},
		{name: "nbf an hour ahead", code: invalid, reason: reasonNotYet,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("nbf", a.clock.Now().Add(time.Hour).Unix()))
			}},
		{name: "iat 31 seconds ahead, beyond the clock skew", code: invalid, reason: reasonFuture,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("iat", a.clock.Now().Add(31*time.Second).Unix()))
			}},
		{name: "no exp", code: invalid, reason: reasonMissing,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.head(), a.claimsWith("exp", nil)) }},
		{name: "exp null", code: invalid, reason: reasonMissing,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), strings.Replace(string(mustJSON(t, a.claims())), `"exp":`, `"exp":null,"x":`, 1))
			}},
		{name: "no iat", code: invalid, reason: reasonMissing,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.head(), a.claimsWith("iat", nil)) }},
		{name: "exp as a date string", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("exp", a.clock.Now().Add(time.Hour).Format(time.RFC3339)))
			}},

		// --- issuer, audience, subject (signed by us) ---
		{name: "a wrong iss", code: invalid, reason: reasonIssuer,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("iss", "https://evil.example.test"))
			}},
		{name: "iss with a trailing slash", code: invalid, reason: reasonIssuer,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("iss", testIssuer+"/"))
			}},
		{name: "no iss", code: invalid, reason: reasonIssuer,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.head(), a.claimsWith("iss", nil)) }},
		{name: "a wrong aud", code: invalid, reason: reasonAudience,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("aud", "https://other.example.test/mcp"))
			}},
		{name: "an aud array without ours", code: invalid, reason: reasonAudience,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("aud", []string{"https://other.example.test/mcp", testIssuer}))
			}},
		{name: "an empty aud array", code: invalid, reason: reasonAudience,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.head(), a.claimsWith("aud", []string{})) }},
		{name: "no aud", code: invalid, reason: reasonAudience,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.head(), a.claimsWith("aud", nil)) }},
		{name: "an aud that extends ours", code: invalid, reason: reasonAudience,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("aud", testAudience+"/admin"))
			}},
		{name: "no sub", code: invalid, reason: reasonSubject,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.head(), a.claimsWith("sub", nil)) }},

		// --- typ: other kinds of JWT (signed by us) ---
		{name: "typ JWT", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.headWith("typ", "JWT"), a.claims()) }},
		{name: "no typ", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.headWith("typ", nil), a.claims()) }},
		{name: "typ id+jwt", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.headWith("typ", "id+jwt"), a.claims()) }},
		{name: "an ID token (typ JWT, nonce, azp, email) naming our audience too", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				c := a.claims()
				delete(c, "scope")
				c["aud"] = []string{"mcp-client", testAudience}
				c["azp"], c["nonce"], c["email"], c["email_verified"] = "mcp-client", "n-0S6_WzA2Mj", a.ada.Email, true
				c["auth_time"] = a.clock.Now().Unix()
				return a.ours(t, a.headWith("typ", "JWT"), c)
			}},
		{name: "a refresh JWT (typ rt+jwt)", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.ours(t, a.headWith("typ", "rt+jwt"), a.claims()) }},
		{name: "typ at+jwt in a list", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.headWith("typ", []string{token.AccessTokenType}), a.claims())
			}},
		{name: "a nested JWT (cty JWT) wrapping a genuine token", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.oursRaw(string(mustJSON(t, a.headWith("cty", "JWT"))), a.tokens.AccessToken)
			}},
		{name: "our refresh token presented as an access token", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return a.tokens.RefreshToken }},

		// --- tampering with a genuine token ---
		{name: "the scope upgraded, with the original signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.tamper(t, func(c map[string]any) { c["scope"] = "*" })
			}},
		{name: "the sub changed to another user, with the original signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.tamper(t, func(c map[string]any) { c["sub"] = a.bob.ID })
			}},
		{name: "a role claim added, with the original signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.tamper(t, func(c map[string]any) { c["role"] = "owner"; c["roles"] = []string{"owner"} })
			}},
		{name: "exp pushed a year out, with the original signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.tamper(t, func(c map[string]any) { c["exp"] = a.clock.Now().AddDate(1, 0, 0).Unix() })
			}},
		{name: "sid removed to dodge revocation, with the original signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.tamper(t, func(c map[string]any) { delete(c, "sid") })
			}},
		{name: "a duplicate sub appended, with the original signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				parts := segments(t, a.tokens.AccessToken)
				payload := strings.TrimSuffix(string(mustJSON(t, a.claims())), "}") + `,"sub":"` + a.bob.ID + `"}`
				return parts[0] + "." + b64([]byte(payload)) + "." + parts[2]
			}},
		{name: "the header re-encoded with its keys reordered, with the original signature", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				parts := segments(t, a.tokens.AccessToken)
				h := `{"kid":"` + a.kid + `","typ":"at+jwt","alg":"EdDSA"}`
				return b64([]byte(h)) + "." + parts[1] + "." + parts[2]
			}},
		{name: "the original signature alone", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return segments(t, a.tokens.AccessToken)[2] }},
		{name: "the original signature under an empty header and payload", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return ".." + segments(t, a.tokens.AccessToken)[2] }},
		{name: "the original signature under bob's header and payload", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				bobs := segments(t, a.login(t, "bob").AccessToken)
				return bobs[0] + "." + bobs[1] + "." + segments(t, a.tokens.AccessToken)[2]
			}},
		{name: "the signature's first byte flipped", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.withSignature(t, func(s []byte) []byte { s[0] ^= 0x01; return s })
			}},
		{name: "the signature's last byte flipped", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.withSignature(t, func(s []byte) []byte { s[len(s)-1] ^= 0x80; return s })
			}},
		{name: "the signature with a byte appended", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.withSignature(t, func(s []byte) []byte { return append(s, 0) })
			}},
		{name: "the signature truncated by a byte", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.withSignature(t, func(s []byte) []byte { return s[:len(s)-1] })
			}},
		{name: "the signature all zeros", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.withSignature(t, func(s []byte) []byte { return make([]byte, len(s)) })
			}},
		{name: "the signature of bob's genuine token", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				bobs := segments(t, a.login(t, "bob").AccessToken)
				parts := segments(t, a.tokens.AccessToken)
				return parts[0] + "." + parts[1] + "." + bobs[2]
			}},
		{name: "the signature stripped, keeping the dot", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				parts := segments(t, a.tokens.AccessToken)
				return parts[0] + "." + parts[1] + "."
			}},
		{name: "the signature's last character changed only in its unused bits", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				// 64 signature bytes take 85⅓ characters: the last one carries 4 unused low bits.
				tok := a.tokens.AccessToken
				const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
				last := strings.IndexByte(alphabet, tok[len(tok)-1])
				return tok[:len(tok)-1] + string(alphabet[last^0x01])
			}},

		// --- encoding and shape (refused before or by the parser: the reason is not pinned) ---
		{name: "a padded header (= appended)", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				parts := segments(t, a.tokens.AccessToken)
				return parts[0] + "=." + parts[1] + "." + parts[2]
			}},
		{name: "a padded payload (== appended)", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				parts := segments(t, a.tokens.AccessToken)
				return parts[0] + "." + parts[1] + "==." + parts[2]
			}},
		{name: "a padded signature (== appended)", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return a.tokens.AccessToken + "==" }},
		{name: "standard base64 ('+' and '/') instead of base64url", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				// Sign until the token has a character the two alphabets spell differently.
				for i := 0; ; i++ {
					tok := a.ours(t, a.head(), a.claimsWith("jti", strings.Repeat("?", i)+"~>"))
					if strings.ContainsAny(tok, "-_") {
						return strings.NewReplacer("-", "+", "_", "/").Replace(tok)
					}
				}
			}},
		{name: "four segments", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				return a.tokens.AccessToken + "." + segments(t, a.tokens.AccessToken)[2]
			}},
		{name: "five segments shaped as a JWE", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				h := b64([]byte(`{"alg":"dir","enc":"A256GCM","typ":"at+jwt","kid":"` + a.kid + `"}`))
				return h + "..AAAAAAAAAAAAAAAA." + segments(t, a.tokens.AccessToken)[1] + ".AAAAAAAAAAAAAAAAAAAAAA"
			}},
		{name: "two segments", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				parts := segments(t, a.tokens.AccessToken)
				return parts[0] + "." + parts[1]
			}},
		{name: "one segment", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return segments(t, a.tokens.AccessToken)[1] }},
		{name: "only dots", code: invalid,
			token: func(*testing.T, *attackEnv) string { return ".." }},
		// Caller answers an empty credential as absent (UNAUTHENTICATED), not as a bad token.
		{name: "an empty string", code: invalid, caller: apierr.Unauthenticated, reason: reasonMalformed,
			token: func(*testing.T, *attackEnv) string { return "" }},
		{name: "a space before a genuine token", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return " " + a.tokens.AccessToken }},
		{name: "a space after a genuine token", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return a.tokens.AccessToken + " " }},
		{name: "a tab before a genuine token", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return "\t" + a.tokens.AccessToken }},
		{name: "a newline before a genuine token", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return "\n" + a.tokens.AccessToken }},
		{name: "a newline after a genuine token", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return a.tokens.AccessToken + "\n" }},
		{name: "CRLF after a genuine token", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return a.tokens.AccessToken + "\r\n" }},
		{name: "a newline inside a genuine token's signature", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				tok := a.tokens.AccessToken
				return tok[:len(tok)-10] + "\n" + tok[len(tok)-10:]
			}},
		{name: "a 1 MiB token", code: invalid, reason: reasonMalformed,
			token: func(t *testing.T, a *attackEnv) string {
				h := a.headWith("pad", strings.Repeat("A", 1<<20))
				return a.ours(t, h, a.claims())
			}},
		{name: "non-UTF-8 bytes in place of the header", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				parts := segments(t, a.tokens.AccessToken)
				return "\xff\xfe\xfd." + parts[1] + "." + parts[2]
			}},
		{name: "a non-UTF-8 byte after a genuine token", code: invalid,
			token: func(t *testing.T, a *attackEnv) string { return a.tokens.AccessToken + "\xc3" }},
		{name: "a header JSON with invalid UTF-8 in the kid", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.oursRaw(`{"alg":"EdDSA","typ":"at+jwt","kid":"`+a.kid+"\xff"+`"}`, string(mustJSON(t, a.claims())))
			}},
		{name: "a header that is a JSON array", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.oursRaw(`["EdDSA","at+jwt","`+a.kid+`"]`, string(mustJSON(t, a.claims())))
			}},
		{name: "a header that is a JSON string", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.oursRaw(`"EdDSA"`, string(mustJSON(t, a.claims()))) }},
		{name: "a header that is JSON null", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.oursRaw(`null`, string(mustJSON(t, a.claims()))) }},
		{name: "a header with trailing garbage after the object", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.oursRaw(string(mustJSON(t, a.head()))+"x", string(mustJSON(t, a.claims())))
			}},
		{name: "a payload that is a JSON array", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string { return a.oursRaw(string(mustJSON(t, a.head())), `[1,2,3]`) }},
		{name: "a payload that is a JSON string", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.oursRaw(string(mustJSON(t, a.head())), strconv.Quote(string(mustJSON(t, a.claims()))))
			}},
		{name: "a payload that is JSON null", code: invalid, reason: reasonIssuer,
			token: func(t *testing.T, a *attackEnv) string { return a.oursRaw(string(mustJSON(t, a.head())), `null`) }},
		{name: "an empty payload object", code: invalid, reason: reasonIssuer,
			token: func(t *testing.T, a *attackEnv) string { return a.oursRaw(string(mustJSON(t, a.head())), `{}`) }},
		{name: "a payload of claims with the wrong JSON types", code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				return a.ours(t, a.head(), a.claimsWith("sub", map[string]any{"$ne": ""}))
			}},

		// --- duplicate members (RFC 7515 §5.2 / RFC 7519 §4: reject, or keep only the last) ---
		{name: "duplicate sub keys, signed by us", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				payload := `{"sub":"` + a.bob.ID + `",` + strings.TrimPrefix(string(mustJSON(t, a.claims())), "{")
				return a.oursRaw(string(mustJSON(t, a.head())), payload)
			}},
		{name: "a duplicate sub spelled with a JSON escape, signed by us", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				payload := strings.TrimSuffix(string(mustJSON(t, a.claims())), "}") + `,"s\u0075b":"` + a.bob.ID + `"}`
				return a.oursRaw(string(mustJSON(t, a.head())), payload)
			}},
		{name: "duplicate alg keys (none, then EdDSA), signed by us", code: invalid,
			token: func(t *testing.T, a *attackEnv) string {
				h := `{"alg":"none","alg":"EdDSA","typ":"at+jwt","kid":"` + a.kid + `"}`
				return a.oursRaw(h, string(mustJSON(t, a.claims())))
			}},

		// --- keys, sessions and accounts over time ---
		{name: "a fresh token signed by a key rotated out past its overlap", own: true, code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				if _, err := a.svc.RotateSigningKey(context.Background()); err != nil {
					t.Fatal(err)
				}
				// Inside the overlap the retired key (a.key) still verifies...
				if _, err := a.svc.Validate(context.Background(), auth.Secret(a.ours(t, a.head(), a.fresh()))); err != nil {
					t.Fatalf("the retired key inside its overlap: %v", err)
				}
				// ...and past it (access TTL + 30 s skew) no longer, whatever the token says.
				a.clock.Advance(auth.DefaultAccessTTL + time.Minute)
				return a.ours(t, a.head(), a.fresh())
			}},
		{name: "a genuine token whose key was rotated out past its overlap", own: true, code: invalid, reason: reasonRejected,
			token: func(t *testing.T, a *attackEnv) string {
				// A 2 h token from a service with a longer TTL, validated by the 15 min service
				// after the key's 15 min 30 s overlap: still unexpired, but its key is retired.
				long := a.newService(t, a.keys, func(c *auth.Config) { c.AccessTTL = 2 * time.Hour })
				tokens, _, err := long.Login(context.Background(), auth.LoginRequest{Identifier: "ada", Password: testPassword})
				if err != nil {
					t.Fatal(err)
				}
				a.svc = a.newService(t, a.keys, nil) // NewService sets the shared key set's overlap
				if _, err := a.svc.RotateSigningKey(context.Background()); err != nil {
					t.Fatal(err)
				}
				a.clock.Advance(20 * time.Minute)
				return tokens.AccessToken
			}},
		{name: "a token of a revoked session", own: true, code: revoked,
			token: func(t *testing.T, a *attackEnv) string {
				if _, err := a.svc.Revoke(context.Background(), auth.Secret(a.tokens.AccessToken)); err != nil {
					t.Fatal(err)
				}
				return a.tokens.AccessToken
			}},
		{name: "a token of a session logged out by its refresh token, seen after a restart", own: true, code: revoked,
			token: func(t *testing.T, a *attackEnv) string {
				if _, err := a.svc.Logout(context.Background(), nil, auth.Secret(a.tokens.RefreshToken), false); err != nil {
					t.Fatal(err)
				}
				a.svc = a.restart(t)
				return a.tokens.AccessToken
			}},
		{name: "a revoked session's token with its sid removed", own: true, code: invalid, reason: reasonRejected,
			// Dropping sid does not need our key to be caught: only a tampered payload can lose it.
			token: func(t *testing.T, a *attackEnv) string {
				if _, err := a.svc.Revoke(context.Background(), auth.Secret(a.tokens.AccessToken)); err != nil {
					t.Fatal(err)
				}
				return a.tamper(t, func(c map[string]any) { delete(c, "sid") })
			}},
		// The Store has no update: the user is disabled by replacing its record (same id) with a
		// disabled one. The token is genuine and its session live.
		{name: "a token of a user disabled after logging in", own: true, caller: apierr.AccountDisabled, validateAccepts: true,
			token: func(t *testing.T, a *attackEnv) string {
				ctx := context.Background()
				u, err := a.store.GetUser(ctx, a.ada.ID)
				if err != nil {
					t.Fatal(err)
				}
				u.Disabled = true
				if err := a.store.DeleteUser(ctx, u.ID); err != nil {
					t.Fatal(err)
				}
				if err := a.store.CreateUser(ctx, u); err != nil {
					t.Fatal(err)
				}
				return a.tokens.AccessToken
			}},
		{name: "a token of a user deleted after logging in", own: true, caller: revoked, validateAccepts: true,
			token: func(t *testing.T, a *attackEnv) string {
				if err := a.store.DeleteUser(context.Background(), a.ada.ID); err != nil {
					t.Fatal(err)
				}
				return a.tokens.AccessToken
			}},
	}
}

func TestShouldRejectEveryForgedOrMalformedToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// The forging tools are sound: the genuine claims re-signed with our key by either route,
	// and golang-jwt signing with our key, are accepted, so every refusal below is the case's.
	shared := newAttackEnv(t) // the deployment the cases that do not change it share
	a := shared
	for name, tok := range map[string]string{
		"re-signed by hand":    a.ours(t, a.head(), a.claims()),
		"re-signed fresh":      a.ours(t, a.head(), a.fresh()),
		"signed by golang-jwt": withJWT(t, jwt.SigningMethodEdDSA, a.key, a.head(), a.claims()),
		"typ in other case":    a.ours(t, a.headWith("typ", "AT+JWT"), a.claims()),
	} {
		if c, err := a.svc.Validate(ctx, auth.Secret(tok)); err != nil || c.Subject != a.ada.ID {
			t.Fatalf("control token %s: %+v, %v", name, c, err)
		}
	}

	cases := attackCases()
	if len(cases) < 30 {
		t.Fatalf("%d cases, want at least 30", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := shared
			if tc.own {
				a = newAttackEnv(t)
			}
			tok := auth.Secret(tc.token(t, a))

			c, err := a.svc.Validate(ctx, tok)
			switch {
			case tc.validateAccepts:
				if err != nil {
					t.Fatalf("Validate: %v; want it accepted (it does not look at the account)", err)
				}
			case err == nil:
				u, _, cerr := a.svc.Caller(ctx, tok)
				t.Fatalf("Validate ACCEPTED the token: claims %+v; Caller: user %q, %v", c, u.Email, cerr)
			default:
				wantCode(t, "Validate", err, tc.code)
				if c.Subject != "" || c.SessionID != "" || c.TokenID != "" || len(c.Scopes) != 0 {
					t.Errorf("Validate returned claims with its error: %+v", c)
				}
				if tc.reason != "" {
					if reason, _ := apierr.From(err).Details["reason"].(string); reason != tc.reason {
						t.Errorf("Validate refused it for %q (%v), want %q", reason, err, tc.reason)
					}
				}
			}

			want := tc.caller
			if want == "" {
				want = tc.code
			}
			u, c, err := a.svc.Caller(ctx, tok)
			if err == nil {
				t.Fatalf("Caller ACCEPTED the token: user %s, claims %+v", u.ID, c)
			}
			wantCode(t, "Caller", err, want)
			if u.ID != "" || c.Subject != "" {
				t.Errorf("Caller returned an identity with its error: user %q, claims %+v", u.ID, c)
			}
		})
	}
}
