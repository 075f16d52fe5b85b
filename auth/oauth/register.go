package oauth

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// RFC 7591 §3.2.2 registration error codes.
const (
	ErrCodeInvalidRedirectURI    = "invalid_redirect_uri"
	ErrCodeInvalidClientMetadata = "invalid_client_metadata"
)

// Limits on a registration request. Real ones are a few hundred bytes with at most four
// redirect URIs (VS Code); the limits keep a stored client small.
const (
	MaxRegistrationBytes = 16 << 10
	maxRedirectURIs      = 16
	maxClientNameBytes   = 200
	maxScopeBytes        = 1000
)

// Application types (OpenID Connect Dynamic Client Registration).
const (
	AppNative = "native"
	AppWeb    = "web"
)

// ResponseTypeCode is the only response type this server issues.
const ResponseTypeCode = "code"

// RegistrationError is a refused registration, answered as an RFC 7591 error response:
// Code is the error, Description its error_description.
type RegistrationError struct {
	Code, Description string
}

func (e *RegistrationError) Error() string { return e.Code + ": " + e.Description }

func badMetadata(format string, args ...any) error {
	return &RegistrationError{Code: ErrCodeInvalidClientMetadata, Description: fmt.Sprintf(format, args...)}
}

func badRedirect(format string, args ...any) error {
	return &RegistrationError{Code: ErrCodeInvalidRedirectURI, Description: fmt.Sprintf(format, args...)}
}

// Registration is a validated RFC 7591 registration request, defaults filled in.
type Registration struct {
	RedirectURIs    []string
	ClientName      string
	ClientURI       string
	GrantTypes      []string
	ResponseTypes   []string
	AuthMethod      string // token_endpoint_auth_method
	ApplicationType string
	Scope           string // space-separated, single spaces
}

// registrationRequest holds the members we read. JSON null counts as absent; any member not
// listed here is ignored (RFC 7591 §2), like the resource member mcp-go sends.
type registrationRequest struct {
	RedirectURIs    []string `json:"redirect_uris"`
	ClientName      string   `json:"client_name"`
	ClientURI       string   `json:"client_uri"`
	GrantTypes      []string `json:"grant_types"`
	ResponseTypes   []string `json:"response_types"`
	AuthMethod      string   `json:"token_endpoint_auth_method"`
	ApplicationType string   `json:"application_type"`
	Scope           string   `json:"scope"`
}

// memberTypes names, for each member we read, the JSON type it must have.
var memberTypes = map[string]string{
	"redirect_uris": "an array of strings", "grant_types": "an array of strings",
	"response_types": "an array of strings", "client_name": "a string", "client_uri": "a string",
	"token_endpoint_auth_method": "a string", "application_type": "a string", "scope": "a string",
}

// ParseRegistration validates the body of a POST /register. Its errors are
// *RegistrationError.
func ParseRegistration(body []byte) (Registration, error) {
	if len(body) > MaxRegistrationBytes {
		return Registration{}, badMetadata("registration request is larger than %d KiB", MaxRegistrationBytes>>10)
	}
	if jsontext.Value(body).Kind() != '{' {
		return Registration{}, badMetadata("registration request must be a JSON object")
	}
	var req registrationRequest
	// json v2 refuses duplicate members, which encoding/json would resolve silently (last
	// wins) where another reader of the same request might take the first.
	if err := json.Unmarshal(body, &req); err != nil {
		return Registration{}, decodeError(err)
	}

	r := Registration{ClientName: req.ClientName, ClientURI: req.ClientURI, Scope: req.Scope}
	var err error
	if r.RedirectURIs, r.ApplicationType, err = checkRedirectURIs(req.RedirectURIs, req.ApplicationType); err != nil {
		return Registration{}, err
	}
	if err := checkClientName(r.ClientName); err != nil {
		return Registration{}, err
	}
	if r.ClientURI != "" && !httpsURL(r.ClientURI) {
		return Registration{}, badMetadata("client_uri must be an https URL with a host and no user information")
	}
	if r.GrantTypes, err = checkGrantTypes(req.GrantTypes); err != nil {
		return Registration{}, err
	}
	if r.ResponseTypes, err = checkResponseTypes(req.ResponseTypes); err != nil {
		return Registration{}, err
	}
	switch req.AuthMethod {
	case "":
		// RFC 7591 §2's default; MCP clients nearly all send none.
		r.AuthMethod = AuthSecretBasic
	case AuthNone, AuthSecretBasic, AuthSecretPost:
		r.AuthMethod = req.AuthMethod
	default:
		return Registration{}, badMetadata("token_endpoint_auth_method must be none, client_secret_basic or client_secret_post")
	}
	if r.Scope, err = checkScope(r.Scope); err != nil {
		return Registration{}, err
	}
	return r, nil
}

