package audit_test

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/bduf/mcpauth/audit"
)

// plainDetail turns the nested shapes the driver decodes (bson.D, bson.A) into maps and lists.
func plainDetail(v any) any {
	switch x := v.(type) {
	case bson.D:
		m := make(map[string]any, len(x))
		for _, el := range x {
			m[el.Key] = plainDetail(el.Value)
		}
		return m
	case bson.A:
		return plainDetail([]any(x))
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, el := range x {
			m[k] = plainDetail(el)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, el := range x {
			s[i] = plainDetail(el)
		}
		return s
	}
	return v
}

var serverRequestID = regexp.MustCompile(`^srv_[0-9a-f]{16}$`)

func TestShouldKeepOnlyShortPlainRequestIDs(t *testing.T) {
	tests := []struct {
		name   string
		header string
		kept   bool // false: replaced by a server-made id (or, for "", left empty)
	}{
		{"a plain id is kept", "req-1.2_3:a/b+c=d", true},
		{"an id of 128 bytes is kept", strings.Repeat("a", 128), true},
		{"an id of 129 bytes is replaced", strings.Repeat("a", 129), false},
		{"an id of 100 KiB is replaced", strings.Repeat("a", 100<<10), false},
		{"a newline is replaced", "req\nforged=1", false},
		{"a NUL byte is replaced", "req\x00", false},
		{"a space is replaced", "req 1", false},
		{"a tab is replaced", "req\t1", false},
		{"unicode is replaced", "réq-1", false},
		{"invalid UTF-8 is replaced", "req\xff", false},
		{"a quote is replaced", `req"1`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := audit.RequestIDFrom(tt.header)
			switch {
			case tt.kept && got != tt.header:
				t.Fatalf("RequestIDFrom(%.40q) = %q, want it kept", tt.header, got)
			case !tt.kept && !serverRequestID.MatchString(got):
				t.Fatalf("RequestIDFrom(%.40q) = %.40q, want a server-made srv_ id", tt.header, got)
			}
		})
	}
	t.Run("an absent header stays absent", func(t *testing.T) {
		if got := audit.RequestIDFrom(""); got != "" {
			t.Fatalf("RequestIDFrom(\"\") = %q, want empty", got)
		}
	})
	t.Run("two replaced ids differ", func(t *testing.T) {
		if a, b := audit.RequestIDFrom("x y"), audit.RequestIDFrom("x y"); a == b {
			t.Fatalf("two server-made ids are both %q", a)
		}
	})
}

const truncated = "…(truncated)"

// wantCut checks that got is want cut to at most bound bytes: valid UTF-8, a prefix of want,
// ending with the marker.
func wantCut(t *testing.T, field, got, want string, bound int) {
	t.Helper()
	if len(got) > bound || !utf8.ValidString(got) || !strings.HasSuffix(got, truncated) ||
		!strings.HasPrefix(want, strings.TrimSuffix(got, truncated)) || len(got) < bound-utf8.UTFMax-len(truncated) {
		t.Errorf("%s stored as %d bytes (%.60q…), want want cut to at most %d bytes, valid UTF-8, marked %q",
			field, len(got), got, bound, truncated)
	}
}

