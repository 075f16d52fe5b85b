package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/auth/token"
)

// Single sign-on for a client without a browser of its own (the sso_login tool, over stdio).
// The tool answers a URL and a short code; the person opens the URL in any browser, checks that
// the page shows the code their application shows (the remote-phishing guard of RFC 8628
// §5.4: a sign-in link someone else started and sent you shows a code you never saw), and
// signs in with the provider as on the login page, the account's second factor included where
// the provider is not trusted for it. The page then stores a code record under the hash of the
// sign-in's reference, bound by PKCE to a verifier only the tool holds; the tool's next call
// redeems it, once, and opens the session.
//
// Nothing is stored at the start, so a stranger starting sign-ins fills no memory: the URL
// carries the request sealed with the master key (every instance opens it; nobody changes its
// connector, code or expiry), and the login id the tool keeps carries the reference and the
// verifier, sealed too.

// DevicePath is the page a sign-in's URL opens.
const DevicePath = "/sso/device"

const (
	stepDevice        = "oauth-device"         // the URL's request
	stepDeviceLogin   = "oauth-device-login"   // the tool's login id
	stepDeviceConfirm = "oauth-device-confirm" // the page's form
	// DeviceTTL is how long a person has to finish a sign-in; the tool has as long again to
	// redeem it.
	DeviceTTL = 10 * time.Minute
	// deviceClientID is the client of a sign-in's code record: mcpauth's own tools. Its hash
	// has a prefix of its own, so the token endpoint never finds it.
	deviceClientID = token.ClientID
)

// deviceRequest is what a sign-in's URL carries.
type deviceRequest struct {
	Ref       string `json:"r"` // the code record is stored under deviceCodeHash(Ref)
	Challenge string `json:"c"` // S256 of the verifier the tool holds
	Connector string `json:"k"`
	Client    string `json:"n"` // the application's name, shown on the page
	UserCode  string `json:"u"`
	Expires   int64  `json:"e"`
}

// deviceLogin is what the tool's login id carries.
type deviceLogin struct {
	Ref       string `json:"r"`
	Verifier  string `json:"v"`
	Connector string `json:"k"`
	Expires   int64  `json:"e"`
}

func deviceCodeHash(ref string) string { return codeHash("sso_login\x00" + ref) }

// DeviceConnector is a connector a sign-in may name.
type DeviceConnector struct{ ID, Name string }

// DeviceSignIn is a started sign-in: the URL to open, the code the page shows, the id to
// redeem it with.
type DeviceSignIn struct {
	URL       string    `json:"url"`
	UserCode  string    `json:"user_code"`
	LoginID   string    `json:"login_id"`
	ExpiresAt time.Time `json:"expires_at"`
}

// DeviceAuth is what a redemption asks of auth.Service.
type DeviceAuth interface {
	OpenSSOSession(ctx context.Context, userID, connector string, notAfter time.Time, client string) (auth.Tokens, auth.User, error)
}

// Devices is the half of these sign-ins that runs where the tool does: it needs the store and
// the master key, not the HTTP server.
type Devices struct {
	// Issuer is where the pages are (the authorization server's origin).
	Issuer     string
	Store      Store
	Sealer     *token.Sealer
	Auth       DeviceAuth
	Connectors []DeviceConnector
	Now        func() time.Time
}

func (d *Devices) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

// ErrPending answers a redemption whose person has not finished in the browser yet.
var ErrPending = errors.New("oauth: the sign-in is not finished yet")

// Start starts a sign-in through connector for the application client (its name, shown).
func (d *Devices) Start(connector, client string) (DeviceSignIn, error) {
	if !slices.ContainsFunc(d.Connectors, func(c DeviceConnector) bool { return c.ID == connector }) {
		ids := make([]string, len(d.Connectors))
		for i, c := range d.Connectors {
			ids[i] = c.ID
		}
		return DeviceSignIn{}, apierr.Field("connector", "is not an identity provider here; the ones offered: "+strings.Join(ids, ", "))
	}
	now := d.now()
	ref, verifier := randomToken(), randomToken()
	req := deviceRequest{Ref: ref, Challenge: challengeOf(verifier), Connector: connector, Client: clip(client, 128),
		UserCode: userCode(), Expires: now.Add(DeviceTTL).Unix()}
	login := deviceLogin{Ref: ref, Verifier: verifier, Connector: connector, Expires: now.Add(2 * DeviceTTL).Unix()}
	return DeviceSignIn{URL: d.Issuer + DevicePath + "?request=" + sealJSON(d.Sealer, stepDevice, req),
		UserCode: req.UserCode, LoginID: sealJSON(d.Sealer, stepDeviceLogin, login), ExpiresAt: time.Unix(req.Expires, 0).UTC()}, nil
}

