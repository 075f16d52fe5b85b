package oauth_test

import (
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/bduf/mcpauth/auth/oauth"
)

// RFC 7636 Appendix B: this verifier hashes to this challenge (checked with openssl too).
const (
	rfcVerifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	rfcChallenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)

func TestShouldVerifyTheRFC7636AppendixBVector(t *testing.T) {
	if !oauth.VerifyS256(rfcVerifier, rfcChallenge) {
		t.Fatal("VerifyS256 refused the RFC 7636 Appendix B pair")
	}
	if got := oauth2.S256ChallengeFromVerifier(rfcVerifier); got != rfcChallenge {
		t.Fatalf("x/oauth2 derives %q from the RFC verifier, the RFC says %q", got, rfcChallenge)
	}
}

func TestShouldVerifyWhatGolangOAuth2Generates(t *testing.T) {
	for range 20 {
		v := oauth2.GenerateVerifier()
		ch := oauth2.S256ChallengeFromVerifier(v)
		if !oauth.ValidVerifier(v) || !oauth.ValidChallenge(ch) || !oauth.VerifyS256(v, ch) {
			t.Fatalf("x/oauth2 pair %q / %q refused", v, ch)
		}
	}
}

func TestShouldRefuseAVerifierThatDoesNotMatch(t *testing.T) {
	tests := []struct {
		name      string
		verifier  string
		challenge string
	}{
		{"another valid verifier", strings.Repeat("a", 43), rfcChallenge},
		{"the verifier with one character changed", "eBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", rfcChallenge},
		{"the challenge itself as the verifier (plain method)", rfcChallenge, rfcChallenge},
		{"the challenge with padding", rfcVerifier, rfcChallenge + "="},
		{"the challenge in standard base64", rfcVerifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"},
		{"an empty challenge", rfcVerifier, ""},
		{"an empty verifier", "", rfcChallenge},
		{"a too short verifier that hashes right", "abc", oauth2.S256ChallengeFromVerifier("abc")},
		{"a verifier with a forbidden character that hashes right", rfcVerifier + "+", oauth2.S256ChallengeFromVerifier(rfcVerifier + "+")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if oauth.VerifyS256(tt.verifier, tt.challenge) {
				t.Errorf("VerifyS256(%q, %q) = true", tt.verifier, tt.challenge)
			}
		})
	}
}

func TestShouldCheckTheShapeOfAVerifier(t *testing.T) {
	tests := []struct {
		name     string
		verifier string
		valid    bool
	}{
		{"the RFC 7636 example", rfcVerifier, true},
		{"43 characters, the shortest allowed", strings.Repeat("a", 43), true},
		{"128 characters, the longest allowed", strings.Repeat("Z", 128), true},
		{"every unreserved punctuation character", strings.Repeat("-._~", 11), true},
		{"42 characters", strings.Repeat("a", 42), false},
		{"129 characters", strings.Repeat("a", 129), false},
		{"empty", "", false},
		{"a plus sign", strings.Repeat("a", 42) + "+", false},
		{"a slash", strings.Repeat("a", 42) + "/", false},
		{"padding", strings.Repeat("a", 42) + "=", false},
		{"a space", strings.Repeat("a", 42) + " ", false},
		{"a non-ASCII letter", strings.Repeat("a", 41) + "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oauth.ValidVerifier(tt.verifier); got != tt.valid {
				t.Errorf("ValidVerifier(%q) = %v, want %v", tt.verifier, got, tt.valid)
			}
		})
	}
}

func TestShouldCheckTheShapeOfAChallenge(t *testing.T) {
	tests := []struct {
		name      string
		challenge string
		valid     bool
	}{
		{"the RFC 7636 example", rfcChallenge, true},
		{"a digest of zeros", strings.Repeat("A", 43), true},
		{"42 characters", rfcChallenge[:42], false},
		{"44 characters", rfcChallenge + "A", false},
		{"with padding", rfcChallenge[:42] + "=", false},
		{"standard base64 characters", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", false},
		{"a last character with stray low bits", rfcChallenge[:42] + "N", false},
		{"a line break the decoder would skip", rfcChallenge[:42] + "\n", false},
		{"a plain-method challenge (a verifier)", rfcVerifier + "x", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oauth.ValidChallenge(tt.challenge); got != tt.valid {
				t.Errorf("ValidChallenge(%q) = %v, want %v", tt.challenge, got, tt.valid)
			}
		})
	}
}
