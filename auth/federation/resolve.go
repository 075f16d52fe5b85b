package federation

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/bduf/mcpauth/auth/storeerr"
)

// Policy is a connector's rules for who may sign in through it and what becomes of them.
type Policy struct {
	// JIT creates an account, in OrgID with DefaultRole, for an identity seen for the first
	// time (off by default: an unknown identity is refused). Such an account has no password.
	JIT                bool
	OrgID, DefaultRole string
	// AllowedDomains restricts sign-in to verified emails of these domains; AllowedGroups to
	// identities in at least one of these groups (empty: anyone the provider proves).
	AllowedDomains, AllowedGroups []string
	// LinkByEmailDomains marks the provider authoritative for these email domains: a verified
	// email there links the identity to the account of OrgID with that email. Empty (the
	// default): an identity is linked only from a session of the account (Link).
	LinkByEmailDomains []string
	// TrustMFA counts the provider's multi-factor authentication (amr mfa, otp or hwk) as the
	// second factor of an account that has one.
	TrustMFA bool
	// GroupRoles map the provider's groups to roles, applied at every sign-in (SyncRoles).
	GroupRoles []GroupRole
	// Lifetime bounds what a sign-in through the provider leads to (the client's grant,
	// however often refreshed, and the browser's session), so that the provider is asked
	// again, and its groups read again, at least that often (0: DefaultSessionTTL).
	Lifetime time.Duration
}

// DefaultSessionTTL is how long a single sign-on lasts unless its connector says otherwise.
const DefaultSessionTTL = 24 * time.Hour

// SessionTTL is p's Lifetime or the default.
func (p Policy) SessionTTL() time.Duration {
	if p.Lifetime > 0 {
		return p.Lifetime
	}
	return DefaultSessionTTL
}

// Account is a local account as the resolver needs it.
type Account struct {
	ID, Email, OrgID string
	Disabled         bool
}

// Accounts is what the resolver asks of the local accounts (auth.Service). Lookups answer
// storeerr.ErrNotFound for none; CreateAccount storeerr.ErrAlreadyExists when the email is taken.
type Accounts interface {
	AccountByID(ctx context.Context, id string) (Account, error)
	AccountByEmail(ctx context.Context, email string) (Account, error)
	// CreateAccount makes a passwordless account under id (the id the link already names).
	CreateAccount(ctx context.Context, id, email, username, orgID, role string) (Account, error)
}

// Outcome is whom an identity signs in as.
type Outcome struct {
	Account Account
	// Created: the account was made now (JIT); Linked: the identity was linked now (by email).
	Created, Linked bool
	// MFADone: the provider's authentication counts as the second factor (Policy.TrustMFA).
	MFADone bool
}

// Reasons of a refused sign-in (audit SSO_LOGIN_REFUSED).
const (
	ReasonDomain          = "domain"           // the email's domain is not allowed
	ReasonGroup           = "group"            // in none of the allowed groups
	ReasonUnverifiedEmail = "unverified_email" // a rule needed a verified email
	ReasonUnknownIdentity = "unknown_identity" // not linked, and JIT is off
	ReasonEmailInUse      = "email_in_use"     // an account has the email: link from it
	ReasonOtherOrg        = "other_org"        // the email's account is in another organization
	ReasonDisabled        = "account_disabled"
)

// DeniedError is a sign-in the policy refuses; Reason is one of the Reason constants.
type DeniedError struct{ Reason string }

func (e *DeniedError) Error() string { return "sign-in refused: " + e.Reason }

func denied(reason string) error { return &DeniedError{Reason: reason} }

// Resolver turns a proven identity into the account it signs in as.
type Resolver struct {
	Store    Store
	Accounts Accounts
	// Roles and Grants apply a policy's GroupRoles (nil: no mapping).
	Roles  Roles
	Grants GrantStore
	// NewID makes the id of a JIT account (auth's user ids).
	NewID func() string
	Now   func() time.Time
}

