package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/auth/storeerr"
)

// The browser's way through the server: GET /authorize checks the request and shows the login
// page; the login (and, with MFA, the second-factor page) proves the user; the consent page
// asks; the answer goes back to the client's redirect URI with the code or the error, the
// state and the issuer (RFC 9207).
//
// What the browser carries between the pages is sealed with the master key (pending): the
// request as checked, and once proven, who the user is. It is bound to the browser by a cookie
// holding a random value whose hash the sealed request carries, so a page's form cannot be
// replayed from another browser (CSRF), and it expires (pageTTL). Nothing is stored until the
// code is.

// pending is an authorization request on its way through the pages.
type pending struct {
	ClientID    string   `json:"c"`
	RedirectURI string   `json:"r"`
	Challenge   string   `json:"p"`
	Resource    string   `json:"a"`
	Scopes      []string `json:"s"`
	State       string   `json:"t,omitempty"`
	Browser     string   `json:"b"` // hash of the browser's cookie
	Expires     int64    `json:"e"`
	// Once proven: the user and when they proved who they are.
	UserID   string `json:"u,omitempty"`
	AuthTime int64  `json:"at,omitempty"`
	MFA      bool   `json:"m,omitempty"`
	// GrantUntil ends the grant this request leads to (a single sign-on's: the provider's
	// policy), Unix seconds; 0: no end but its refreshes'.
	GrantUntil int64 `json:"gu,omitempty"`
	// Granted is what the user allowed the client before (read once, at the consent page).
	Granted []string `json:"g,omitempty"`
	// Device is the sso_login sign-in this is (no client, no redirect: device.go).
	Device *deviceRequest `json:"d,omitempty"`
	// Link is the connector whose link page this sign-in is for (no client: the person signs
	// in here to link an identity to their account, sso.go).
	Link string `json:"l,omitempty"`
}

// Steps a sealed request is for; each seals with its own id, so that a login page's request
// cannot stand in for a consent page's.
const (
	stepLogin   = "oauth-login"
	stepFactor  = "oauth-mfa"
	stepConsent = "oauth-consent"
)

func (s *Server) seal(step string, p pending) string { return sealJSON(s.cfg.Sealer, step, p) }

// unseal opens a page's request: sealed by us for this step, unexpired, from this browser.
func (s *Server) unseal(r *http.Request, step string) (pending, bool) {
	var p pending
	if !openJSON(s.cfg.Sealer, step, r.PostFormValue("request"), &p) || s.now().Unix() > p.Expires {
		return pending{}, false
	}
	c, err := r.Cookie(s.browserCookieName())
	if err != nil || !sameSecretHash(secretHash(c.Value), p.Browser) {
		return pending{}, false
	}
	return p, true
}

func (s *Server) secure() bool { return strings.HasPrefix(s.cfg.Issuer, "https://") }

// browserCookieName: on https the __Host- prefix pins the cookie to this origin, path / and
// Secure (a sibling subdomain cannot plant one).
func (s *Server) browserCookieName() string {
	if s.secure() {
		return "__Host-mcpauth_browser"
	}
	return "mcpauth_browser"
}

// browser returns the hash of this browser's cookie, setting a new cookie if it has none.
func (s *Server) browser(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(s.browserCookieName()); err == nil && len(c.Value) == 43 {
		return secretHash(c.Value)
	}
	v := randomToken()
	http.SetCookie(w, &http.Cookie{Name: s.browserCookieName(), Value: v, Path: "/", HttpOnly: true,
		Secure: s.secure(), SameSite: http.SameSiteLaxMode})
	return secretHash(v)
}

// authError is an error the client hears of at its redirect URI (RFC 6749 §4.1.2.1).
type authError struct{ code, description string }