// Redeem finishes the sign-in loginID: ErrPending until the person has signed in in the
// browser, then the session's tokens, once.
func (d *Devices) Redeem(ctx context.Context, loginID, client string) (auth.Tokens, auth.User, error) {
	var l deviceLogin
	if !openJSON(d.Sealer, stepDeviceLogin, loginID, &l) {
		return auth.Tokens{}, auth.User{}, apierr.Field("login_id", "is not a sign-in started here")
	}
	now := d.now()
	if now.Unix() > l.Expires {
		return auth.Tokens{}, auth.User{}, token.ErrExpired.With("reason", "the sign-in has expired: start it again")
	}
	hash := deviceCodeHash(l.Ref)
	c, err := d.Store.GetCode(ctx, hash)
	switch {
	case errors.Is(err, storeerr.ErrNotFound):
		return auth.Tokens{}, auth.User{}, ErrPending
	case err != nil:
		return auth.Tokens{}, auth.User{}, apierr.Internalf("read a sign-in: %w", err)
	case c.ClientID != deviceClientID || !VerifyS256(l.Verifier, c.Challenge):
		return auth.Tokens{}, auth.User{}, token.ErrInvalid.With("reason", "the sign-in does not match")
	case !now.Before(c.ExpiresAt):
		return auth.Tokens{}, auth.User{}, token.ErrExpired.With("reason", "the sign-in has expired: start it again")
	}
	if err := d.Store.RedeemCode(ctx, hash, now); errors.Is(err, storeerr.ErrAlreadyExists) {
		return auth.Tokens{}, auth.User{}, token.ErrInvalid.With("reason", "the sign-in was used already: start it again")
	} else if err != nil {
		return auth.Tokens{}, auth.User{}, apierr.Internalf("redeem a sign-in: %w", err)
	}
	return d.Auth.OpenSSOSession(ctx, c.UserID, l.Connector, c.GrantUntil, client)
}

// userCode is a short code to compare by eye: 8 letters without vowels (no words) or look-alikes.
func userCode() string {
	const letters = "BCDFGHJKLMNPQRSTVWXZ"
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	out := make([]byte, 0, 9)
	for i, c := range b {
		if i == 4 {
			out = append(out, '-')
		}
		out = append(out, letters[int(c)%len(letters)]) // 256 % 20 != 0: a slight bias, harmless for a code compared by eye
	}
	return string(out)
}

func sealJSON(s *token.Sealer, step string, v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(s.Seal(step, b))
}

func openJSON(s *token.Sealer, step, sealed string, v any) bool {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) == 0 {
		return false
	}
	b, err := s.Open(step, raw)
	return err == nil && json.Unmarshal(b, v) == nil
}

// device is the page a sign-in's URL opens: GET shows the code and asks; its form's POST
// (sealed for this browser) sends the browser to the provider.
func (s *Server) device(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		var req deviceRequest
		if !openJSON(s.cfg.Sealer, stepDevice, r.URL.Query().Get("request"), &req) || s.now().Unix() > req.Expires {
			s.errorPage(w, http.StatusBadRequest, "This sign-in link has expired or is not one of ours. Start the sign-in again from your application.")
			return
		}
		c, ok := s.connector(req.Connector)
		if !ok {
			s.errorPage(w, http.StatusBadRequest, "That way of signing in is not offered here.")
			return
		}
		// Finished already: say so before the provider (finishDevice's unique insert still
		// decides between two browsers finishing at once).
		switch _, err := s.cfg.Store.GetCode(r.Context(), deviceCodeHash(req.Ref)); {
		case err == nil:
			s.errorPage(w, http.StatusConflict, deviceFinished)
			return
		case !errors.Is(err, storeerr.ErrNotFound):
			s.log.ErrorContext(r.Context(), "read a sign-in for sso_login", "error", err)
			s.errorPage(w, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
			return
		}
		p := pending{Browser: s.browser(w, r), Expires: min(req.Expires, s.now().Add(pageTTL).Unix()), Device: &req}
		s.render(w, http.StatusOK, "device", "", pageData{Title: "Sign in to " + req.Client, Action: DevicePath,
			Request: s.seal(stepDeviceConfirm, p), ClientName: req.Client, Identifier: req.UserCode, User: c.Connector.Name()})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	p, ok := s.unseal(r, stepDeviceConfirm)
	if !ok || p.Device == nil {
		s.errorPage(w, http.StatusBadRequest, "This page has expired or was not opened in this browser. Open the sign-in link again.")
		return
	}
	c, ok := s.connector(p.Device.Connector)
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "That way of signing in is not offered here.")
		return
	}
	s.toProvider(w, r, c, ssoState{P: p})
}

const deviceFinished = "This sign-in was finished already. To sign in again, start again from your application."

// finishDevice stores the code record of a sign-in whose person u is proven (p.Device), for
// the tool to redeem.
func (s *Server) finishDevice(w http.ResponseWriter, r *http.Request, p pending, u auth.User) {
	ctx := r.Context()
	now := s.now()
	c := Code{Hash: deviceCodeHash(p.Device.Ref), ClientID: deviceClientID, Challenge: p.Device.Challenge, UserID: u.ID,
		OrgID: u.OrgID, AuthTime: time.Unix(p.AuthTime, 0).UTC(), MFA: p.MFA, CreatedAt: now, ExpiresAt: now.Add(DeviceTTL)}
	if p.GrantUntil != 0 {
		c.GrantUntil = time.Unix(p.GrantUntil, 0).UTC()
	}
	err := s.cfg.Store.CreateCode(ctx, c)
	if errors.Is(err, storeerr.ErrAlreadyExists) {
		s.errorPage(w, http.StatusConflict, deviceFinished)
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "store a sign-in for sso_login", "error", err)
		s.errorPage(w, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
		return
	}
	s.record(ctx, audit.Event{Type: audit.OAuthAuthorized, Subject: u.ID, Actor: u.ID, OrgID: u.OrgID,
		Details: map[string]any{"client_id": deviceClientID, "client_name": p.Device.Client, "via": "sso_login", "connector": p.Device.Connector}})
	s.render(w, http.StatusOK, "done", "", pageData{Title: "You are signed in",
		Error: "You are signed in as " + u.Email + ". Go back to " + p.Device.Client + ": it finishes signing in (code " + p.Device.UserCode + ")."})
}
