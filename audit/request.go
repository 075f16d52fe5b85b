package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
)

// Request is what the trail keeps of the call an event belongs to: the transport's facts and,
// once the guard knows it, the caller. The Writer takes it from the event's context
// (WriterConfig.Request), so every event carries it without plumbing; audit knows no context
// key of its own, since the per-call context belongs to the transport (package call).
type Request struct {
	ClientAddr string
	Transport  string
	RequestID  string
	Actor      string // the authenticated caller, once the guard knows it
	SessionID  string
}

// MaxRequestIDLen bounds a client's request id (X-Request-Id) that RequestIDFrom keeps.
const MaxRequestIDLen = 128

// RequestIDFrom returns the request id to record for a client's X-Request-Id header: the header
// itself when it is short and plain (at most MaxRequestIDLen bytes of [A-Za-z0-9._:/+=-]),
// otherwise a server-made id ("srv_" and 16 random hex digits), so that the events of the
// request still share one id without the client choosing what the trail holds. An absent
// (empty) header gives "".
func RequestIDFrom(header string) string {
	if header == "" || plainRequestID(header) {
		return header
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms (Go 1.24+)
	return "srv_" + hex.EncodeToString(b[:])
}

func plainRequestID(s string) bool {
	if len(s) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '/', c == '+', c == '=', c == '-':
		default:
			return false
		}
	}
	return true
}

// Enrich fills e's request fields from r where they are empty. The Writer does it to every
// event it is given, with the request its WriterConfig.Request finds in the event's context, so
// recorders need not.
func Enrich(e Event, r Request) Event {
	if e.ClientAddr == "" {
		e.ClientAddr = r.ClientAddr
	}
	if e.Transport == "" {
		e.Transport = r.Transport
	}
	if e.RequestID == "" {
		e.RequestID = r.RequestID
	}
	if e.Actor == "" {
		e.Actor = r.Actor
	}
	if e.SessionID == "" {
		e.SessionID = r.SessionID
	}
	return e
}

// Discard is a Recorder that records nothing (for tests of other packages and tools that run
// without a trail).
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(context.Context, Event) error        { return nil }
func (discard) RecordDurable(context.Context, Event) error { return nil }