// authorize checks an authorization request and shows the login page. Until the client and
// its redirect URI are known good, errors are shown to the person, never redirected.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, http.StatusBadRequest, "This sign-in request is malformed.")
		return
	}
	q := r.Form
	ctx := r.Context()
	client, err := s.lookupClient(r, q.Get("client_id"))
	if errors.Is(err, errUnknownClient) {
		s.errorPage(w, http.StatusBadRequest, "The application asking you to sign in is not registered here.")
		return
	}
	if de := (*DocumentError)(nil); errors.As(err, &de) {
		s.errorPage(w, http.StatusBadRequest, "The application's published description ("+redirectHost(q.Get("client_id"))+") cannot be used: "+de.Reason+".")
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "authorization request", "error", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" && len(client.RedirectURIs) == 1 && !isLoopback(client.RedirectURIs[0]) {
		redirect = client.RedirectURIs[0]
	}
	if _, ok := MatchRedirectURI(client.RedirectURIs, redirect); !ok {
		s.errorPage(w, http.StatusBadRequest, "The application gave an address to return to that is not registered for it.")
		return
	}
	p, aerr := s.checkRequest(q, client)
	if aerr != nil {
		s.redirectError(w, r, redirect, q.Get("state"), *aerr)
		return
	}
	p.RedirectURI, p.Browser = redirect, s.browser(w, r)
	prompt := strings.Fields(q.Get("prompt")) // OpenID Connect's: login, consent, none
	if u, b, ok := s.resumeBrowserSession(r); ok && !slices.Contains(prompt, "login") {
		p.UserID, p.AuthTime, p.MFA = u.ID, b.AuthTime.Unix(), b.MFA
		if !b.GrantUntil.IsZero() {
			p.GrantUntil = b.GrantUntil.Unix()
		}
		s.proceed(w, r, client, p, u, slices.Contains(prompt, "consent"), slices.Contains(prompt, "none"))
		return
	}
	if slices.Contains(prompt, "none") {
		s.redirectError(w, r, redirect, p.State, authError{"login_required", "the user is not signed in here"})
		return
	}
	s.showLogin(w, http.StatusOK, client, p, "", "")
}