// awaitAccount bounds how long a sign-in that lost the race for a new identity's link waits for
// the winner to make the account.
const awaitAccount = 5 * time.Second

// Resolve applies p to id: the allow-lists, then the identity's link (made by email or JIT
// where p allows), then the account's state.
func (r *Resolver) Resolve(ctx context.Context, id Identity, p Policy) (Outcome, error) {
	if err := allowed(id, p); err != nil {
		return Outcome{}, err
	}
	mfa := p.TrustMFA && slices.ContainsFunc(id.AMR, func(m string) bool { return m == "mfa" || m == "otp" || m == "hwk" })
	link, err := r.Store.GetLink(ctx, id.Issuer, id.Subject)
	switch {
	case err == nil:
		acct, err := r.linkedAccount(ctx, link, id, p)
		return Outcome{Account: acct, MFADone: mfa}, err
	case !errors.Is(err, storeerr.ErrNotFound):
		return Outcome{}, err
	}
	if domain, ok := emailDomain(id.Email); ok && slices.Contains(p.LinkByEmailDomains, domain) {
		if !id.EmailVerified {
			return Outcome{}, denied(ReasonUnverifiedEmail)
		}
		acct, err := r.Accounts.AccountByEmail(ctx, id.Email)
		switch {
		case err == nil:
			if acct.OrgID != p.OrgID {
				return Outcome{}, denied(ReasonOtherOrg)
			}
			o, err := r.link(ctx, id, p, acct.ID)
			o.MFADone = mfa
			return o, err
		case !errors.Is(err, storeerr.ErrNotFound):
			return Outcome{}, err
		}
	}
	if !p.JIT {
		return Outcome{}, denied(ReasonUnknownIdentity)
	}
	// JIT: the link first (of concurrent first sign-ins one wins, the others follow it), then
	// the account, whose unique email refuses to take over someone else's (ReasonEmailInUse).
	o, err := r.link(ctx, id, p, r.NewID())
	o.MFADone = mfa
	return o, err
}

// link links id to userID (an existing account, or one to make under that id when p is JIT and
// none has it). Of concurrent first sign-ins of one identity, one link wins; the others sign in
// as its account.
func (r *Resolver) link(ctx context.Context, id Identity, p Policy, userID string) (Outcome, error) {
	err := r.Store.CreateLink(ctx, Link{Issuer: id.Issuer, Subject: id.Subject, ConnectorID: id.ConnectorID, UserID: userID,
		CreatedAt: r.now()})
	if errors.Is(err, storeerr.ErrAlreadyExists) {
		l, err := r.Store.GetLink(ctx, id.Issuer, id.Subject)
		if err != nil {
			return Outcome{}, err
		}
		acct, err := r.awaitLinked(ctx, l, id, p)
		return Outcome{Account: acct}, err
	}
	if err != nil {
		return Outcome{}, err
	}
	acct, err := r.Accounts.AccountByID(ctx, userID)
	if err == nil {
		return Outcome{Account: acct, Linked: true}, r.usable(acct)
	}
	if !errors.Is(err, storeerr.ErrNotFound) {
		return Outcome{}, err
	}
	acct, err = r.Accounts.CreateAccount(ctx, userID, id.Email, id.Username, p.OrgID, p.DefaultRole)
	if errors.Is(err, storeerr.ErrAlreadyExists) {
		// Either another account has the email, or another sign-in of this identity, which
		// found the link, is making this very account (its id is the link's).
		if other, err := r.Accounts.AccountByEmail(ctx, id.Email); err != nil || other.ID == userID {
			if acct, err := r.awaitAccount(ctx, userID); err == nil {
				return Outcome{Account: acct}, r.usable(acct)
			}
		}
		if derr := r.Store.DeleteLink(ctx, id.Issuer, id.Subject); derr != nil && !errors.Is(derr, storeerr.ErrNotFound) {
			return Outcome{}, derr
		}
		return Outcome{}, denied(ReasonEmailInUse)
	}
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Account: acct, Created: true}, nil
}

