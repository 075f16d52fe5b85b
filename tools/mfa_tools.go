package tools

import (
	"context"
	"encoding/base64"
	"encoding/json"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/bduf/mcpauth/auth"
	mcpauth "github.com/bduf/mcpauth/mcp"
)

func mfaTools() []tool {
	return []tool{
		declare(tool{Name: "mfa_enroll", Rule: mcpauth.Authenticated(), // the caller's own second factor
			Description: "Start TOTP enrollment: returns the secret, an otpauth:// URL and a QR code (PNG) for your authenticator app. Then call mfa_confirm with a code to turn MFA on."},
			(*Set).mfaEnroll),
		declare(tool{Name: "mfa_confirm", Rule: mcpauth.Authenticated(),
			Description: "Finish enrollment with a first valid code. MFA is then required at every login; the 10 single-use recovery codes returned here are shown only once. " +
				"Unless you logged in within the last few minutes, pass your password too."},
			(*Set).mfaConfirm),
		declare(tool{Name: "mfa_verify", Rule: mcpauth.Authenticated(),
			Description: "Prove the second factor again (step-up). Each code works once; wrong codes count as failed logins and lock the account as they do."},
			(*Set).mfaVerify),
		declare(tool{Name: "mfa_disable", Rule: mcpauth.Authenticated(),
			Description: "Turn MFA off; needs your current password and a valid code or recovery code.",
			Destructive: true},
			(*Set).mfaDisable),
	}
}

type mfaEnrollArgs struct {
	Method string `json:"method" desc:"The method: \"totp\"." required:"true" enum:"totp"`
	stepUpPassword
}

func (s *Set) mfaEnroll(ctx context.Context, a mfaEnrollArgs) (any, error) {
	c, err := userCaller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.stepUp(ctx, c, stepUpArgs{stepUpPassword: a.stepUpPassword}, "mfa_enroll"); err != nil {
		return nil, err
	}
	en, err := s.auth.EnrollMFA(ctx, c.User)
	if err != nil {
		return nil, err
	}
	// The one result that shows the secret: structured, as text, and as a QR code image.
	body := map[string]any{"method": "totp", "secret": en.Secret.Reveal(), "otpauth_url": en.OTPAuthURL.Reveal(),
		"next": "scan the QR code or enter the secret in an authenticator app, then call mfa_confirm with a code"}
	text, _ := json.Marshal(body)
	return &mcp.CallToolResult{
		Content: []mcp.Content{
			mcp.NewTextContent(string(text)),
			mcp.NewImageContent(base64.StdEncoding.EncodeToString(en.QRCodePNG), "image/png"),
		},
		StructuredContent: body,
	}, nil
}

// mfaCodeArgs is the code the MFA tools take.
type mfaCodeArgs struct {
	Code string `json:"code" desc:"A current code from your authenticator app, or a recovery code." required:"true" max:"mfa_code"`
}

type mfaConfirmArgs struct {
	mfaCodeArgs
	stepUpPassword
}

func (s *Set) mfaConfirm(ctx context.Context, a mfaConfirmArgs) (any, error) {
	c, err := userCaller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.stepUp(ctx, c, stepUpArgs{stepUpPassword: a.stepUpPassword}, "mfa_confirm"); err != nil {
		return nil, err
	}
	codes, err := s.auth.ConfirmMFA(ctx, c.User, auth.Secret(a.Code))
	if err != nil {
		return nil, err
	}
	shown := make([]string, len(codes))
	for i, rc := range codes {
		shown[i] = rc.Reveal() // the one result that shows them
	}
	return map[string]any{"enabled": true, "recovery_codes": shown}, nil
}

func (s *Set) mfaVerify(ctx context.Context, a mfaCodeArgs) (any, error) {
	c, err := userCaller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.auth.VerifyMFA(ctx, c.User, auth.Secret(a.Code)); err != nil {
		return nil, err
	}
	return map[string]any{"verified": true}, nil
}

type mfaDisableArgs struct {
	mfaCodeArgs
	Password string `json:"password" desc:"Your current password." required:"true" max:"password"`
}

func (s *Set) mfaDisable(ctx context.Context, a mfaDisableArgs) (any, error) {
	c, err := userCaller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.auth.DisableMFA(ctx, c.User, c.Claims, auth.Secret(a.Password), auth.Secret(a.Code)); err != nil {
		return nil, err
	}
	return map[string]any{"disabled": true}, nil
}