// proceed goes on from a proven user: straight to the code when the user already allowed this
// client these scopes and the client returns to a web origin, else to the consent page. A
// client that returns to this computer (loopback, private-use scheme) is asked every time:
// any program on the computer could claim its redirect.
func (s *Server) proceed(w http.ResponseWriter, r *http.Request, client Client, p pending, u auth.User, forceConsent, silent bool) {
	switch {
	case p.Device != nil: // an sso_login sign-in: no client to consent to, the tool redeems it
		s.finishDevice(w, r, p, u)
		return
	case p.Link != "": // signed in to link: on to the link page, which asks
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, ssoBasis+p.Link+"/link", http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	held, err := s.cfg.Scopes.Held(ctx, u, p.Scopes)
	if err != nil {
		s.log.ErrorContext(ctx, "scopes of a user at consent", "user_id", u.ID, "error", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
		return
	}
	p.Scopes = held // what the user may grant: the request narrowed to what they hold
	if !forceConsent && s.remembered(ctx, u.ID, client, held) {
		s.issue(w, r, client, p, true)
		return
	}
	if silent {
		s.redirectError(w, r, p.RedirectURI, p.State, authError{"consent_required", "the user has not allowed this request"})
		return
	}
	prior, _ := s.cfg.Store.GetConsent(ctx, u.ID, client.ID) // none: nothing is new
	p.Granted = prior.Scopes
	s.showConsent(w, client, p, u)
}

// remembered reports whether u allowed client every scope of held before, for a client whose
// redirect URIs are all https.
func (s *Server) remembered(ctx context.Context, userID string, client Client, held []string) bool {
	if !webClient(client) {
		return false
	}
	c, err := s.cfg.Store.GetConsent(ctx, userID, client.ID)
	if err != nil {
		if !errors.Is(err, storeerr.ErrNotFound) {
			s.log.WarnContext(ctx, "read a consent (asking again)", "user_id", userID, "client_id", client.ID, "error", err)
		}
		return false
	}
	for _, sc := range held {
		if !slices.Contains(c.Scopes, sc) {
			return false
		}
	}
	return true
}

// webClient reports a client whose every redirect URI is https.
func webClient(c Client) bool {
	for _, u := range c.RedirectURIs {
		if !strings.HasPrefix(u, "https://") {
			return false
		}
	}
	return len(c.RedirectURIs) > 0
}

// checkRequest checks what follows the redirect URI: the response type, PKCE, the resource,
// the scopes.
func (s *Server) checkRequest(q url.Values, client Client) (pending, *authError) {
	p := pending{ClientID: client.ID, State: q.Get("state"), Expires: s.now().Add(pageTTL).Unix()}
	switch {
	case len(p.State) > 1024:
		return p, &authError{"invalid_request", "state is too long"}
	case q.Get("response_type") != "code":
		return p, &authError{"unsupported_response_type", "only response_type=code is supported"}
	case q.Get("code_challenge") == "":
		return p, &authError{"invalid_request", "PKCE is required: send code_challenge and code_challenge_method=S256"}
	case q.Get("code_challenge_method") != "S256":
		return p, &authError{"invalid_request", "code_challenge_method must be S256"}
	case !ValidChallenge(q.Get("code_challenge")):
		return p, &authError{"invalid_request", "code_challenge must be the base64url SHA-256 of the verifier (43 characters)"}
	}
	p.Challenge = q.Get("code_challenge")
	p.Resource = s.cfg.Resource
	if rs := q["resource"]; len(rs) > 0 {
		if len(rs) > 1 || rs[0] != s.cfg.Resource {
			return p, &authError{"invalid_target", "the resource must be " + s.cfg.Resource}
		}
	}
	p.Scopes = s.requestedScopes(q.Get("scope"))
	return p, nil
}

// requestedScopes keeps the known scopes of a request (unknown ones, offline_access among
// them, are dropped: RFC 6749 lets the server grant less), or the default set when it names
// none.
func (s *Server) requestedScopes(param string) []string {
	asked := scopeList(param)
	if len(asked) == 0 {
		return append([]string(nil), s.cfg.Scopes.Default...)
	}
	var out []string
	for _, sc := range asked {
		for _, known := range s.cfg.Scopes.Supported {
			if sc == known {
				out = append(out, sc)
			}
		}
	}
	return out
}

// login checks the login form: on success the consent page, with MFA the second-factor page.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	p, client, ok := s.resume(w, r, stepLogin)
	if !ok {
		return
	}
	identifier := r.PostFormValue("identifier")
	u, err := s.cfg.Auth.Authenticate(r.Context(), auth.LoginRequest{Identifier: identifier,
		Password: auth.Secret(r.PostFormValue("password")), Client: client.ID})
	switch {
	case errors.Is(err, mfa.ErrRequired):
		p.UserID = u.ID
		p.Expires = s.now().Add(5 * time.Minute).Unix()
		s.showSecondFactor(w, http.StatusOK, client, p, "")
	case err != nil:
		status, msg := loginRefusal(err)
		if status == http.StatusInternalServerError {
			s.log.ErrorContext(r.Context(), "login on the authorization page", "error", err)
		}
		s.showLogin(w, status, client, p, identifier, msg)
	default:
		p.UserID, p.AuthTime = u.ID, s.now().Unix()
		s.startBrowserSession(w, r, u.ID, false, 0)
		s.proceed(w, r, client, p, u, false, false)
	}
}

// secondFactor checks the code of a user whose password was right.
func (s *Server) secondFactor(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	p, client, ok := s.resume(w, r, stepFactor)
	if !ok {
		return
	}
	u, err := s.cfg.Auth.AuthenticateSecondFactor(r.Context(), p.UserID, auth.Secret(strings.TrimSpace(r.PostFormValue("code"))))
	if err != nil {
		status, msg := loginRefusal(err)
		if apierr.CodeOf(err) == apierr.InvalidCredentials { // the account changed under the page: start again
			s.errorPage(w, status, msg)
			return
		}
		s.showSecondFactor(w, status, client, p, msg)
		return
	}
	p.AuthTime, p.MFA = s.now().Unix(), true
	s.startBrowserSession(w, r, u.ID, true, p.GrantUntil)
	s.proceed(w, r, client, p, u, false, false)
}

// consent takes the person's answer: a code (or access_denied) for the client's redirect URI.
func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	p, client, ok := s.resume(w, r, stepConsent)
	if !ok {
		return
	}
	ctx := r.Context()
	if r.PostFormValue("decision") != "allow" {
		s.record(ctx, audit.Event{Type: audit.OAuthConsentDenied, Subject: p.UserID, Actor: p.UserID,
			Details: map[string]any{"client_id": client.ID, "client_name": client.Name, "scopes": p.Scopes, "redirect_uri": p.RedirectURI}})
		s.redirectError(w, r, p.RedirectURI, p.State, authError{"access_denied", "the user did not allow the request"})
		return
	}
	// Remembered: what the user allowed this client so far (read for the page), this answer
	// included; nothing is written when the answer adds nothing (a client that returns to this
	// computer is asked every time, mostly for the same scopes). Two consents at once for one
	// user and client: the later write wins.
	scopes := slices.Clone(p.Granted)
	for _, sc := range p.Scopes {
		if !slices.Contains(scopes, sc) {
			scopes = append(scopes, sc)
		}
	}
	if scopes == nil {
		scopes = []string{}
	}
	if len(scopes) > len(p.Granted) || len(p.Scopes) == 0 {
		if err := s.cfg.Store.PutConsent(ctx, Consent{UserID: p.UserID, ClientID: client.ID, Scopes: scopes, UpdatedAt: s.now()}); err != nil {
			s.log.WarnContext(ctx, "record a consent (it will be asked again)", "user_id", p.UserID, "error", err)
		}
	}
	s.issue(w, r, client, p, false)
}

