package mcptest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// Provider client credentials of StartOpenIDProvider's one client.
const (
	ProviderClientID     = "mcpauth"
	ProviderClientSecret = "op-client-secret-for-tests-only"
)

// StartOpenIDProvider starts a real OpenID Provider (node-oidc-provider, testdata/clients/
// oidc-op.mjs) on a free loopback port, with one confidential client (ProviderClientID,
// ProviderClientSecret) whose redirect URI is redirect, and the accounts (login → claims); it
// returns the issuer and a function that replaces the accounts (the next sign-in sees them). It
// is stopped when t ends.
func StartOpenIDProvider(t testing.TB, redirect string, accounts map[string]map[string]any) (string, func(map[string]map[string]any)) {
	t.Helper()
	nc := FindNodeClients(t)
	file := filepath.Join(t.TempDir(), "accounts.json")
	set := func(a map[string]map[string]any) {
		b, _ := json.Marshal(a)
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	set(accounts)
	cfg, _ := json.Marshal(map[string]any{
		"clients": []map[string]any{{"client_id": ProviderClientID, "client_secret": ProviderClientSecret, "redirect_uris": []string{redirect},
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}}},
		"accounts_file": file,
	})
	p := StartProc(t, nc.Node, append(BaseEnv(), "OP_CONFIG="+string(cfg)), nil, filepath.Join(nc.Dir, "oidc-op.mjs"))
	m, err := p.Stdout.WaitFor(regexp.MustCompile(`LISTENING (\S+)`), p.Exited, 30*time.Second)
	if err != nil {
		t.Fatalf("the OpenID Provider did not start: %v\n%s", err, p.Stderr)
	}
	return m[1], set
}
