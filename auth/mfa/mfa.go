// Package mfa is the second factor: TOTP (RFC 6238, the parameters every authenticator app
// supports) with the secret sealed by the master key, and single-use recovery codes of which
// only hashes are kept. Replay protection and single use are unique inserts in the store (a
// time step claimed, a recovery code spent), atomic on FerretDB and MongoDB alike.
//
// Whether a check may happen at all (the lockout), and what a failed one costs, is the auth
// service's sequence; Factors only answers whether a code is right.
package mfa

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth/storeerr"
	"github.com/bduf/mcpauth/internal/random"
)

// Factor is a user's second factor: a TOTP secret (sealed with the master key) and the hashes
// of their recovery codes. Pending until confirmed with a first valid code.
type Factor struct {
	UserID         string    `bson:"_id"`
	SecretSealed   []byte    `bson:"secret_sealed"`
	Enabled        bool      `bson:"enabled"`
	RecoveryHashes []string  `bson:"recovery_hashes"`
	CreatedAt      time.Time `bson:"created_at"`
	EnabledAt      time.Time `bson:"enabled_at,omitempty"`
}

// Store persists second factors. Replay protection and single use are claim inserts with a
// unique _id (FerretDB v1 updates are not atomic). Errors wrap storeerr's sentinels.
type Store interface {
	GetMFA(ctx context.Context, userID string) (Factor, error) // storeerr.ErrNotFound
	PutMFA(ctx context.Context, m Factor) error                // create or replace
	DeleteMFA(ctx context.Context, userID string) error
	// ClaimTOTPStep records that a code of this time step was accepted;
	// storeerr.ErrAlreadyExists if it was before (a replay).
	ClaimTOTPStep(ctx context.Context, userID string, step int64, at time.Time) error
	// LastTOTPStep is the highest step claimed (0 if none).
	LastTOTPStep(ctx context.Context, userID string) (int64, error)
	// SpendRecoveryCode records a recovery code's use; storeerr.ErrAlreadyExists if it was
	// used before.
	SpendRecoveryCode(ctx context.Context, userID, hash string, at time.Time) error
}

// Sealer encrypts the TOTP secrets at rest, bound to the record (token.Sealer, the master key).
type Sealer interface {
	Seal(id string, plaintext []byte) []byte
	Open(id string, sealed []byte) ([]byte, error)
}