// issue stores a code for p and sends the browser back to the client with it.
func (s *Server) issue(w http.ResponseWriter, r *http.Request, client Client, p pending, remembered bool) {
	ctx := r.Context()
	code := randomToken()
	now := s.now()
	c := Code{Hash: codeHash(code), ClientID: client.ID, RedirectURI: p.RedirectURI, Challenge: p.Challenge,
		Resource: p.Resource, Scopes: p.Scopes, UserID: p.UserID, AuthTime: time.Unix(p.AuthTime, 0).UTC(), MFA: p.MFA,
		CreatedAt: now, ExpiresAt: now.Add(CodeTTL)}
	if p.GrantUntil != 0 {
		c.GrantUntil = time.Unix(p.GrantUntil, 0).UTC()
	}
	if err := s.cfg.Store.CreateCode(ctx, c); err != nil {
		s.log.ErrorContext(ctx, "store an authorization code", "error", err)
		s.redirectError(w, r, p.RedirectURI, p.State, authError{"server_error", "the authorization could not be stored"})
		return
	}
	s.record(ctx, audit.Event{Type: audit.OAuthAuthorized, Subject: p.UserID, Actor: p.UserID,
		Details: map[string]any{"client_id": client.ID, "client_name": client.Name, "scopes": p.Scopes,
			"redirect_uri": p.RedirectURI, "remembered_consent": remembered}})
	s.redirect(w, r, p.RedirectURI, p.State, url.Values{"code": {code}})
}

// switchAccount is the consent page's "Not you?": the browser session ends and the login page
// comes back for the same request.
func (s *Server) switchAccount(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	p, client, ok := s.resume(w, r, stepConsent)
	if !ok {
		return
	}
	s.endBrowserSession(w, r)
	p.UserID, p.AuthTime, p.MFA, p.Granted = "", 0, false, nil
	p.Expires = s.now().Add(pageTTL).Unix()
	s.showLogin(w, http.StatusOK, client, p, "", "")
}

// resume opens a page's sealed request and reads its client again (deleted meanwhile: the
// request is over). A request that does not open gets an error page.
func (s *Server) resume(w http.ResponseWriter, r *http.Request, step string) (pending, Client, bool) {
	p, ok := s.unseal(r, step)
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "This sign-in page has expired or was not opened in this browser. Start again from the application.")
		return pending{}, Client{}, false
	}
	switch {
	case p.Device != nil:
		return p, Client{Name: p.Device.Client}, true
	case p.Link != "":
		return p, Client{}, true
	}
	client, err := s.lookupClient(r, p.ClientID)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "The application asking you to sign in is no longer registered here.")
		return pending{}, Client{}, false
	}
	return p, client, true
}

