package main

// The sign-in pages in a real browser (headless Chromium, driven by chromedp), as a person on a
// phone-width window meets them: /authorize → password → TOTP → consent → the client's loopback
// redirect on a port of the moment. What only a browser shows is asserted here: that Chromium
// follows the redirect after the consent POST (its CSP form-action must allow the client's
// origin), the cookie's flags, the refusal of a form whose browser cookie is gone, no
// horizontal scrolling, labels on every field. Screenshots land in test-artifacts/.

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// redirectCatcher is the client's loopback listener: it records the query each redirect brings.
type redirectCatcher struct {
	port string
	got  chan url.Values
}

func newRedirectCatcher(t *testing.T) *redirectCatcher {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &redirectCatcher{got: make(chan url.Values, 4)}
	_, c.port, _ = net.SplitHostPort(l.Addr().String())
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" { // the browser's favicon.ico
			http.NotFound(w, r)
			return
		}
		c.got <- r.URL.Query()
		_, _ = w.Write([]byte("<!doctype html><title>Signed in</title><p>You can close this window."))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c
}

func (c *redirectCatcher) await(t *testing.T) url.Values {
	t.Helper()
	select {
	case q := <-c.got:
		return q
	case <-time.After(20 * time.Second):
		t.Fatal("the browser never came back to the client's redirect URI")
		return nil
	}
}

func TestShouldSignInThroughThePagesInARealBrowser(t *testing.T) {
	env := append(mcptest.OAuthEnv, "MCPAUTH_ANONYMOUS_METHODS=initialize,ping,tools/list")
	_, sec, srv, owner, _ := attackServer(t, env...)
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	password := freshPassword(sec)
	_, u, en, _, step := mfaUser(t, srv, owner, sec, "browser@example.com", password)
	owner.Call(t, "role_assign", args{"user_id": u.ID, "role": "admin"}) // holds users:read and audit:read, not roles:write
	catcher := newRedirectCatcher(t)
	// Registered port-less, as Claude Code's document does; used with this run's port.
	client := h.mustRegister(map[string]any{"redirect_uris": []string{"http://127.0.0.1/callback"}, "client_name": "Browser e2e",
		"token_endpoint_auth_method": "none"})
	client.redirect = "http://127.0.0.1:" + catcher.port + "/callback"
	ctx := mcptest.Browser(t, 390, 844) // a phone-width window
	b := browserSteps{t: t, ctx: ctx}

	req := h.authorizeURL(client, map[string]string{"scope": "users:read audit:read roles:write"})
	code := totpCode(t, en.Secret, max(step+1, totpStep(time.Now())))
	b.do(chromedp.EmulateViewport(390, 844), chromedp.Navigate(req.url), chromedp.WaitVisible(chromedp.ID("identifier")))
	fitsWidth := b.eval(`document.documentElement.scrollWidth <= window.innerWidth`)
	labelled := b.eval(`[...document.querySelectorAll('input:not([type=hidden])')].every(i => document.querySelector('label[for="'+i.id+'"]'))`)
	b.shot("oauth-login.png")
	b.contrast("login page")
	b.dark(true)
	b.contrast("login page, dark")
	b.dark(false)
	b.do(chromedp.SendKeys(chromedp.ID("identifier"), "browser@example.com"), chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS("button[type=submit]")), chromedp.WaitVisible(chromedp.ID("code")))
	b.shot("oauth-mfa.png")
	b.contrast("second-factor page")
	b.do(chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.CSS("button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("button[value=allow]")))
	b.shot("oauth-consent.png")
	b.contrast("consent page")
	b.dark(true)
	b.shot("oauth-consent-dark.png")
	b.contrast("consent page, dark")
	b.dark(false)
	if text := b.text("main"); !strings.Contains(text, "read users (users:read)") || strings.Contains(text, "roles:write") {
		t.Errorf("consent page: %q; want the scopes the user holds, in words, and not roles:write", text)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.Click(chromedp.CSS("button[value=allow]")))
	q := catcher.await(t)
	if q.Get("code") == "" || q.Get("state") != req.state || q.Get("iss") != h.issuer {
		t.Fatalf("the redirect brought %v; want code, state %s, iss %s", q, req.state, h.issuer)
	}
	if status, m, _ := h.exchange(client, q.Get("code"), req.verifier, false); status != http.StatusOK || m["scope"] != "users:read audit:read" {
		t.Errorf("redeem the browser's code: %d %v; want the scopes asked for that the user holds", status, m)
	}
	if !fitsWidth || !labelled {
		t.Errorf("login page at 390 px: fits the width %v, every field labelled %v", fitsWidth, labelled)
	}
	for _, name := range []string{"mcpauth_browser", "mcpauth_session"} { // the page binding; the signed-in browser
		var found *network.Cookie
		for _, c := range cookies.Cookies {
			if c.Name == name {
				found = c
			}
		}
		if found == nil || !found.HTTPOnly || found.SameSite != network.CookieSameSiteLax || found.Path != "/" {
			t.Errorf("cookie %s: %+v; want HttpOnly, SameSite=Lax, Path=/", name, found)
		}
	}

	t.Run("a form whose browser cookie is gone is refused", func(t *testing.T) {
		b := browserSteps{t: t, ctx: ctx}
		// prompt=login: this browser is signed in now, and would otherwise go straight to consent.
		b.do(chromedp.Navigate(h.authorizeURL(client, map[string]string{"prompt": "login"}).url), chromedp.WaitVisible(chromedp.ID("identifier")))
		if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		b.do(chromedp.SendKeys(chromedp.ID("identifier"), "browser@example.com"), chromedp.SendKeys(chromedp.ID("password"), password),
			chromedp.Click(chromedp.CSS("button[type=submit]")), chromedp.WaitVisible(chromedp.CSS("p.error")))
		if text := b.text("main"); !strings.Contains(text, "not opened in this browser") || strings.Contains(text, "Two-step") {
			t.Errorf("page after posting without the cookie: %q", text)
		}
	})

	t.Run("a bad redirect URI shows an error page and goes nowhere", func(t *testing.T) {
		b := browserSteps{t: t, ctx: ctx}
		bad := h.authorizeURL(client, map[string]string{"redirect_uri": "http://localhost:" + catcher.port + "/callback"})
		b.do(chromedp.Navigate(bad.url), chromedp.WaitVisible(chromedp.CSS("p.error")))
		b.shot("oauth-error.png")
		b.contrast("error page")
		at, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		if text := b.text("main"); !strings.Contains(text, "not registered for it") || !strings.HasPrefix(at, h.issuer) {
			t.Errorf("at %s: %q", at, text)
		}
		select {
		case q := <-catcher.got:
			t.Errorf("the client's listener was reached: %v", q)
		default:
		}
	})
}

// browserSteps runs chromedp actions for a test, each batch within 20 s.
type browserSteps struct {
	t   *testing.T
	ctx context.Context
}

func (b browserSteps) within() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, 20*time.Second)
}