// Client is the client this registration creates. secretHash is empty for a public client.
func (r Registration) Client(id, secretHash string, now time.Time) Client {
	return Client{
		ID:              id,
		Name:            r.ClientName,
		RedirectURIs:    slices.Clone(r.RedirectURIs),
		GrantTypes:      slices.Clone(r.GrantTypes),
		AuthMethod:      r.AuthMethod,
		SecretHash:      secretHash,
		ApplicationType: r.ApplicationType,
		Scope:           r.Scope,
		ClientURI:       r.ClientURI,
		Source:          SourceDynamic,
		Unused:          true,
		CreatedAt:       now,
	}
}

// decodeError words a JSON error without quoting the request: only a member we know is named.
func decodeError(err error) error {
	if errors.Is(err, jsontext.ErrDuplicateName) {
		return badMetadata("registration request names a member twice")
	}
	var serr *json.SemanticError
	if errors.As(err, &serr) {
		// Our members need no RFC 6901 unescaping.
		member, _, _ := strings.Cut(strings.TrimPrefix(string(serr.JSONPointer), "/"), "/")
		if want, ok := memberTypes[member]; ok {
			return badMetadata("%s must be %s", member, want)
		}
	}
	return badMetadata("registration request is not valid JSON")
}

// checkRedirectURIs validates the redirect URIs, drops repeats and settles the application
// type. A given application_type is kept even when the URIs suggest the other one: OpenID
// Connect registration only recommends consistency, and clients get it wrong both ways.
func checkRedirectURIs(uris []string, appType string) ([]string, string, error) {
	switch {
	case len(uris) == 0:
		return nil, "", badRedirect("redirect_uris is required")
	case len(uris) > maxRedirectURIs:
		return nil, "", badRedirect("redirect_uris may hold at most %d URIs", maxRedirectURIs)
	case appType != "" && appType != AppNative && appType != AppWeb:
		return nil, "", badMetadata("application_type must be native or web")
	}
	allNative := true
	out := make([]string, 0, len(uris))
	for i, u := range uris {
		native, err := CheckRedirectURI(u)
		if err != nil {
			return nil, "", badRedirect("redirect_uris[%d]: %v", i, err)
		}
		allNative = allNative && native
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	if appType == "" {
		appType = AppWeb
		if allNative {
			appType = AppNative
		}
	}
	return out, appType, nil
}

func checkClientName(name string) error {
	if len(name) > maxClientNameBytes {
		return badMetadata("client_name is longer than %d bytes", maxClientNameBytes)
	}
	// The name is shown on the consent page: bidirectional overrides could make it read as
	// another client's name there, so they are refused with the control characters.
	for _, c := range name {
		if unicode.IsControl(c) || unicode.Is(unicode.Bidi_Control, c) {
			return badMetadata("client_name must not contain control characters")
		}
	}
	return nil
}

func checkGrantTypes(grants []string) ([]string, error) {
	if grants == nil {
		return []string{GrantAuthorizationCode, GrantRefreshToken}, nil
	}
	var out []string
	for _, g := range grants {
		if g != GrantAuthorizationCode && g != GrantRefreshToken {
			return nil, badMetadata("grant_types may hold only authorization_code and refresh_token")
		}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	if !slices.Contains(out, GrantAuthorizationCode) {
		return nil, badMetadata("grant_types must include authorization_code")
	}
	return out, nil
}

func checkResponseTypes(types []string) ([]string, error) {
	if types == nil {
		return []string{ResponseTypeCode}, nil
	}
	// The authorization_code grant needs the code response type (RFC 7591 §2.1), so an empty
	// list is refused as well.
	if len(types) == 0 || slices.ContainsFunc(types, func(t string) bool { return t != ResponseTypeCode }) {
		return nil, badMetadata("response_types may hold only code")
	}
	return []string{ResponseTypeCode}, nil
}

// checkScope validates the scope tokens (RFC 6749 §3.3) and rejoins them with single spaces,
// so that stray spaces a client leaves are not stored.
func checkScope(scope string) (string, error) {
	if len(scope) > maxScopeBytes {
		return "", badMetadata("scope is longer than %d bytes", maxScopeBytes)
	}
	tokens := strings.FieldsFunc(scope, func(c rune) bool { return c == ' ' })
	for _, t := range tokens {
		for i := 0; i < len(t); i++ {
			if c := t[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return "", badMetadata("scope must be space-separated scope tokens")
			}
		}
	}
	return strings.Join(tokens, " "), nil
}

// httpsURL reports whether raw is an absolute https URL with a host and no user information.
func httpsURL(raw string) bool {
	if len(raw) > maxURIBytes || !uriChars(raw) {
		return false
	}
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https" && u.Hostname() != "" && u.User == nil
}