// linkedAccount is the account a link names. A link whose account is missing is a JIT sign-in
// that stopped between the two writes: the account is made now (JIT on) under the link's id.
func (r *Resolver) linkedAccount(ctx context.Context, l Link, id Identity, p Policy) (Account, error) {
	acct, err := r.Accounts.AccountByID(ctx, l.UserID)
	if errors.Is(err, storeerr.ErrNotFound) && p.JIT {
		acct, err = r.Accounts.CreateAccount(ctx, l.UserID, id.Email, id.Username, p.OrgID, p.DefaultRole)
		if errors.Is(err, storeerr.ErrAlreadyExists) { // being made meanwhile by the sign-in that linked it
			acct, err = r.awaitAccount(ctx, l.UserID)
		}
	}
	if errors.Is(err, storeerr.ErrNotFound) {
		return Account{}, denied(ReasonUnknownIdentity)
	}
	if err != nil {
		return Account{}, err
	}
	return acct, r.usable(acct)
}

// awaitAccount reads the account userID that another sign-in is making (its unique email or id
// is taken already; the account's record follows), for at most awaitAccount.
func (r *Resolver) awaitAccount(ctx context.Context, userID string) (Account, error) {
	ctx, cancel := context.WithTimeout(ctx, awaitAccount)
	defer cancel()
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		acct, err := r.Accounts.AccountByID(ctx, userID)
		if !errors.Is(err, storeerr.ErrNotFound) {
			return acct, err
		}
		select {
		case <-ctx.Done():
			return Account{}, storeerr.ErrNotFound
		case <-time.After(wait):
		}
	}
}

// awaitLinked is linkedAccount for a sign-in that lost the race for the link: the winner may
// still be making the account.
func (r *Resolver) awaitLinked(ctx context.Context, l Link, id Identity, p Policy) (Account, error) {
	acct, err := r.awaitAccount(ctx, l.UserID)
	if errors.Is(err, storeerr.ErrNotFound) { // the winner stopped: make it (JIT), as a later sign-in would
		return r.linkedAccount(ctx, l, id, p)
	}
	if err != nil {
		return Account{}, err
	}
	return acct, r.usable(acct)
}

func (r *Resolver) usable(a Account) error {
	if a.Disabled {
		return denied(ReasonDisabled)
	}
	return nil
}

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now().UTC().Truncate(time.Millisecond)
	}
	return time.Now().UTC().Truncate(time.Millisecond)
}

// allowed applies the allow-lists.
func allowed(id Identity, p Policy) error {
	if len(p.AllowedDomains) > 0 {
		domain, ok := emailDomain(id.Email)
		switch {
		case !ok || !slices.Contains(p.AllowedDomains, domain):
			return denied(ReasonDomain)
		case !id.EmailVerified:
			return denied(ReasonUnverifiedEmail)
		}
	}
	if len(p.AllowedGroups) > 0 && !slices.ContainsFunc(id.Groups, func(g string) bool { return slices.Contains(p.AllowedGroups, g) }) {
		return denied(ReasonGroup)
	}
	return nil
}

// emailDomain is the lower-cased domain of an email.
func emailDomain(email string) (string, bool) {
	at := strings.LastIndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return "", false
	}
	return strings.ToLower(email[at+1:]), true
}

// Link links id to the account userID from a session of that account (the explicit linking a
// person asks for, after their password and second factor): refused when the identity is
// linked to another account already.
func (r *Resolver) Link(ctx context.Context, id Identity, userID string) error {
	err := r.Store.CreateLink(ctx, Link{Issuer: id.Issuer, Subject: id.Subject, ConnectorID: id.ConnectorID, UserID: userID, CreatedAt: r.now()})
	if errors.Is(err, storeerr.ErrAlreadyExists) {
		l, gerr := r.Store.GetLink(ctx, id.Issuer, id.Subject)
		if gerr == nil && l.UserID == userID {
			return nil // linked already: nothing to do
		}
		return denied("identity_linked_elsewhere")
	}
	return err
}
