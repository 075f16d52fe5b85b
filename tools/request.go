package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/apierr"
	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/call"
	mcpauth "github.com/bduf/mcpauth/mcp"
)

// Caller is the authenticated identity of a call, as the guard put it in the context.
type Caller = mcpauth.Identity

// callerFrom returns the guard's caller. A tool that needs a caller and finds none was reached
// without the guard: it refuses (fail closed) rather than authenticate on its own.
func callerFrom(ctx context.Context) (Caller, error) {
	c, ok := mcpauth.IdentityFrom(ctx)
	if !ok {
		return Caller{}, auth.ErrUnauthenticated
	}
	return c, nil
}

// bindsSession reports whether the call's transport is one process's own session (stdio),
// where auth_login binds the identity to the session.
func bindsSession(ctx context.Context) bool {
	r := call.From(ctx)
	return r != nil && r.BindSession
}

// bindings holds the access token bound to each stdio MCP session by auth_login/auth_refresh.
type bindings struct {
	mu     sync.RWMutex
	tokens map[string]auth.Secret
}

func sessionID(ctx context.Context) string {
	if s := server.ClientSessionFromContext(ctx); s != nil {
		return s.SessionID()
	}
	return ""
}

func (b *bindings) bind(ctx context.Context, token string) {
	if !bindsSession(ctx) {
		return
	}
	if id := sessionID(ctx); id != "" {
		b.mu.Lock()
		b.tokens[id] = auth.Secret(token)
		b.mu.Unlock()
		toolsChanged(ctx)
	}
}

func (b *bindings) unbind(ctx context.Context) {
	if id := sessionID(ctx); id != "" {
		b.mu.Lock()
		_, was := b.tokens[id]
		delete(b.tokens, id)
		b.mu.Unlock()
		if was {
			toolsChanged(ctx)
		}
	}
}

// toolsChanged tells the session's client that its tool list changed: over stdio the list
// follows the session's login, and a host that lists tools once (Claude Desktop) lists them
// again only on notifications/tools/list_changed. A refresh sends it too (the roles behind the
// new token may differ); a lost notification costs only a stale list.
func toolsChanged(ctx context.Context) {
	if s := server.ServerFromContext(ctx); s != nil {
		_ = s.SendNotificationToClient(ctx, string(mcp.MethodNotificationToolsListChanged), nil)
	}
}

// credential is the token a call is made with: the session's login binding first (an explicit
// login in this process wins), then the transport's bearer.
func (b *bindings) credential(ctx context.Context) (auth.Secret, string) {
	r := call.From(ctx) // once: this runs on every call
	if r != nil && r.BindSession {
		if id := sessionID(ctx); id != "" {
			b.mu.RLock()
			t, ok := b.tokens[id]
			b.mu.RUnlock()
			if ok {
				return t, "session_login"
			}
		}
	}
	return mcpauth.RequestCredential(r)
}

// decodeArgs strictly decodes a call's arguments into T: unknown arguments and wrong types are
// INVALID_ARGUMENT naming the argument.
func decodeArgs[T any](req mcp.CallToolRequest) (T, error) {
	var args T
	raw := req.Params.RawArguments
	if len(raw) == 0 && req.Params.Arguments != nil {
		var err error
		if raw, err = json.Marshal(req.Params.Arguments); err != nil {
			return args, apierr.New(apierr.InvalidArgument, "arguments must be a JSON object")
		}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		return args, apierr.New(apierr.InvalidArgument, "arguments must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&args); err != nil {
		return args, argumentError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return args, apierr.New(apierr.InvalidArgument, "arguments must be a single JSON object")
	}
	return args, nil
}

func argumentError(err error) error {
	if e, own := errors.AsType[*apierr.Error](err); own { // an argument type's own decoding (userFields)
		return e
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return apierr.Field(typeErr.Field, "must be of type %s, not %s", jsonType(typeErr.Type.Kind().String()), typeErr.Value)
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return apierr.Field(name, "is not an argument of this tool")
	}
	return apierr.New(apierr.InvalidArgument, "arguments are not valid JSON for this tool")
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "int64":
		return "integer"
	case "float64":
		return "number"
	case "slice":
		return "array"
	case "map", "struct":
		return "object"
	}
	return kind
}

// ok renders a success: the value as structuredContent and the same JSON as text.
func ok(v any) *mcp.CallToolResult {
	b, err := json.Marshal(v)
	if err != nil {
		return mcpauth.ErrorResult(apierr.Internalf("marshal result: %w", err))
	}
	var structured map[string]any
	_ = json.Unmarshal(b, &structured)
	return mcp.NewToolResultStructured(structured, string(b))
}

// fail logs an internal cause (never shown to the caller) and renders the error.
func (s *Set) fail(ctx context.Context, tool string, err error) *mcp.CallToolResult {
	if apierr.CodeOf(err) == apierr.Internal {
		s.log.ErrorContext(ctx, "tool failed", "tool", tool, "error", err)
	}
	return mcpauth.ErrorResult(err)
}

// handler adapts a typed handler: strict argument decoding, the checks its arguments declare
// (args), error rendering, and panic recovery (a handler never takes the server down; a panic
// is INTERNAL).
func handler[A any](s *Set, tool string, args *argSpec, h func(ctx context.Context, args A) (any, error)) server.ToolHandlerFunc {
	return func(ctx context.Context, req mcp.CallToolRequest) (res *mcp.CallToolResult, err error) {
		defer func() {
			if r := recover(); r != nil {
				res, err = s.fail(ctx, tool, fmt.Errorf("panic in tool %s: %v", tool, r)), nil
			}
		}()
		a, derr := decodeArgs[A](req)
		if derr == nil {
			derr = args.check(reflect.ValueOf(&a).Elem(), "")
		}
		if derr != nil {
			return mcpauth.ErrorResult(derr), nil
		}
		out, herr := h(ctx, a)
		if herr != nil {
			return s.fail(ctx, tool, herr), nil
		}
		if r, isResult := out.(*mcp.CallToolResult); isResult { // a handler that renders itself
			return r, nil
		}
		return ok(out), nil
	}
}
