package oauth

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth/federation"
	"github.com/bduf/mcpauth/auth/mfa"
	"github.com/bduf/mcpauth/internal/random"
)

// Single sign-on on the login page: a button per connector posts the page's sealed request to
// ssoPath, which sends the browser to the provider with a state, a nonce and a PKCE verifier
// kept, sealed, in a cookie of its own (ssoCookie, sent back on the provider's top-level
// redirect: SameSite=Lax) together with the request. The callback checks the state against
// the cookie (and the cookie against this browser's), has the connector verify the answer,
// resolves the identity to an account under the connector's policy (package federation), and
// goes on as a password login would: the second factor when the account has one the provider
// is not trusted for, then consent.

// SSOConnector is a connector offered on the login page, with its policy.
type SSOConnector struct {
	Connector federation.CallbackConnector
	Policy    federation.Policy
	// Origin is where its login URL goes (the CSP form-action of the login page allows it:
	// Chromium checks the redirect after a form post against it).
	Origin string
}

const (
	ssoPath  = "/authorize/sso"
	stepSSO  = "oauth-sso"
	stepLink = "oauth-sso-link"
	ssoTTL   = 10 * time.Minute
	ssoBasis = "/sso/"
)

// ssoState is what the browser carries to the provider and back.
type ssoState struct {
	P        pending `json:"p"`
	C        string  `json:"c"`
	State    string  `json:"s"`
	Nonce    string  `json:"n"`
	Verifier string  `json:"v"`
	// LinkTo is the account to link the identity to (the explicit linking from a signed-in
	// browser), instead of signing in.
	LinkTo string `json:"l,omitempty"`
}

// linkMaxAge is how recent the browser's sign-in must be to link an identity to its account:
// linking gives the provider's account a way in, as a password change would.
const linkMaxAge = 5 * time.Minute

func (s *Server) ssoCookieName() string {
	if s.secure() {
		return "__Secure-mcpauth_sso" // Path /sso/: the __Host- prefix needs Path=/
	}
	return "mcpauth_sso"
}

func (s *Server) connector(id string) (SSOConnector, bool) {
	for _, c := range s.cfg.SSO {
		if c.Connector.ID() == id {
			return c, true
		}
	}
	return SSOConnector{}, false
}

// CallbackPath is a connector's redirect URI path (the provider's client is registered with
// the issuer followed by it).
func CallbackPath(connectorID string) string { return ssoBasis + connectorID + "/callback" }

// ssoStart sends the browser to the provider the login page's button named.
func (s *Server) ssoStart(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	p, _, ok := s.resume(w, r, stepLogin)
	if !ok {
		return
	}
	c, ok := s.connector(r.PostFormValue("connector"))
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "That way of signing in is not offered here.")
		return
	}
	s.toProvider(w, r, c, ssoState{P: p})
}

// toProvider sends the browser to c's provider with st, sealed in the browser's cookie.
func (s *Server) toProvider(w http.ResponseWriter, r *http.Request, c SSOConnector, st ssoState) {
	st.C, st.State, st.Nonce, st.Verifier = c.Connector.ID(), random.String(24), random.String(24), random.String(32)
	st.P.Expires = s.now().Add(ssoTTL).Unix()
	http.SetCookie(w, &http.Cookie{Name: s.ssoCookieName(), Value: sealJSON(s.cfg.Sealer, stepSSO, st),
		Path: ssoBasis, HttpOnly: true, Secure: s.secure(), SameSite: http.SameSiteLaxMode, MaxAge: int(ssoTTL / time.Second)})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, c.Connector.LoginURL(st.State, st.Nonce, st.Verifier), http.StatusSeeOther)
}

