package audit

import "context"

// Request is what the transport knows about the call an event belongs to; the layers that
// record events take it from the context, so every event carries it without plumbing.
type Request struct {
	ClientAddr string
	Transport  string
	RequestID  string
	Actor      string // the authenticated caller, once the guard knows it
	SessionID  string
}

type requestKey struct{}

// WithRequest returns ctx carrying r.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestFrom returns the request ctx carries (zero if none).
func RequestFrom(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	return r
}

// Enrich fills e's request fields from ctx where they are empty.
func Enrich(ctx context.Context, e Event) Event {
	r := RequestFrom(ctx)
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
