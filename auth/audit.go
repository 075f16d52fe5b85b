package auth

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/bduf/mcpauth/audit"
)

// record adds an event to the audit trail without waiting for it to be durable (the writer
// never drops it). A failure to enqueue (the caller's context ended) is logged, not returned:
// the operation itself has already happened.
func (s *Service) record(ctx context.Context, e audit.Event) {
	if e.Type == audit.AuthFailed {
		reason, _ := e.Details["reason"].(string)
		authFailures.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
	}
	if err := s.cfg.Audit.Record(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit event not recorded", "type", e.Type, "error", err)
	}
}

// recordDurable adds an event and waits until it is durable: for operations whose correctness
// depends on their record (account and credential administration).
func (s *Service) recordDurable(ctx context.Context, e audit.Event) error {
	return s.cfg.Audit.RecordDurable(ctx, e)
}

// authFailed is a failed check of u's credentials (u is the zero User for an unknown
// account), during names what the check was for ("" for a login).
func authFailed(u User, reason, during string, details map[string]any) audit.Event {
	if details == nil {
		details = map[string]any{}
	}
	details["reason"] = reason
	if during != "" {
		details["during"] = during
	}
	return audit.Event{Type: audit.AuthFailed, Severity: audit.Warning, Subject: u.ID, OrgID: u.OrgID, Details: details}
}