// ssoCallback is the provider's answer.
func (s *Server) ssoCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("connector")
	c, ok := s.connector(id)
	st, stOK := s.openSSOState(r)
	http.SetCookie(w, &http.Cookie{Name: s.ssoCookieName(), Value: "", Path: ssoBasis, HttpOnly: true, Secure: s.secure(),
		SameSite: http.SameSiteLaxMode, MaxAge: -1}) // one use
	q := r.URL.Query()
	switch {
	case !ok || !stOK || st.C != id || !sameSecretHash(secretHash(q.Get("state")), secretHash(st.State)):
		s.errorPage(w, http.StatusBadRequest, "This sign-in has expired or was not started in this browser. Start again from the application.")
		return
	case q.Get("error") != "":
		s.errorPage(w, http.StatusForbidden, "The sign-in with "+c.Connector.Name()+" did not complete ("+clip(q.Get("error"), 64)+").")
		return
	}
	var client Client
	switch {
	case st.P.Device != nil:
		client = Client{Name: st.P.Device.Client}
	case st.LinkTo == "":
		var err error
		if client, err = s.lookupClient(r, st.P.ClientID); err != nil {
			s.errorPage(w, http.StatusBadRequest, "The application asking you to sign in is no longer registered here.")
			return
		}
	}
	ident, err := c.Connector.HandleCallback(ctx, q.Get("code"), st.Nonce, st.Verifier)
	if err != nil {
		s.log.WarnContext(ctx, "single sign-on: the provider's answer was refused", "connector", id, "error", err)
		s.record(ctx, audit.Event{Type: audit.SSOLoginRefused, Severity: audit.Warning,
			Details: map[string]any{"connector": id, "reason": "provider_answer"}})
		status, msg := http.StatusBadGateway, "We could not reach "+c.Connector.Name()+". Try again in a moment."
		if federation.IsRefused(err) {
			status, msg = http.StatusForbidden, "The answer from "+c.Connector.Name()+" could not be verified. Start again from the application."
		}
		s.errorPage(w, status, msg)
		return
	}
	if st.LinkTo != "" {
		s.finishLink(w, r, c, ident, st.LinkTo)
		return
	}
	o, err := s.cfg.Resolver.Resolve(ctx, ident, c.Policy)
	if d := (*federation.DeniedError)(nil); errors.As(err, &d) {
		s.record(ctx, audit.Event{Type: audit.SSOLoginRefused, Severity: audit.Warning,
			Details: map[string]any{"connector": id, "reason": d.Reason, "issuer": ident.Issuer, "subject": ident.Subject}})
		msg := "Your " + c.Connector.Name() + " account cannot sign in here: " + deniedWords(d.Reason) + "."
		if d.Reason == federation.ReasonUnknownIdentity || d.Reason == federation.ReasonEmailInUse { // the person may link it
			s.render(w, http.StatusForbidden, "error", "", pageData{Title: "Sign-in stopped", Error: msg,
				Link: ssoBasis + id + "/link", LinkText: "Have an account here? Sign in with its password and link your " + c.Connector.Name() + " account"})
			return
		}
		s.errorPage(w, http.StatusForbidden, msg)
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "single sign-on: resolve the account", "connector", id, "error", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
		return
	}
	details := map[string]any{"connector": id, "issuer": ident.Issuer, "subject": ident.Subject}
	if len(c.Policy.GroupRoles) > 0 && s.cfg.Resolver.Roles != nil {
		added, removed, err := federation.SyncRoles(ctx, s.cfg.Resolver.Roles, s.cfg.Resolver.Grants, id, o.Account.ID, ident.Groups, c.Policy.GroupRoles)
		if err != nil { // fail closed: no sign-in with roles half applied
			s.log.ErrorContext(ctx, "single sign-on: apply the group roles", "connector", id, "user_id", o.Account.ID, "error", err)
			s.errorPage(w, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
			return
		}
		if len(added)+len(removed) > 0 {
			s.record(ctx, audit.Event{Type: audit.SSORolesChanged, Subject: o.Account.ID, OrgID: o.Account.OrgID,
				Details: map[string]any{"connector": id, "added": added, "removed": removed, "groups": ident.Groups}})
		}
	}
	switch {
	case o.Created:
		s.record(ctx, audit.Event{Type: audit.SSOUserCreated, Subject: o.Account.ID, OrgID: o.Account.OrgID, Details: details})
	case o.Linked:
		s.record(ctx, audit.Event{Type: audit.SSOLinked, Subject: o.Account.ID, OrgID: o.Account.OrgID, Details: details})
	}
	u, err := s.cfg.Auth.SSOLogin(ctx, o.Account.ID, id, o.MFADone)
	p := st.P
	p.GrantUntil = s.now().Add(c.Policy.SessionTTL()).Unix() // the provider is asked again at least this often
	switch {
	case errors.Is(err, mfa.ErrRequired): // a local second factor the provider is not trusted for
		p.UserID = u.ID
		p.Expires = s.now().Add(5 * time.Minute).Unix()
		s.showSecondFactor(w, http.StatusOK, client, p, "")
	case err != nil:
		status, msg := loginRefusal(err)
		s.errorPage(w, status, msg)
	default:
		p.UserID, p.AuthTime, p.MFA = u.ID, s.now().Unix(), o.MFADone
		s.startBrowserSession(w, r, u.ID, o.MFADone, p.GrantUntil)
		s.proceed(w, r, client, p, u, false, false)
	}
}

// openSSOState opens this browser's single sign-on cookie.
func (s *Server) openSSOState(r *http.Request) (ssoState, bool) {
	c, err := r.Cookie(s.ssoCookieName())
	if err != nil {
		return ssoState{}, false
	}
	var st ssoState
	if !openJSON(s.cfg.Sealer, stepSSO, c.Value, &st) || s.now().Unix() > st.P.Expires {
		return ssoState{}, false
	}
	bc, err := r.Cookie(s.browserCookieName()) // the browser that opened the login page
	if err != nil || !sameSecretHash(secretHash(bc.Value), st.P.Browser) {
		return ssoState{}, false
	}
	return st, true
}

