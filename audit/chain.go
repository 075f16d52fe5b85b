package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// The hash chain. Each writer instance keeps its own chain (see doc.go for why): the events it
// writes carry Instance = its id and Seq = 1, 2, 3, ... Each event stores its canonical hash
// (Hash) and the hash of the event before it in its chain (PrevHash; "" for the first event, or
// the retention anchor's hash once the head of the chain has been deleted).
//
// The canonical hash is SHA-256, in hex, over a JSON object with these members in this order:
// id, instance, type, severity, time, subject, actor, org_id, client_addr, transport, request_id,
// session_id, details, prev_hash. Time is RFC 3339 (nano form) in UTC, truncated to the
// millisecond (MongoDB keeps milliseconds); details is JSON with its keys sorted.
//
// Seq is deliberately outside the hash: it is the index the verifier walks by, and the order is
// fixed by the PrevHash links, so moving an event to another position breaks a link ("out of
// order") while changing an event's content breaks its own hash ("edited").

// canonicalEvent is the hashed form of an Event; the field order is the canonical order.
type canonicalEvent struct {
	ID         string `json:"id"`
	Instance   string `json:"instance"`
	Type       string `json:"type"`
	Severity   string `json:"severity"`
	Time       string `json:"time"`
	Subject    string `json:"subject"`
	Actor      string `json:"actor"`
	OrgID      string `json:"org_id"`
	ClientAddr string `json:"client_addr"`
	Transport  string `json:"transport"`
	RequestID  string `json:"request_id"`
	SessionID  string `json:"session_id"`
	Details    any    `json:"details"`
	PrevHash   string `json:"prev_hash"`
}

// canonicalTime is how an event's time is stored and hashed: UTC, milliseconds.
func canonicalTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// hashEvent returns e's canonical hash. It fails only on details that JSON cannot carry (which
// the writer never stores, but an edited document may hold).
func hashEvent(e Event) (string, error) {
	var details any
	if len(e.Details) > 0 {
		details = plain(e.Details)
	}
	b, err := json.Marshal(canonicalEvent{
		ID:         e.ID,
		Instance:   e.Instance,
		Type:       e.Type,
		Severity:   string(e.Severity),
		Time:       canonicalTime(e.Time).Format(time.RFC3339Nano),
		Subject:    e.Subject,
		Actor:      e.Actor,
		OrgID:      e.OrgID,
		ClientAddr: e.ClientAddr,
		Transport:  e.Transport,
		RequestID:  e.RequestID,
		SessionID:  e.SessionID,
		Details:    details,
		PrevHash:   e.PrevHash,
	})
	if err != nil {
		return "", fmt.Errorf("canonical form of event %s: %w", e.ID, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// plain turns the shapes the MongoDB driver decodes nested values into (bson.D, bson.M, bson.A)
// back into the plain JSON shapes the writer stored (maps and slices), so a stored event hashes
// to the same value it was written with. encoding/json sorts map keys.
func plain(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			m[k] = plain(val)
		}
		return m
	case bson.M:
		return plain(map[string]any(x))
	case bson.D:
		m := make(map[string]any, len(x))
		for _, el := range x {
			m[el.Key] = plain(el.Value)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, val := range x {
			s[i] = plain(val)
		}
		return s
	case bson.A:
		return plain([]any(x))
	default:
		return v
	}
}

// normalizeDetails returns details as plain JSON values (objects, arrays, strings, float64
// numbers, booleans, null): exactly what survives a round trip through BSON unchanged, so the
// hash computed now is the hash recomputed from the stored document. Going through
// encoding/json also applies every value's own marshalling, so a secret type that redacts
// itself when marshalled is stored redacted.
func normalizeDetails(d map[string]any) map[string]any {
	if len(d) == 0 {
		return nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		// Never drop the event for it: keep the event, say the details could not be kept.
		return map[string]any{"details_error": "details not serializable as JSON"}
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return map[string]any{"details_error": "details not serializable as JSON"}
	}
	return out
}

// prepare puts a caller's event in its stored form, before the chain fields are assigned.
func prepare(e Event, now func() time.Time) Event {
	if e.Time.IsZero() {
		e.Time = now()
	}
	e.Time = canonicalTime(e.Time)
	if e.Severity == "" {
		e.Severity = Info
	}
	e.Details = normalizeDetails(e.Details)
	for _, s := range []*string{&e.Type, &e.Subject, &e.Actor, &e.OrgID, &e.ClientAddr, &e.Transport,
		&e.RequestID, &e.SessionID} {
		// JSON (the canonical form) cannot tell invalid UTF-8 sequences apart; store valid text.
		*s = strings.ToValidUTF8(*s, "\uFFFD")
	}
	return e
}

// chainHead is where a chain stands: the Seq and Hash of its last event (zero for a new chain).
type chainHead struct {
	Seq  int64
	Hash string
}

// link assigns e the next position after h and returns e with its hash, and the new head.
func (h chainHead) link(e Event) (Event, chainHead, error) {
	e.Seq = h.Seq + 1
	e.PrevHash = h.Hash
	hash, err := hashEvent(e)
	if err != nil {
		return e, h, err
	}
	e.Hash = hash
	return e, chainHead{Seq: e.Seq, Hash: e.Hash}, nil
}

// Problems a verification reports in BadLink.Problem.
const (
	ProblemEdited     = "edited"       // the event's content does not match its own hash
	ProblemMissing    = "missing"      // a position of the chain has no event
	ProblemOutOfOrder = "out of order" // the event does not link to the event before it
)

// chainChecker walks one chain in Seq order and finds its first broken link.
type chainChecker struct {
	instance string
	next     chainHead // Seq: the position expected next; Hash: the PrevHash it must carry
}

// check checks the next event of the chain; it returns the broken link, if any.
func (c *chainChecker) check(e Event) *BadLink {
	bad := func(seq int64, problem string) *BadLink {
		return &BadLink{Instance: c.instance, Seq: seq, EventID: e.ID, Problem: problem}
	}
	if e.Seq > c.next.Seq {
		return &BadLink{Instance: c.instance, Seq: c.next.Seq, Problem: ProblemMissing}
	}
	if h, err := hashEvent(e); err != nil || h != e.Hash {
		return bad(e.Seq, ProblemEdited)
	}
	if e.Seq < c.next.Seq || e.PrevHash != c.next.Hash {
		return bad(e.Seq, ProblemOutOfOrder)
	}
	c.next = chainHead{Seq: e.Seq + 1, Hash: e.Hash}
	return nil
}
