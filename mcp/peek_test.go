package mcp

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"
)

// peekReference is what the HTTP guard must agree with: encoding/json (mcp-go's own parser)
// decoding the body into the fields it looks at.
func peekReference(body []byte) (methods, calls []string) {
	type message struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	var msgs []message
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		if json.Unmarshal(trimmed, &msgs) != nil {
			return nil, nil
		}
	} else {
		var m message
		if json.Unmarshal(trimmed, &m) != nil {
			return nil, nil
		}
		msgs = []message{m}
	}
	for _, m := range msgs {
		methods = append(methods, m.Method)
		if m.Method == "tools/call" {
			calls = append(calls, m.Params.Name)
		}
	}
	return methods, calls
}

var peekCases = []string{
	`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"projects_list","arguments":{"a":[1,{"name":"x"}]}}}`,
	`[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}},{"method":"ping"},null]`,
	`{"METHOD":"tools/call","Params":{"NAME":"a"}}`,
	`{"method":"tools/call","method":null,"params":{"name":"a"},"params":null}`,
	`{"method":"tools/list","method":"tools/call","params":{"name":"a","name":"b"}}`,
	`{"meth\u006fd":"tools/call","params":{"name":"\u0061"}}`,
	`{"method":"tools/call","params":{"name":"a"}} {"method":"ping"}`,
	`{"method":"tools/call","params":[]}`,
	`{"method":1}`,
	`{"method":"tools/call","params":{"name":2}}`,
	`[1]`, `[]`, `null`, `"x"`, ``, `   `, `{`, `{"method":"ping",}`, `[{"method":"ping"},]`,
	"{\"method\":\"\xff\"}", `{"method":"\ud800"}`, `{"ſ":1,"method":"ping"}`, `{"K":1}`,
	`{"method":"notifications/initialized"}`, ` {"method":"initialize"} `,
	// Names that fold to ours without being as long (ſ folds to s): a length check would miss them.
	`{"method":"tools/call","paramſ":{"name":"a"}}`,
}

// TestShouldPeekAsEncodingJSONReads: on the cases above (case-folded and escaped names,
// duplicates, nulls, wrong types, trailing values, invalid UTF-8) the streaming peek answers
// exactly as encoding/json does.
func TestShouldPeekAsEncodingJSONReads(t *testing.T) {
	for _, c := range peekCases {
		methods, calls := peekInto([]byte(c), nil, nil, nil)
		wantMethods, wantCalls := peekReference([]byte(c))
		if !slices.Equal(methods, wantMethods) || !slices.Equal(calls, wantCalls) {
			t.Errorf("peek(%q) = %q, %q; encoding/json reads %q, %q", c, methods, calls, wantMethods, wantCalls)
		}
	}
}

// FuzzPeekJSONRPC: on any body the peek answers as encoding/json does, or nothing (the strict
// answer: a token is required and the middleware alone judges the call).
func FuzzPeekJSONRPC(f *testing.F) {
	for _, c := range peekCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkPeek(t, body) })
}

func checkPeek(t *testing.T, body []byte) {
	t.Helper()
	methods, calls := peekInto(body, nil, nil, nil)
	wantMethods, wantCalls := peekReference(body)
	if methods == nil && calls == nil { // nothing: always the strict answer
		return
	}
	if !slices.Equal(methods, wantMethods) || !slices.Equal(calls, wantCalls) {
		t.Fatalf("peek(%q) = %q, %q; encoding/json reads %q, %q", body, methods, calls, wantMethods, wantCalls)
	}
}

// BenchmarkPeek: the guard's look at a tools/call body, the body every guarded call sends.
func BenchmarkPeek(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"projects_list","arguments":{}}}`)
	known := map[string]string{"projects_list": "projects_list", "tools/call": "tools/call"}
	var methods, calls [1]string
	for b.Loop() {
		if _, c := peekInto(body, known, methods[:0], calls[:0]); len(c) != 1 {
			b.Fatal("no call")
		}
	}
}