// TOTP parameters: RFC 6238 defaults every authenticator app supports.
const (
	totpPeriod        = 30
	totpSkew          = 1 // one step either side: ±30 s of clock drift
	recoveryCodeCount = 10
	// MaxCode bounds a presented code (a recovery code with separators is 17 characters).
	MaxCode = 64
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Answers callers see.
var (
	ErrRequired     = apierr.New(apierr.MFARequired, "this account needs a second factor: pass mfa_code (a TOTP code or a recovery code)")
	ErrInvalidCode  = apierr.New(apierr.InvalidMFACode, "the MFA code is not valid")
	ErrNotEnabled   = apierr.New(apierr.Conflict, "MFA is not enabled for this account")
	ErrAlreadyOn    = apierr.New(apierr.Conflict, "MFA is already enabled; disable it before enrolling again")
	ErrNotPending   = apierr.New(apierr.Conflict, "no pending MFA enrollment: call mfa_enroll first")
	ErrUnconfigured = apierr.New(apierr.Internal, "MFA is not configured on this server")
)

// Method names how a second factor was given.
type Method string

// Methods.
const (
	TOTP         Method = "totp"
	RecoveryCode Method = "recovery_code"
)

// Factors enrolls, confirms, checks and removes second factors. It is safe for concurrent use.
type Factors struct {
	store  Store
	sealer Sealer // nil: MFA unavailable (ErrUnconfigured)
	issuer string
	now    func() time.Time
}

// NewFactors returns Factors over the store; issuer names the service in authenticator apps.
func NewFactors(store Store, sealer Sealer, issuer string, now func() time.Time) *Factors {
	return &Factors{store: store, sealer: sealer, issuer: issuer, now: now}
}

// Enrollment is a new, pending TOTP secret, to be shown once so the user can add it to an app.
// Secret and OTPAuthURL (which contains the secret) are revealed: wrap them at once.
type Enrollment struct {
	Secret     string
	OTPAuthURL string
	QRCodePNG  []byte
}

// Enroll creates (or replaces) a pending TOTP secret for the user; account is the name the
// authenticator app shows (the email).
func (f *Factors) Enroll(ctx context.Context, userID, account string) (Enrollment, error) {
	if f.sealer == nil {
		return Enrollment{}, ErrUnconfigured
	}
	if m, err := f.store.GetMFA(ctx, userID); err == nil && m.Enabled {
		return Enrollment{}, ErrAlreadyOn
	} else if err != nil && !errors.Is(err, storeerr.ErrNotFound) {
		return Enrollment{}, apierr.Internalf("get mfa: %w", err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: f.issuer, AccountName: account, Period: totpPeriod,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return Enrollment{}, apierr.Internalf("generate totp key: %w", err)
	}
	img, err := key.Image(256, 256)
	if err != nil {
		return Enrollment{}, apierr.Internalf("qr code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return Enrollment{}, apierr.Internalf("qr code: %w", err)
	}
	m := Factor{UserID: userID, SecretSealed: f.sealer.Seal(sealID(userID), []byte(key.Secret())), CreatedAt: f.now()}
	if err := f.store.PutMFA(ctx, m); err != nil {
		return Enrollment{}, apierr.Internalf("store mfa: %w", err)
	}
	return Enrollment{Secret: key.Secret(), OTPAuthURL: key.URL(), QRCodePNG: buf.Bytes()}, nil
}

func sealID(userID string) string { return "mfa:" + userID }

// Confirm enables a pending enrollment with a first valid TOTP code and returns the recovery
// codes, to be shown only once.
func (f *Factors) Confirm(ctx context.Context, userID, code string) ([]string, error) {
	m, err := f.get(ctx, userID)
	if errors.Is(err, storeerr.ErrNotFound) {
		return nil, ErrNotPending
	}
	if err != nil {
		return nil, err
	}
	if m.Enabled {
		return nil, ErrAlreadyOn
	}
	if err := f.checkTOTP(ctx, m, code); err != nil {
		return nil, err
	}
	codes := make([]string, recoveryCodeCount)
	m.RecoveryHashes = make([]string, recoveryCodeCount)
	for i := range codes {
		c := random.String(10) // 80 bits, 16 characters
		codes[i] = c[:8] + "-" + c[8:]
		m.RecoveryHashes[i] = hashCode(codes[i])
	}
	m.Enabled, m.EnabledAt = true, f.now()
	if err := f.store.PutMFA(ctx, m); err != nil {
		return nil, apierr.Internalf("enable mfa: %w", err)
	}
	return codes, nil
}

// Enabled is the user's second factor and whether it is on (a pending enrollment is not).
func (f *Factors) Enabled(ctx context.Context, userID string) (Factor, bool, error) {
	m, err := f.store.GetMFA(ctx, userID)
	if errors.Is(err, storeerr.ErrNotFound) {
		return Factor{}, false, nil
	}
	if err != nil {
		return Factor{}, false, apierr.Internalf("get mfa: %w", err)
	}
	return m, m.Enabled, nil
}

// EnabledFactor is the user's enabled second factor: ErrNotEnabled if there is none.
func (f *Factors) EnabledFactor(ctx context.Context, userID string) (Factor, error) {
	m, err := f.get(ctx, userID)
	if errors.Is(err, storeerr.ErrNotFound) || (err == nil && !m.Enabled) {
		return Factor{}, ErrNotEnabled
	}
	return m, err
}

// Remove deletes the user's second factor (there being none is no error).
func (f *Factors) Remove(ctx context.Context, userID string) error {
	if err := f.store.DeleteMFA(ctx, userID); err != nil && !errors.Is(err, storeerr.ErrNotFound) {
		return apierr.Internalf("disable mfa: %w", err)
	}
	return nil
}

func (f *Factors) get(ctx context.Context, userID string) (Factor, error) {
	if f.sealer == nil {
		return Factor{}, ErrUnconfigured
	}
	m, err := f.store.GetMFA(ctx, userID)
	if err != nil && !errors.Is(err, storeerr.ErrNotFound) {
		return Factor{}, apierr.Internalf("get mfa: %w", err)
	}
	return m, err
}

// Check accepts a TOTP code (six digits) or an unused recovery code of m, and says which it
// was. A wrong, replayed or spent code is ErrInvalidCode.
func (f *Factors) Check(ctx context.Context, m Factor, code string) (Method, error) {
	c := strings.TrimSpace(code)
	if len(c) == 6 && strings.Trim(c, "0123456789") == "" {
		return TOTP, f.checkTOTP(ctx, m, c)
	}
	return RecoveryCode, f.checkRecoveryCode(ctx, m, c)
}

// checkTOTP accepts a code of the current step or one step either side, at most once, and never
// one of a step at or before the last accepted one.
func (f *Factors) checkTOTP(ctx context.Context, m Factor, code string) error {
	if f.sealer == nil {
		return ErrUnconfigured
	}
	c := strings.TrimSpace(code)
	if len(c) != 6 {
		return ErrInvalidCode
	}
	secret, err := f.sealer.Open(sealID(m.UserID), m.SecretSealed)
	if err != nil {
		return apierr.Internalf("open totp secret: %w", err)
	}
	now := f.now()
	step := int64(-1)
	for d := -totpSkew; d <= totpSkew; d++ {
		at := now.Add(time.Duration(d*totpPeriod) * time.Second)
		want, err := totp.GenerateCodeCustom(string(secret), at, totpOpts)
		if err != nil {
			return apierr.Internalf("totp: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(c)) == 1 {
			step = at.Unix() / totpPeriod
		}
	}
	if step < 0 {
		return ErrInvalidCode
	}
	last, err := f.store.LastTOTPStep(ctx, m.UserID)
	if err != nil {
		return apierr.Internalf("last totp step: %w", err)
	}
	if step <= last {
		return ErrInvalidCode.With("reason", "code already used")
	}
	if err := f.store.ClaimTOTPStep(ctx, m.UserID, step, now); err != nil {
		if errors.Is(err, storeerr.ErrAlreadyExists) {
			return ErrInvalidCode.With("reason", "code already used")
		}
		return apierr.Internalf("claim totp step: %w", err)
	}
	return nil
}

// hashCode is the stored form of a recovery code: separators and letter case do not matter.
func hashCode(c string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(c)))))
	return hex.EncodeToString(sum[:])
}

func (f *Factors) checkRecoveryCode(ctx context.Context, m Factor, code string) error {
	if len(code) > MaxCode {
		return ErrInvalidCode
	}
	h := hashCode(code)
	found := false
	for _, rh := range m.RecoveryHashes {
		if subtle.ConstantTimeCompare([]byte(rh), []byte(h)) == 1 {
			found = true
		}
	}
	if !found {
		return ErrInvalidCode
	}
	if err := f.store.SpendRecoveryCode(ctx, m.UserID, h, f.now()); err != nil {
		if errors.Is(err, storeerr.ErrAlreadyExists) {
			return ErrInvalidCode.With("reason", "recovery code already used")
		}
		return apierr.Internalf("spend recovery code: %w", err)
	}
	return nil
}