func (b browserSteps) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func (b browserSteps) eval(expr string) bool {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", expr, err)
	}
	return v
}

func (b browserSteps) text(css string) string {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", css, err)
	}
	return v
}

// contrastJS lists the page's visible text whose contrast with the background it sits on is
// below WCAG 2's AA minimum: 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold). The
// background is the nearest opaque one up the tree.
const contrastJS = `(() => {
  const parse = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(',').map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bg = el => { for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) || !el.getClientRects().length) continue;
    const s = getComputedStyle(el), l1 = lum(parse(s.color)), l2 = lum(bg(el));
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(s.fontSize), large = size >= 24 || (parseInt(s.fontWeight) >= 700 && size >= 18.66);
    if (ratio < (large ? 3 : 4.5)) out.push(el.tagName + ' "' + el.textContent.trim().slice(0, 40) + '" ' + ratio.toFixed(2) + ':1');
  }
  return out;
})()`

// contrast fails the test for every text of the page below WCAG AA contrast.
func (b browserSteps) contrast(page string) {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	low, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](contrastJS))
	if err != nil {
		b.t.Fatalf("browser: contrast of %s: %v", page, err)
	}
	for _, l := range low {
		b.t.Errorf("%s: text below WCAG AA contrast: %s", page, l)
	}
}

// dark switches the browser's prefers-color-scheme to dark (on) or back.
func (b browserSteps) dark(on bool) {
	b.t.Helper()
	scheme := "light"
	if on {
		scheme = "dark"
	}
	if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
		b.t.Fatalf("browser: emulate %s: %v", scheme, err)
	}
}