func TestShouldStoreEveryLongStringOfAnEventCutToItsBound(t *testing.T) {
	// "€" is 3 bytes: a cut at a fixed byte count would split one.
	long := "a" + strings.Repeat("€", 100<<10/3)
	tests := []struct {
		name  string
		event func() audit.Event
		check func(t *testing.T, got audit.Event)
	}{
		{
			name: "a 100 KiB request id is stored cut to 256 bytes",
			event: func() audit.Event {
				e := event(1)
				e.RequestID = long
				return e
			},
			check: func(t *testing.T, got audit.Event) { wantCut(t, "request_id", got.RequestID, long, 256) },
		},
		{
			name: "every request field is stored cut to 256 bytes",
			event: func() audit.Event {
				e := event(1)
				e.ClientAddr, e.Transport, e.RequestID, e.Subject, e.Actor, e.OrgID, e.SessionID = long, long, long, long, long, long, long
				return e
			},
			check: func(t *testing.T, got audit.Event) {
				for field, v := range map[string]string{"client_addr": got.ClientAddr, "transport": got.Transport,
					"request_id": got.RequestID, "subject": got.Subject, "actor": got.Actor, "org_id": got.OrgID,
					"session_id": got.SessionID} {
					wantCut(t, field, v, long, 256)
				}
			},
		},
		{
			name: "a 100 KiB details string is stored cut to 1024 bytes",
			event: func() audit.Event {
				e := event(1)
				e.Details = map[string]any{"tool": long, "n": 1}
				return e
			},
			check: func(t *testing.T, got audit.Event) {
				s, _ := got.Details["tool"].(string)
				wantCut(t, "details.tool", s, long, 1024)
				if got.Details["n"] != 1.0 && got.Details["n"] != int32(1) && got.Details["n"] != int64(1) {
					t.Errorf("details.n = %#v, want 1", got.Details["n"])
				}
			},
		},
		{
			name: "strings nested in details maps and lists are stored cut to 1024 bytes",
			event: func() audit.Event {
				e := event(1)
				e.Details = map[string]any{
					"outer": map[string]any{"inner": []any{"short", map[string]any{"deep": long}}},
					"list":  []string{"short", long},
				}
				return e
			},
			check: func(t *testing.T, got audit.Event) {
				outer, _ := got.Details["outer"].(map[string]any)
				inner, _ := outer["inner"].([]any)
				if len(inner) != 2 || inner[0] != "short" {
					t.Fatalf("details.outer.inner = %#v", outer["inner"])
				}
				deep, _ := inner[1].(map[string]any)
				s, _ := deep["deep"].(string)
				wantCut(t, "details.outer.inner[1].deep", s, long, 1024)
				list, _ := got.Details["list"].([]any)
				if len(list) != 2 || list[0] != "short" {
					t.Fatalf("details.list = %#v", got.Details["list"])
				}
				s, _ = list[1].(string)
				wantCut(t, "details.list[1]", s, long, 1024)
			},
		},
		{
			name: "strings at their bound are stored whole",
			event: func() audit.Event {
				e := event(1)
				e.RequestID = strings.Repeat("r", 256)
				e.Details = map[string]any{"tool": strings.Repeat("t", 1024)}
				return e
			},
			check: func(t *testing.T, got audit.Event) {
				if got.RequestID != strings.Repeat("r", 256) || got.Details["tool"] != strings.Repeat("t", 1024) {
					t.Errorf("stored %d-byte request id and %v, want both whole", len(got.RequestID), got.Details)
				}
			},
		},
		{
			name:  "an event without long strings is stored unchanged",
			event: func() audit.Event { return event(1) },
			check: func(t *testing.T, got audit.Event) {
				want := event(1)
				if got.Subject != want.Subject || got.Actor != want.Actor || got.OrgID != want.OrgID ||
					got.ClientAddr != want.ClientAddr || got.Transport != want.Transport ||
					got.RequestID != want.RequestID || got.SessionID != want.SessionID {
					t.Errorf("stored %+v, want the request fields of %+v", got, want)
				}
				nested, _ := got.Details["nested"].(map[string]any)
				if b, _ := nested["b"].([]any); len(b) != 3 || b[1] != "two" || nested["a"] != 1.5 {
					t.Errorf("stored details %#v, want %#v", got.Details, want.Details)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, db := newStore(t)
			w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a"})
			mustOK(t, "record", w.Record(ctxFor(t), tt.event()))
			mustOK(t, "record durable", w.RecordDurable(ctxFor(t), tt.event()))
			mustOK(t, "close", w.Close(ctxFor(t)))
			got := stored(t, db, "inst-a")
			if len(got) != 2 {
				t.Fatalf("stored %d events, want 2", len(got))
			}
			for _, e := range got {
				e.Details, _ = plainDetail(e.Details).(map[string]any)
				tt.check(t, e)
			}
			mustVerify(t, s, 1, 2)
		})
	}
}

var capSink audit.Event

func TestShouldCapAnEventThatNeedsNoCutWithoutAllocating(t *testing.T) {
	e := event(1)
	e.Details["list"] = []string{"a", "b"}
	e.Details["tool"] = strings.Repeat("t", 1024)
	e.RequestID = strings.Repeat("r", 256)
	if allocs := testing.AllocsPerRun(100, func() { capSink = audit.CapEvent(e) }); allocs != 0 {
		t.Fatalf("capping an event that needs no cut: %v allocations, want 0", allocs)
	}
	if !reflect.DeepEqual(capSink, e) {
		t.Fatalf("capped %+v, want it unchanged: %+v", capSink, e)
	}
}

func TestShouldNotChangeTheCallersDetailsWhenCapping(t *testing.T) {
	long := strings.Repeat("x", 2000)
	inner := map[string]any{"deep": long}
	list := []string{long}
	e := audit.Event{Type: audit.AuthzDenied, Details: map[string]any{"inner": inner, "list": list}}
	got := audit.CapEvent(e)
	if inner["deep"] != long || list[0] != long {
		t.Fatalf("capping changed the caller's details: %d, %d bytes", len(inner["deep"].(string)), len(list[0]))
	}
	if s := got.Details["inner"].(map[string]any)["deep"].(string); len(s) > 1024 {
		t.Fatalf("capped details hold %d bytes", len(s))
	}
	if s := got.Details["list"].([]string)[0]; len(s) > 1024 {
		t.Fatalf("capped details list holds %d bytes", len(s))
	}
}
