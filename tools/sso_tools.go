package tools

import (
	"context"
	"errors"
	"time"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/oauth"
	mcpauth "github.com/bduf/mcpauth/mcp"
)

// SSO is single sign-on for clients without a browser of their own (oauth.Devices): a sign-in
// started here is finished by the person on the authorization server's pages.
type SSO interface {
	Start(connector, client string) (oauth.DeviceSignIn, error)
	// Redeem answers oauth.ErrPending until the person has signed in in the browser.
	Redeem(ctx context.Context, loginID, client string) (auth.Tokens, auth.User, error)
}

// UseSSO turns the sso_login tool on: without it, Tools() leaves it out. Call it before Tools.
func (s *Set) UseSSO(sso SSO) { s.sso = sso }

func ssoTools() []tool {
	return []tool{
		declare(tool{Name: "sso_login", Rule: mcpauth.Public(),
			Description: "Log in through an identity provider (single sign-on), for clients without a browser of their own. " +
				"Call with connector: answers a url for the person to open in a browser, the user_code that page shows, and a login_id. " +
				"Once they have signed in there, call with login_id: answers the tokens and the user as auth_login does (status pending until then). " +
				"Over stdio the session stays logged in for later calls.",
			Available: func(s *Set) bool { return s.sso != nil }},
			(*Set).ssoLogin),
	}
}

type ssoLoginArgs struct {
	Connector string `json:"connector" desc:"The identity provider to sign in with (its id; starts a sign-in)." max:"id"`
	LoginID   string `json:"login_id" desc:"The login_id of a started sign-in, to finish it." max:"token"`
}

type ssoStarted struct {
	Status string `json:"status"` // "started"
	oauth.DeviceSignIn
	Next string `json:"next"`
}

type ssoPending struct {
	Status string `json:"status"` // "pending"
	Next   string `json:"next"`
}

type ssoSignedIn struct {
	Status string `json:"status"` // "signed_in"
	loginResult
}

func (s *Set) ssoLogin(ctx context.Context, a ssoLoginArgs) (any, error) {
	switch {
	case a.Connector != "" && a.LoginID != "":
		return nil, apierr.Field("connector", "give connector (to start) or login_id (to finish), not both")
	case a.Connector == "" && a.LoginID == "":
		return nil, apierr.Field("connector", "connector (to start) or login_id (to finish) is required")
	case s.sso == nil:
		return nil, apierr.New(apierr.NotFound, "single sign-on is not set up on this server")
	case a.Connector != "":
		in, err := s.sso.Start(a.Connector, clientName(ctx))
		if err != nil {
			return nil, err
		}
		return ssoStarted{Status: "started", DeviceSignIn: in,
			Next: "Open url in a browser, check that the page shows user_code, sign in, then call sso_login with login_id (before " +
				in.ExpiresAt.Format(time.RFC3339) + ")."}, nil
	}
	tokens, u, err := s.sso.Redeem(ctx, a.LoginID, clientName(ctx))
	if errors.Is(err, oauth.ErrPending) {
		return ssoPending{Status: "pending", Next: "The sign-in is not finished in the browser yet: call sso_login with login_id again once it is."}, nil
	}
	if err != nil {
		return nil, err
	}
	s.bind.bind(ctx, tokens.AccessToken)
	view, err := s.view(ctx, u)
	if err != nil {
		return nil, err
	}
	return ssoSignedIn{Status: "signed_in", loginResult: loginResult{Tokens: tokens, User: view}}, nil
}