// shot keeps a screenshot of the page as a test artifact.
func (b browserSteps) shot(name string) {
	b.t.Helper()
	ctx, cancel := b.within()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	mcptest.Artifact(b.t, name, png)
}

// Single sign-on in a real browser: the sign-in page's provider button, the provider's own pages,
// and back through consent to the client. Chromium checks the redirect to the provider after the
// button's POST against the sign-in page's CSP form-action, which must name the provider.
func TestShouldSignInThroughAProviderInARealBrowser(t *testing.T) {
	in := newInstance(t)
	srv, _, _ := startSSOServer(t, in, map[string]any{"jit": true})
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	catcher := newRedirectCatcher(t)
	// A client on "localhost": the consent page's form-action names http://localhost:*, so only
	// the provider's own entry in the sign-in page's CSP lets the browser on to 127.0.0.1:<op>.
	client := h.mustRegister(map[string]any{"redirect_uris": []string{"http://localhost/callback"}, "client_name": "Browser SSO e2e",
		"token_endpoint_auth_method": "none"})
	client.redirect = "http://localhost:" + catcher.port + "/callback"
	b := browserSteps{t: t, ctx: mcptest.Browser(t, 390, 844)}
	req := h.authorizeURL(client, nil)
	b.do(chromedp.Navigate(req.url), chromedp.WaitVisible(chromedp.CSS(`button[name=connector]`)))
	b.shot("sso-login.png")
	b.contrast("login page with a provider")
	b.do(chromedp.Click(chromedp.CSS(`button[name=connector]`)), chromedp.WaitVisible(chromedp.CSS(`input[name=login]`)))
	b.do(chromedp.SendKeys(chromedp.CSS(`input[name=login]`), "ada"), chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "any"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`button[autofocus]`)))
	b.do(chromedp.Click(chromedp.CSS(`button[autofocus]`)), chromedp.WaitVisible(chromedp.CSS("button[value=allow]")))
	b.do(chromedp.Click(chromedp.CSS("button[value=allow]")))
	q := catcher.await(t)
	if q.Get("code") == "" || q.Get("state") != req.state || q.Get("iss") != h.issuer {
		t.Fatalf("the redirect brought %v", q)
	}
	if status, m, _ := h.exchange(client, q.Get("code"), req.verifier, false); status != http.StatusOK {
		t.Errorf("redeem the code of a single sign-on: %d %v", status, m)
	}
}

// sso_login's page in a real browser: the code it shows, its button's POST on to the provider
// (Chromium checks that redirect against the page's CSP form-action), and the page saying who
// signed in; the stdio tool then finishes.
func TestShouldFinishAnSSOLoginSignInInARealBrowser(t *testing.T) {
	srv, c := startSSOStdio(t, map[string]any{"jit": true})
	start := decode[ssoStarted](t, c.Call(t, "sso_login", args{"connector": "op"}))
	b := browserSteps{t: t, ctx: mcptest.Browser(t, 390, 844)}
	b.do(chromedp.Navigate(start.URL), chromedp.WaitVisible(chromedp.CSS(`button[type=submit]`)))
	if code := b.text(`p.code`); strings.TrimSpace(code) != start.UserCode {
		t.Errorf("the page shows the code %q, the tool %q", code, start.UserCode)
	}
	b.shot("sso-device.png")
	b.contrast("sso_login page")
	b.dark(true)
	b.contrast("sso_login page, dark")
	b.dark(false)
	b.do(chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`input[name=login]`)))
	b.do(chromedp.SendKeys(chromedp.CSS(`input[name=login]`), "ada"), chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "any"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`button[autofocus]`)))
	b.do(chromedp.Click(chromedp.CSS(`button[autofocus]`)), chromedp.WaitVisible(chromedp.CSS(`p[role=status]`)))
	if done := b.text(`p[role=status]`); !strings.Contains(done, "ada@acme.example") {
		t.Errorf("the last page says %q, want who signed in", done)
	}
	if got := decode[ssoFinished](t, c.Call(t, "sso_login", args{"login_id": start.LoginID})); got.Status != "signed_in" || got.User.Email != "ada@acme.example" {
		t.Fatalf("sso_login after the browser: %+v\nserver:\n%s", got, srv.Stderr)
	}
}

