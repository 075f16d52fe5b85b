package oauth

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestShouldTakeOnlyHTTPSURLsWithAPathAsDocumentClientIDs(t *testing.T) {
	for id, want := range map[string]bool{
		"https://claude.ai/oauth/claude-code-client-metadata": true,
		"https://app.example/client.json":                     true,
		"https://app.example:8443/a/b":                        true,
		"http://app.example/client.json":                      false, // not https
		"https://app.example":                                 false, // no path
		"https://app.example/":                                false,
		"https://user@app.example/client.json":                false,
		"https://app.example/client.json?x=1":                 false,
		"https://app.example/client.json#frag":                false,
		"https://app.example/a/../client.json":                false,
		"https://app.example/a/./client.json":                 false,
		"https://app.example/a/%2e%2e/client.json":            false,
		"mcp_abcdef":           false,
		"https:///client.json": false,
	} {
		if got := IsDocumentID(id); got != want {
			t.Errorf("IsDocumentID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestShouldFetchDocumentsOnlyFromPublicAddresses(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.216.34": true, "2606:2800:220:1:248:1893:25c8:1946": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fc00::1": false, "100.64.0.1": false, "0.0.0.0": false,
		"::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "64:ff9b::a00:1": false, "224.0.0.1": false,
		"255.255.255.255": false, "198.18.0.1": false, "2002:a00:1::": false,
	} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

// docServer serves one handler over TLS and counts the requests it got.
type docServer struct {
	*httptest.Server
	hits atomic.Int32
}

func newDocServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, id string)) *docServer {
	t.Helper()
	d := &docServer{}
	d.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		h(w, r, "https://"+r.Host+r.URL.Path)
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *docServer) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(d.Certificate())
	return p
}

func jsonDoc(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func goodDocument(id string) string {
	return `{"client_id":"` + id + `","client_name":"Claude Code","redirect_uris":["http://localhost/callback","http://127.0.0.1/callback"],` +
		`"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}`
}

func TestShouldResolveAClientFromItsMetadataDocumentAndKeepIt(t *testing.T) {
	srv := newDocServer(t, func(w http.ResponseWriter, _ *http.Request, id string) {
		w.Header().Set("Cache-Control", "public, max-age=60") // below the floor: kept 5 minutes
		jsonDoc(w, http.StatusOK, goodDocument(id))
	})
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	d := NewDocuments(DocumentsConfig{AllowPrivate: true, RootCAs: srv.roots(), Now: clock})
	id := srv.URL + "/oauth/client-metadata"

	// Twenty first requests at once: one fetch.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			c, err := d.Client(t.Context(), id)
			if err == nil && (c.ID != id || c.Name != "Claude Code" || c.AuthMethod != AuthNone || c.Source != SourceMetadata ||
				len(c.RedirectURIs) != 2 || c.ApplicationType != AppNative) {
				err = errors.New("wrong client: " + c.ID + " " + c.Name)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.hits.Load(); n != 1 {
		t.Errorf("fetches for 20 concurrent first requests: %d, want 1", n)
	}
	mu.Lock()
	now = now.Add(4 * time.Minute)
	mu.Unlock()
	if _, err := d.Client(t.Context(), id); err != nil || srv.hits.Load() != 1 {
		t.Errorf("within 5 minutes: %v, %d fetches; want the cached document", err, srv.hits.Load())
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if _, err := d.Client(t.Context(), id); err != nil || srv.hits.Load() != 2 {
		t.Errorf("after 6 minutes: %v, %d fetches; want a second fetch", err, srv.hits.Load())
	}
}

func TestShouldRefuseDocumentsThatCannotBeTrusted(t *testing.T) {
	big := strings.Repeat(" ", MaxDocumentBytes)
	for _, tt := range []struct {
		name   string
		serve  func(w http.ResponseWriter, r *http.Request, id string)
		reason string
	}{
		{"a redirect", func(w http.ResponseWriter, r *http.Request, id string) {
			http.Redirect(w, r, "https://attacker.example/doc", http.StatusFound)
		}, "answered 302"},
		{"an error status", func(w http.ResponseWriter, _ *http.Request, _ string) { jsonDoc(w, http.StatusNotFound, `{}`) }, "answered 404"},
		{"another client_id", func(w http.ResponseWriter, _ *http.Request, _ string) {
			jsonDoc(w, http.StatusOK, goodDocument("https://claude.ai/oauth/claude-code-client-metadata"))
		}, "client_id is not the URL"},
		{"a secret", func(w http.ResponseWriter, _ *http.Request, id string) {
			jsonDoc(w, http.StatusOK, strings.Replace(goodDocument(id), `{`, `{"client_secret":"s3cret",`, 1))
		}, "client secret"},
		{"a secret-based auth method", func(w http.ResponseWriter, _ *http.Request, id string) {
			jsonDoc(w, http.StatusOK, strings.Replace(goodDocument(id), `"none"`, `"client_secret_basic"`, 1))
		}, "must be none"},
		{"a javascript: redirect URI", func(w http.ResponseWriter, _ *http.Request, id string) {
			jsonDoc(w, http.StatusOK, `{"client_id":"`+id+`","redirect_uris":["javascript:alert(1)"]}`)
		}, "redirect_uris[0]"},
		{"no redirect URIs", func(w http.ResponseWriter, _ *http.Request, id string) {
			jsonDoc(w, http.StatusOK, `{"client_id":"`+id+`"}`)
		}, "redirect_uris is required"},
		{"HTML", func(w http.ResponseWriter, _ *http.Request, id string) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(goodDocument(id)))
		}, "not served as application/json"},
		{"too large", func(w http.ResponseWriter, _ *http.Request, id string) {
			jsonDoc(w, http.StatusOK, goodDocument(id)[:len(goodDocument(id))-1]+big+"}")
		}, "larger than 16 KiB"},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request, _ string) { jsonDoc(w, http.StatusOK, `[1,2]`) }, "not a valid JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newDocServer(t, tt.serve)
			d := NewDocuments(DocumentsConfig{AllowPrivate: true, RootCAs: srv.roots()})
			_, err := d.Client(t.Context(), srv.URL+"/client.json")
			var de *DocumentError
			if !errors.As(err, &de) || !strings.Contains(de.Reason, tt.reason) {
				t.Fatalf("err = %v, want a DocumentError saying %q", err, tt.reason)
			}
			// The failure is kept: a client retrying does not make the server fetch again.
			if _, err := d.Client(t.Context(), srv.URL+"/client.json"); err == nil || srv.hits.Load() != 1 {
				t.Errorf("retry: %v after %d fetches, want the kept failure", err, srv.hits.Load())
			}
		})
	}
}