// loginRefusal is what the login and second-factor pages say for err: the same words whether
// the account is unknown or the password wrong, as auth_login answers.
func loginRefusal(err error) (int, string) {
	switch apierr.CodeOf(err) {
	case apierr.InvalidCredentials:
		return http.StatusUnauthorized, "The email or username, or the password, is not right."
	case apierr.InvalidMFACode:
		return http.StatusUnauthorized, "That code is not right. Try the current code from your app, or a recovery code."
	case apierr.AccountDisabled:
		return http.StatusForbidden, "This account is disabled. Ask your administrator."
	case apierr.RateLimited:
		msg := "Too many attempts. Wait a little and try again."
		if after, ok := apierr.From(err).Details["retry_after_seconds"]; ok {
			msg = "Too many attempts. Try again in " + toString(after) + " seconds."
		}
		return http.StatusTooManyRequests, msg
	case apierr.InvalidArgument:
		return http.StatusBadRequest, "Check what you typed: " + apierr.From(err).Message + "."
	default:
		return http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment."
	}
}

func toString(v any) string {
	switch n := v.(type) {
	case int:
		return strconv.Itoa(n)
	case int64:
		return strconv.FormatInt(n, 10)
	case float64:
		return strconv.FormatFloat(n, 'f', 0, 64)
	}
	return "a few"
}

// redirectError sends an authorization error to the client's redirect URI.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, redirect, state string, e authError) {
	s.redirect(w, r, redirect, state, url.Values{"error": {e.code}, "error_description": {e.description}})
}

// redirect sends the browser to the client's redirect URI with v, the state and the issuer
// (RFC 9207, on errors too). The page answering a form post says where it goes in its CSP's
// form-action: Chromium checks the redirect after a POST against it.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, redirect, state string, v url.Values) {
	u, err := url.Parse(redirect)
	if err != nil { // checked at registration and at the request: cannot happen
		s.errorPage(w, http.StatusInternalServerError, "The application's return address is unusable.")
		return
	}
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	if state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.cfg.Issuer)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action "+formActionSource(redirect))
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// formActionSource is the CSP source a form may be sent on to: the redirect URI's origin, or
// its scheme for a private-use one (cursor:).
func formActionSource(redirect string) string {
	u, err := url.Parse(redirect)
	if err != nil {
		return "'none'"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "'self' " + u.Scheme + ":"
	}
	if isLoopback(redirect) { // any port: the client picks one per run
		return "'self' " + u.Scheme + "://" + u.Hostname() + ":*"
	}
	return "'self' " + u.Scheme + "://" + u.Host
}

// isLoopback reports an http redirect URI on a loopback host (any port allowed).
func isLoopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return false
	}
	switch h := u.Hostname(); {
	case h == "localhost", h == "::1", strings.HasPrefix(h, "127."):
		return true
	}
	return false
}

// ssoButton is a connector on the login page.
type ssoButton struct{ ID, Name string }

type pageData struct {
	Title, Heading, Nonce, Error, Action, SwitchAction, Request string
	Link, LinkText                                              string
	SSOAction                                                   string
	Connectors                                                  []ssoButton
	ClientName, ClientHost, ClientID, Identifier, User          string
	RedirectHost                                                string
	LoopbackOnly                                                bool
	Scopes                                                      []scopeLine
}

func (s *Server) showLogin(w http.ResponseWriter, status int, c Client, p pending, identifier, msg string) {
	d := pageData{Title: "Sign in", Error: msg, Action: loginPath, SSOAction: ssoPath,
		Request: s.seal(stepLogin, p), ClientName: clientName(c), ClientHost: clientHost(c, p.RedirectURI), Identifier: identifier}
	if c, ok := s.connector(p.Link); ok { // signing in to link an identity: the password only
		d.Heading, d.ClientHost = "Sign in to link your "+c.Connector.Name()+" account", ""
		s.render(w, status, "login", "", d)
		return
	}
	for _, sc := range s.cfg.SSO {
		d.Connectors = append(d.Connectors, ssoButton{ID: sc.Connector.ID(), Name: sc.Connector.Name()})
	}
	s.render(w, status, "login", p.RedirectURI, d)
}

