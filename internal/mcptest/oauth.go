package mcptest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// FormLogin goes through the authorization server's pages as a person would in a browser that
// runs no script: it opens the authorization URL, signs in, gives the second factor when asked
// and answers the consent page. It stops at the redirect back to the client, which it returns
// (the client's redirect URI with code or error, state and iss) without following it, or at a
// page saying the sign-in is done (an sso_login sign-in's, with no client to go back to), for
// which it returns nil and the page in LastPage.
type FormLogin struct {
	Identifier, Password string
	// SecondFactor gives the TOTP or recovery code when the server asks for one (nil: the
	// test expects no second factor).
	SecondFactor func() string
	// Deny answers the consent page with Deny.
	Deny bool
	// SSO, when set, signs in with that connector's button instead of the password, as
	// ProviderAccount at the provider (ProviderLogin).
	SSO, ProviderAccount string
	// Client carries the browser's cookie; nil: a new one per run.
	Client *http.Client
	// Pages are the page actions seen, in order (for assertions): "/authorize/login", ...;
	// LastPage the HTML of the last page answered.
	Pages    []string
	LastPage string
}

// NewBrowser is an HTTP client with a cookie jar that never follows redirects (the test looks
// at each).
func NewBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Run signs in through authURL and returns where the server sends the browser back.
func (f *FormLogin) Run(ctx context.Context, authURL string) (*url.URL, error) {
	if f.Client == nil {
		f.Client = NewBrowser()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	for range 6 { // login (or the provider and back), second factor, consent, and the redirect
		resp, err := f.Client.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusSeeOther || resp.StatusCode == http.StatusFound {
			return req.URL.Parse(resp.Header.Get("Location"))
		}
		page := string(body)
		f.LastPage = page
		if resp.StatusCode == http.StatusOK && strings.Contains(page, `role="status"`) {
			return nil, nil
		}
		action, sealed := formField(page, `action="([^"]*)"`), formField(page, `name="request" value="([^"]*)"`)
		if action == "" || sealed == "" {
			return nil, fmt.Errorf("%s answered %d with no form: %s", req.URL.Path, resp.StatusCode, pageError(page))
		}
		f.Pages = append(f.Pages, action)
		form := url.Values{"request": {sealed}}
		switch {
		case strings.HasSuffix(action, "/login") && f.SSO != "":
			button := formField(page, `<form method="post" action="([^"]*)" class="sso">`)
			if button == "" {
				return nil, errors.New("the login page offers no single sign-on")
			}
			f.Pages = append(f.Pages, button)
			if req, err = f.viaProvider(ctx, req.URL, button, url.Values{"request": {sealed}, "connector": {f.SSO}}); err != nil {
				return nil, err
			}
			continue
		case strings.HasSuffix(action, "/sso/device"): // an sso_login sign-in's page: on to the provider
			if req, err = f.viaProvider(ctx, req.URL, action, form); err != nil {
				return nil, err
			}
			continue
		case strings.HasSuffix(action, "/login"):
			if e := pageError(page); e != "" && len(f.Pages) > 1 {
				return nil, fmt.Errorf("login refused: %s", e)
			}
			form.Set("identifier", f.Identifier)
			form.Set("password", f.Password)
		case strings.HasSuffix(action, "/mfa"):
			if f.SecondFactor == nil {
				return nil, errors.New("the server asked for a second factor")
			}
			form.Set("code", f.SecondFactor())
		case strings.HasSuffix(action, "/consent"):
			form.Set("decision", "allow")
			if f.Deny {
				form.Set("decision", "deny")
			}
		default:
			return nil, fmt.Errorf("unknown page action %q", action)
		}
		target, err := req.URL.Parse(action)
		if err != nil {
			return nil, err
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return nil, errors.New("the pages did not end in a redirect")
}

// viaProvider posts form to the page's action that leads to the provider (the login page's
// button, the sso_login page's), signs in there as f.ProviderAccount and returns the request
// of the callback back at the server.
func (f *FormLogin) viaProvider(ctx context.Context, at *url.URL, action string, form url.Values) (*http.Request, error) {
	target, err := at.Parse(action)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.Client.Do(req)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("%s answered %d, want the redirect to the provider", action, resp.StatusCode)
	}
	back, err := ProviderLogin(ctx, f.Client, resp.Header.Get("Location"), at.Scheme+"://"+at.Host+"/sso/", f.ProviderAccount)
	if err != nil {
		return nil, err
	}
	return http.NewRequestWithContext(ctx, http.MethodGet, back.String(), nil)
}

func formField(page, pattern string) string {
	if m := regexp.MustCompile(pattern).FindStringSubmatch(page); m != nil {
		return html.UnescapeString(m[1])
	}
	return ""
}

// pageError is the error a page shows ("" if none).
func pageError(page string) string {
	return formField(page, `class="error" role="alert">([^<]*)<`)
}

// JWTClaims is the payload of a JWT, unverified: for a test looking at what a server it trusts
// issued.
func JWTClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// ProviderLogin goes through an external OpenID Provider's pages (node-oidc-provider's
// development interactions: a login form taking the account id as "login", then a consent
// form) from authURL until the provider sends the browser to a URL starting with back, which
// it returns without following. browser carries the provider's cookies (nil: a new one).
func ProviderLogin(ctx context.Context, browser *http.Client, authURL, back, login string) (*url.URL, error) {
	if browser == nil {
		browser = NewBrowser()
	}
	next, err := url.Parse(authURL)
	if err != nil {
		return nil, err
	}
	method, body := http.MethodGet, ""
	for range 12 {
		req, err := http.NewRequestWithContext(ctx, method, next.String(), strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := browser.Do(req)
		if err != nil {
			return nil, err
		}
		page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
			to, err := next.Parse(loc)
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(to.String(), back) {
				return to, nil
			}
			next, method, body = to, http.MethodGet, ""
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("provider page %s answered %d: %.300s", next.Path, resp.StatusCode, page)
		}
		action := formField(string(page), `<form[^>]*action="([^"]*)"`)
		if action == "" {
			return nil, fmt.Errorf("provider page %s has no form: %.300s", next.Path, page)
		}
		form := url.Values{}
		for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)"`).FindAllStringSubmatch(string(page), -1) {
			form.Set(m[1], html.UnescapeString(m[2]))
		}
		if strings.Contains(string(page), `name="login"`) {
			form.Set("login", login)
			form.Set("password", "any")
		}
		to, err := next.Parse(action)
		if err != nil {
			return nil, err
		}
		next, method, body = to, http.MethodPost, form.Encode()
	}
	return nil, errors.New("the provider's pages did not end at the callback")
}