func TestShouldNeverConnectToAPrivateAddressForADocument(t *testing.T) {
	srv := newDocServer(t, func(w http.ResponseWriter, _ *http.Request, id string) { jsonDoc(w, http.StatusOK, goodDocument(id)) })
	d := NewDocuments(DocumentsConfig{RootCAs: srv.roots()}) // the production setting
	port := srv.Listener.Addr().(interface{ String() string }).String()
	_, p, _ := strings.Cut(port, ":")
	for _, id := range []string{srv.URL + "/client.json", "https://localhost:" + p + "/client.json"} { // by address, by a name resolving to loopback
		_, err := d.Client(context.Background(), id)
		var de *DocumentError
		if !errors.As(err, &de) || !strings.Contains(de.Reason, "non-public address") {
			t.Errorf("%s: %v, want a refusal naming the non-public address", id, err)
		}
	}
	if n := srv.hits.Load(); n != 0 {
		t.Errorf("the private server got %d requests, want none", n)
	}
}

func TestShouldRefuseADocumentHostWhoseCertificateIsNotTrusted(t *testing.T) {
	srv := newDocServer(t, func(w http.ResponseWriter, _ *http.Request, id string) { jsonDoc(w, http.StatusOK, goodDocument(id)) })
	d := NewDocuments(DocumentsConfig{AllowPrivate: true}) // system roots: the test CA is not among them
	_, err := d.Client(t.Context(), srv.URL+"/client.json")
	var de *DocumentError
	if !errors.As(err, &de) || !strings.Contains(de.Reason, "certificate is not trusted") {
		t.Fatalf("err = %v", err)
	}
}

func TestShouldKeepADocumentAsItsMaxAgeSaysWithinBounds(t *testing.T) {
	for header, want := range map[string]time.Duration{
		"":                           documentDefaultTTL,
		"max-age=60":                 documentMinTTL,
		"public, max-age=3600":       time.Hour,
		"max-age=999999999":          documentMaxTTL,
		"no-cache, max-age=\"7200\"": 2 * time.Hour,
		"max-age=junk":               documentDefaultTTL,
	} {
		if got := documentTTL(header); got != want {
			t.Errorf("documentTTL(%q) = %s, want %s", header, got, want)
		}
	}
}
