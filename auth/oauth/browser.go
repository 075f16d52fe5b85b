package oauth

import (
	"errors"
	"net/http"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/storeerr"
)

// A browser session is a login the server remembers in one browser, so that the next
// authorization from it (a step-up, a second client, the same client next morning) asks no
// password: the cookie holds 256 random bits, the store their hash. It lasts browserSessionTTL
// from the login, whatever happens meanwhile, and ends sooner when the account changes (its
// password, email or state: auth.ResumeLogin), when the user picks "Not you?" on the consent
// page, or when a second factor is turned on after a login made without one.
const browserSessionTTL = 8 * time.Hour

// browserSessionCookieName is __Host- prefixed on https, as the browser cookie.
func (s *Server) browserSessionCookieName() string {
	if s.secure() {
		return "__Host-mcpauth_session"
	}
	return "mcpauth_session"
}

// startBrowserSession remembers userID's login in this browser. A failure to store it is
// logged: the authorization goes on, and the next one asks for the password again.
func (s *Server) startBrowserSession(w http.ResponseWriter, r *http.Request, userID string, withMFA bool, grantUntil int64) {
	v, now := randomToken(), s.now()
	b := BrowserSession{Hash: secretHash(v), UserID: userID, AuthTime: now, MFA: withMFA, CreatedAt: now, ExpiresAt: now.Add(browserSessionTTL)}
	if grantUntil != 0 { // signed in by a provider: what it leads to ends as the provider's grant does
		b.GrantUntil = time.Unix(grantUntil, 0).UTC()
		b.ExpiresAt = minTime(b.ExpiresAt, b.GrantUntil)
	}
	if err := s.cfg.Store.CreateBrowserSession(r.Context(), b); err != nil {
		s.log.WarnContext(r.Context(), "store a browser session (the next authorization asks for the password)", "user_id", userID, "error", err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: s.browserSessionCookieName(), Value: v, Path: "/", HttpOnly: true,
		Secure: s.secure(), SameSite: http.SameSiteLaxMode, MaxAge: int(browserSessionTTL / time.Second)})
}

// resumeBrowserSession returns the user this browser is signed in as, if its session is live
// and the account unchanged since the login.
func (s *Server) resumeBrowserSession(r *http.Request) (auth.User, BrowserSession, bool) {
	c, err := r.Cookie(s.browserSessionCookieName())
	if err != nil || len(c.Value) != 43 {
		return auth.User{}, BrowserSession{}, false
	}
	ctx := r.Context()
	b, err := s.cfg.Store.GetBrowserSession(ctx, secretHash(c.Value))
	if err != nil {
		if !errors.Is(err, storeerr.ErrNotFound) {
			s.log.WarnContext(ctx, "read a browser session (asking for the password)", "error", err)
		}
		return auth.User{}, BrowserSession{}, false
	}
	if !s.now().Before(b.ExpiresAt) {
		return auth.User{}, BrowserSession{}, false
	}
	u, err := s.cfg.Auth.ResumeLogin(ctx, b.UserID, b.AuthTime, b.MFA)
	if err != nil {
		if apierr.CodeOf(err) == apierr.Internal {
			s.log.WarnContext(ctx, "check a browser session's user (asking for the password)", "user_id", b.UserID, "error", err)
		}
		return auth.User{}, BrowserSession{}, false
	}
	return u, b, true
}

// endBrowserSession forgets this browser's session, in the store and in the browser.
func (s *Server) endBrowserSession(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(s.browserSessionCookieName()); err == nil && len(c.Value) == 43 {
		if err := s.cfg.Store.DeleteBrowserSession(r.Context(), secretHash(c.Value)); err != nil && !errors.Is(err, storeerr.ErrNotFound) {
			s.log.WarnContext(r.Context(), "end a browser session", "error", err)
		}
	}
	http.SetCookie(w, &http.Cookie{Name: s.browserSessionCookieName(), Value: "", Path: "/", HttpOnly: true,
		Secure: s.secure(), SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
