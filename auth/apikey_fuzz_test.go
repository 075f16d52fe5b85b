package auth_test

import (
	"strings"
	"testing"

	"github.com/bduf/mcpauth/auth/apikey"
)

// FuzzParseAPIKey: the parser never panics, and whatever it accepts is exactly a well-formed
// key (prefix, id, secret, and the checksum of the rest), so a typo is refused without I/O.
func FuzzParseAPIKey(f *testing.F) {
	for _, seed := range []string{
		"mcpk_abcdefghijklmnop_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvabcdefg",
		"mcpk_", "", "mcpk__", "mcpk_" + strings.Repeat("a", 76), "MCPK_abcdefghijklmnop_x",
		"mcpk_abcdefghijklmnop_abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuv\nabcdef",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		id, secret, ok := apikey.Parse(key)
		if !ok {
			return
		}
		if !strings.HasPrefix(key, apikey.Prefix+id+"_"+secret) || len(id) != 16 || len(secret) != 52 {
			t.Fatalf("accepted %q as id %q secret %q", key, id, secret)
		}
		for _, r := range id + secret {
			if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
				t.Fatalf("accepted %q with %q outside the key alphabet", key, r)
			}
		}
	})
}