// deniedWords says a refusal's reason to the person.
func deniedWords(reason string) string {
	switch reason {
	case federation.ReasonDomain:
		return "its email domain is not allowed"
	case federation.ReasonGroup:
		return "it is in none of the allowed groups"
	case federation.ReasonUnverifiedEmail:
		return "its email address is not verified"
	case federation.ReasonUnknownIdentity:
		return "it is not linked to an account here (sign in with your password and link it, or ask your administrator)"
	case federation.ReasonEmailInUse:
		return "an account here already has its email (sign in with your password and link it)"
	case federation.ReasonOtherOrg:
		return "its email belongs to an account of another organization"
	case federation.ReasonDisabled:
		return "the account here is disabled"
	}
	return "it is not allowed"
}

func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ssoOrigins are the origins the login page's forms may lead to (its connectors').
func (s *Server) ssoOrigins() string {
	var out []string
	for _, c := range s.cfg.SSO {
		if u, err := url.Parse(c.Origin); err == nil && u.Host != "" {
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	return strings.Join(out, " ")
}

// ssoLink links an identity at connector to the account this browser is signed in as, in the
// browser that signed in (with its second factor, when the account has one) in the last
// linkMaxAge. GET /sso/{connector}/link asks; its form's POST (sealed for this browser and this
// account: a page of another site can neither send it, nor make the browser send its Lax
// cookies with a cross-site POST) sends the browser to the provider. A GET alone never does:
// a page of another site could otherwise link, to the victim's account, whatever identity it
// had signed the victim's browser into at the provider. The provider's identity then signs in
// as this account, whatever its email: this is the linking a person asks for.
func (s *Server) ssoLink(w http.ResponseWriter, r *http.Request) {
	c, ok := s.connector(r.PathValue("connector"))
	if !ok {
		s.errorPage(w, http.StatusNotFound, "That way of signing in is not offered here.")
		return
	}
	u, b, ok := s.resumeBrowserSession(r)
	if (!ok || s.now().Sub(b.AuthTime) > linkMaxAge) && r.Method == http.MethodGet {
		// Not signed in here lately: the password (and second factor) first, then this page.
		s.showLogin(w, http.StatusOK, Client{}, pending{Browser: s.browser(w, r), Expires: s.now().Add(pageTTL).Unix(), Link: c.Connector.ID()}, "", "")
		return
	}
	if !ok || s.now().Sub(b.AuthTime) > linkMaxAge {
		s.errorPage(w, http.StatusForbidden, "To link your "+c.Connector.Name()+" account, sign in here with your password first "+
			"(in the last 5 minutes, in this browser), then open this page again.")
		return
	}
	if r.Method == http.MethodGet {
		p := pending{Browser: s.browser(w, r), UserID: u.ID, Expires: s.now().Add(linkMaxAge).Unix()}
		d := pageData{Title: "Link an account", Action: ssoBasis + c.Connector.ID() + "/link",
			Request: s.seal(stepLink, p), ClientName: c.Connector.Name(), User: u.Email}
		s.render(w, http.StatusOK, "link", "", d)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	p, ok := s.unseal(r, stepLink)
	if !ok || p.UserID != u.ID {
		s.errorPage(w, http.StatusBadRequest, "This page has expired or was not opened in this browser. Open the link page again.")
		return
	}
	s.toProvider(w, r, c, ssoState{P: pending{Browser: p.Browser}, LinkTo: u.ID})
}

// finishLink links ident to the account userID.
func (s *Server) finishLink(w http.ResponseWriter, r *http.Request, c SSOConnector, ident federation.Identity, userID string) {
	ctx := r.Context()
	err := s.cfg.Resolver.Link(ctx, ident, userID)
	if d := (*federation.DeniedError)(nil); errors.As(err, &d) {
		s.record(ctx, audit.Event{Type: audit.SSOLoginRefused, Severity: audit.Warning, Subject: userID,
			Details: map[string]any{"connector": c.Connector.ID(), "reason": d.Reason, "issuer": ident.Issuer, "subject": ident.Subject}})
		s.errorPage(w, http.StatusConflict, "That "+c.Connector.Name()+" account is linked to another account here already.")
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "single sign-on: link an identity", "user_id", userID, "error", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
		return
	}
	s.record(ctx, audit.Event{Type: audit.SSOLinked, Subject: userID, Actor: userID,
		Details: map[string]any{"connector": c.Connector.ID(), "issuer": ident.Issuer, "subject": ident.Subject, "by": "the account"}})
	s.render(w, http.StatusOK, "done", "", pageData{Title: "Account linked",
		Error: "Your " + c.Connector.Name() + " account is linked: you can sign in with it from now on."})
}