// forgetProvider deletes the provider's cookies (not mcpauth's: the same host, another port),
// so that its next sign-in shows its login and consent pages again whatever came before.
func (b browserSteps) forgetProvider(at string) {
	b.t.Helper()
	got, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{at}})
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range got.Cookies {
		if !strings.HasPrefix(c.Name, "mcpauth_") {
			if _, err := chromedp.Call(b.ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: c.Name, Domain: c.Domain, Path: c.Path}); err != nil {
				b.t.Fatal(err)
			}
		}
	}
}

// providerSignIn answers the provider's login page as account and its consent page.
func (b browserSteps) providerSignIn(account string) {
	b.t.Helper()
	b.do(chromedp.WaitVisible(chromedp.CSS(`input[name=login]`)), chromedp.SendKeys(chromedp.CSS(`input[name=login]`), account),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "any"), chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[autofocus]`)), chromedp.Click(chromedp.CSS(`button[autofocus]`)))
}

// Linking in a real browser, from a refusal: the provider's identity is unknown (JIT off), the
// refusal offers the link, the link page asks for the account's password, the person confirms,
// signs in at the provider, and from then on that identity signs in as the account. Chromium
// checks the link page's POST on to the provider against its CSP form-action.
func TestShouldLinkFromARefusalInARealBrowser(t *testing.T) {
	in := newInstance(t)
	victim := createVictim(t, in)
	srv, _, _ := startSSOServer(t, in, map[string]any{}) // JIT off
	h := asHarness{t: t, issuer: srv.URL, resource: srv.URL + "/mcp"}
	catcher := newRedirectCatcher(t)
	client := h.mustRegister(map[string]any{"redirect_uris": []string{"http://localhost/callback"}, "client_name": "Browser link e2e",
		"token_endpoint_auth_method": "none"})
	client.redirect = "http://localhost:" + catcher.port + "/callback"
	b := browserSteps{t: t, ctx: mcptest.Browser(t, 390, 844)}
	b.do(chromedp.Navigate(h.authorizeURL(client, nil).url), chromedp.WaitVisible(chromedp.CSS(`button[name=connector]`)),
		chromedp.Click(chromedp.CSS(`button[name=connector]`)))
	b.providerSignIn("victim")
	b.do(chromedp.WaitVisible(chromedp.CSS(`p.error`)))
	if text := b.text("main"); !strings.Contains(text, "not linked to an account here") {
		t.Fatalf("the refusal says %q", text)
	}
	b.shot("sso-refused.png")
	b.contrast("refusal with a link")
	b.do(chromedp.Click(chromedp.CSS(`a[href="/sso/op/link"]`)), chromedp.WaitVisible(chromedp.ID("identifier")))
	if text := b.text("h1"); text != "Sign in to link your Acme SSO account" {
		t.Errorf("the link page asks %q", text)
	}
	b.do(chromedp.SendKeys(chromedp.ID("identifier"), "victim@acme.example"), chromedp.SendKeys(chromedp.ID("password"), "Victim-password-123"),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(`p.warning`)))
	b.shot("sso-link.png")
	b.contrast("link page")
	b.forgetProvider(srv.URL)
	b.do(chromedp.Click(chromedp.CSS(`button[type=submit]`)))
	b.providerSignIn("victim")
	b.do(chromedp.WaitVisible(chromedp.CSS(`p[role=status]`)))
	if text := b.text("main"); !strings.Contains(text, "is linked") {
		t.Fatalf("after the provider: %q", text)
	}
	// The identity now signs in as the account.
	req := h.authorizeURL(client, map[string]string{"prompt": "login"})
	b.forgetProvider(srv.URL)
	b.do(chromedp.Navigate(req.url), chromedp.WaitVisible(chromedp.CSS(`button[name=connector]`)),
		chromedp.Click(chromedp.CSS(`button[name=connector]`)))
	b.providerSignIn("victim")
	b.do(chromedp.WaitVisible(chromedp.CSS(`button[value=allow]`)))
	b.do(chromedp.Click(chromedp.CSS("button[value=allow]")))
	q := catcher.await(t)
	_, m, _ := h.exchange(client, q.Get("code"), req.verifier, false)
	if tok, _ := m["access_token"].(string); tok == "" || mcptest.JWTClaims(t, tok)["sub"] != victim {
		t.Errorf("the linked identity's token %v, want one of %s", m, victim)
	}
}
