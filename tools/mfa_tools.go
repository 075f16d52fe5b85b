package tools

import (
	"context"
	"encoding/base64"
	"encoding/json"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/password"
)

func (s *Set) mfaTools() []server.ServerTool {
	code := str("code", "A current code from your authenticator app, or a recovery code.", mcp.Required(), mcp.MaxLength(maxMFACode))
	return []server.ServerTool{
		{Tool: mcp.NewTool("mfa_enroll",
			mcp.WithDescription("Start TOTP enrollment: returns the secret, an otpauth:// URL and a QR code (PNG) for your authenticator app. Then call mfa_confirm with a code to turn MFA on."),
			str("method", `The method: "totp".`, mcp.Required(), mcp.Enum("totp")),
			stepUpPassword,
			strict, closed,
		), Handler: handler(s, "mfa_enroll", s.mfaEnroll)},
		{Tool: mcp.NewTool("mfa_confirm",
			mcp.WithDescription("Finish enrollment with a first valid code. MFA is then required at every login; the 10 single-use recovery codes returned here are shown only once. "+
				"Unless you logged in within the last few minutes, pass your password too."),
			code, stepUpPassword, strict, closed,
		), Handler: handler(s, "mfa_confirm", s.mfaConfirm)},
		{Tool: mcp.NewTool("mfa_verify",
			mcp.WithDescription("Prove the second factor again (step-up). Each code works once; wrong codes count as failed logins and lock the account as they do."),
			code, strict, closed,
		), Handler: handler(s, "mfa_verify", s.mfaVerify)},
		{Tool: mcp.NewTool("mfa_disable",
			mcp.WithDescription("Turn MFA off; needs your current password and a valid code or recovery code."),
			code, str("password", "Your current password.", mcp.Required(), mcp.MaxLength(password.MaxBytes)),
			strict, mcp.WithDestructiveHintAnnotation(true), closed,
		), Handler: handler(s, "mfa_disable", s.mfaDisable)},
	}
}

type mfaEnrollArgs struct {
	Method   string `json:"method"`
	Password string `json:"password"`
}

func (s *Set) mfaEnroll(ctx context.Context, a mfaEnrollArgs) (any, error) {
	if a.Method != "totp" {
		return nil, apierr.Field("method", `must be "totp"`)
	}
	step := stepUpArgs{Password: a.Password}
	if err := step.check(); err != nil {
		return nil, err
	}
	c, err := userCaller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.stepUp(ctx, c, step, "mfa_enroll"); err != nil {
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

type mfaCodeArgs struct {
	Code string `json:"code"`
}

func (s *Set) mfaCaller(ctx context.Context, code string) (Caller, error) {
	if err := requireString("code", code, maxMFACode); err != nil {
		return Caller{}, err
	}
	return userCaller(ctx)
}

type mfaConfirmArgs struct {
	Code     string `json:"code"`
	Password string `json:"password"`
}

func (s *Set) mfaConfirm(ctx context.Context, a mfaConfirmArgs) (any, error) {
	step := stepUpArgs{Password: a.Password}
	if err := step.check(); err != nil {
		return nil, err
	}
	c, err := s.mfaCaller(ctx, a.Code)
	if err != nil {
		return nil, err
	}
	if err := s.stepUp(ctx, c, step, "mfa_confirm"); err != nil {
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
	c, err := s.mfaCaller(ctx, a.Code)
	if err != nil {
		return nil, err
	}
	if err := s.auth.VerifyMFA(ctx, c.User, auth.Secret(a.Code)); err != nil {
		return nil, err
	}
	return map[string]any{"verified": true}, nil
}

type mfaDisableArgs struct {
	Code     string `json:"code"`
	Password string `json:"password"`
}

func (s *Set) mfaDisable(ctx context.Context, a mfaDisableArgs) (any, error) {
	if err := requireString("password", a.Password, maxSecretArg); err != nil {
		return nil, err
	}
	c, err := s.mfaCaller(ctx, a.Code)
	if err != nil {
		return nil, err
	}
	if err := s.auth.DisableMFA(ctx, c.User, c.Claims, auth.Secret(a.Password), auth.Secret(a.Code)); err != nil {
		return nil, err
	}
	return map[string]any{"disabled": true}, nil
}