func (s *Server) showSecondFactor(w http.ResponseWriter, status int, c Client, p pending, msg string) {
	s.render(w, status, "mfa", p.RedirectURI, pageData{Title: "Two-step verification", Error: msg, Action: secondFactorPath,
		Request: s.seal(stepFactor, p), ClientName: clientName(c)})
}

// showConsent asks u about p; p.Granted is what u allowed the client before (a step-up marks
// what it adds).
func (s *Server) showConsent(w http.ResponseWriter, c Client, p pending, u auth.User) {
	p.Expires = s.now().Add(pageTTL).Unix()
	who := u.Email
	if u.Username != "" {
		who = u.Username + " (" + u.Email + ")"
	}
	sealed := s.seal(stepConsent, p)
	s.render(w, http.StatusOK, "consent", p.RedirectURI, pageData{Title: "Allow access", Action: consentPath,
		SwitchAction: switchPath, Request: sealed, ClientName: clientName(c), ClientID: c.ID, User: who,
		RedirectHost: redirectHost(p.RedirectURI), LoopbackOnly: loopbackOnly(c), Scopes: describeScopes(p.Scopes, p.Granted)})
}

func (s *Server) errorPage(w http.ResponseWriter, status int, msg string) {
	s.render(w, status, "error", "", pageData{Title: "Sign-in stopped", Error: msg})
}

// render writes a page with headers that keep it to itself: no framing, no caching, no
// referrer, a CSP allowing only its own nonce'd style and forms sent to us (and, from the
// consent page, on to the client's redirect URI).
func (s *Server) render(w http.ResponseWriter, status int, name, redirect string, d pageData) {
	d.Nonce = randomToken()
	formAction := "'self'"
	if redirect != "" {
		formAction = formActionSource(redirect)
	}
	if name == "login" && len(d.Connectors) > 0 || name == "link" || name == "device" { // its buttons lead on to the providers
		formAction += " " + s.ssoOrigins()
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+d.Nonce+"'; form-action "+formAction+
		"; frame-ancestors 'none'; base-uri 'none'")
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, d); err != nil {
		s.log.Error("render a page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func clientName(c Client) string {
	if c.Name != "" {
		return c.Name
	}
	return "An application"
}

// clientHost is what the login page names the client by: its client_id's host when the id is a
// URL (a metadata document), else where it returns to.
func clientHost(c Client, redirect string) string {
	if u, err := url.Parse(c.ID); err == nil && u.Scheme == "https" && u.Host != "" {
		return u.Host
	}
	return redirectHost(redirect)
}

// redirectHost is the host the browser goes back to (the scheme for a private-use one).
func redirectHost(redirect string) string {
	u, err := url.Parse(redirect)
	if err != nil {
		return redirect
	}
	if u.Host == "" {
		return u.Scheme + ":"
	}
	return u.Hostname()
}

func loopbackOnly(c Client) bool {
	for _, r := range c.RedirectURIs {
		if !isLoopback(r) {
			return false
		}
	}
	return len(c.RedirectURIs) > 0
}

// scopeLine is a scope on the consent page: in words, and whether the user allowed it before.
type scopeLine struct {
	Text string
	New  bool
}

// describeScopes says what each scope lets the client do, in words; with granted (an earlier
// consent), the ones it adds are marked new.
func describeScopes(scopes, granted []string) []scopeLine {
	out := make([]scopeLine, 0, len(scopes))
	for _, sc := range scopes {
		res, act, _ := strings.Cut(sc, ":")
		line := scopeLine{New: len(granted) > 0 && !slices.Contains(granted, sc)}
		switch {
		case sc == "*":
			line.Text = "do anything your account can do"
		case act == "*":
			line.Text = "do anything with " + res + " (" + sc + ")"
		default:
			line.Text = act + " " + res + " (" + sc + ")"
		}
		out = append(out, line)
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
