package mcp

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
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
	`{"method":"tools/call","paramſ":{"name":"a"}}`, `{"method":"tools/call","params":{"nameſ":"a","Name":"b"}}`,
	// ASCII names as long as ours in another case match; of another length never.
	`{"METHOD":"ping"}`, `{"methods":"ping","metho":"x","Method":"tools/list"}`,
	`{"method":"tools/call","PARAMS":{"NAME":"a","names":"b","nam":"c"}}`,
	// The scanner's grammar: numbers, literals, whitespace, separators, nesting.
	`{"id":-0.5e+10,"method":"ping"}`, `{"id":0,"method":"ping"}`, `{"id":1E-2,"method":"ping"}`,
	`{"id":01,"method":"ping"}`, `{"id":1.,"method":"ping"}`, `{"id":-,"method":"ping"}`, `{"id":1e,"method":"ping"}`,
	`{"id":.5,"method":"ping"}`, `{"id":+1,"method":"ping"}`, `{"a":tru,"method":"ping"}`, `{"a":nul}`,
	`{"a":[true,false,null,"x",{"b":[]}],"method":"ping"}`, `{"a":[1,2,],"method":"ping"}`, `{"a":[1 2],"method":"ping"}`,
	"\t{ \"method\" :\r\n\"ping\" , \"params\" : { } }\n", `{"method":"ping"}x`, `{"method":"ping"`,
	`{"method" "ping"}`, `{"method":"ping",,"a":1}`, `{,"method":"ping"}`, `[,{"method":"ping"}]`, `[{"method":"ping"} {"method":"ping"}]`,
	`{"method":"pi\"ng"}`, `{"method":"ping","a":"x\\"}`, "{\"method\":\"ping\",\"a\":\"\x01\"}", `{"method":"tools/call","params":{"name":"a","arguments":{"k":[{"z":1e5}]}}}`,
	`{"method":"ping","a":` + strings.Repeat(`[`, 20) + strings.Repeat(`]`, 20) + `}`,
	`{"method":"ping","a":` + strings.Repeat(`{"b":`, 15) + `1` + strings.Repeat(`}`, 15) + `}`,
	`{"method":"tools/call","params":{"name":"a"},"params":{"arguments":{}}}`, `{"params":{"name":"a"},"method":"tools/call"}`,
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

// peekEach is what the scanner and the decoder each answer for body (ok: it read the body).
func peekEach(body []byte) (scan, decode peekAnswer) {
	p := peekers.Get().(*peeker)
	defer p.release()
	p.known = methodNames
	scan.methods, scan.calls, scan.ok = peek(p.scanner(body), nil, nil)
	decode.methods, decode.calls, decode.ok = peek(p.decoder(body), nil, nil)
	return scan, decode
}

type peekAnswer struct {
	methods, calls []string
	ok             bool
}

func (a peekAnswer) equal(b peekAnswer) bool {
	return a.ok == b.ok && slices.Equal(a.methods, b.methods) && slices.Equal(a.calls, b.calls)
}

// FuzzPeekScanAsDecoder: wherever the scanner reads a body, it is JSON and the decoder reads it
// too, the same way (the scanner's grammar is JSON's, its reading the peek's).
func FuzzPeekScanAsDecoder(f *testing.F) {
	for _, c := range peekCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		scan, decode := peekEach(body)
		if scan.ok && !json.Valid(body) {
			t.Fatalf("peek(%q): the scanner reads what is not JSON", body)
		}
		if scan.ok && !scan.equal(decode) {
			t.Fatalf("peek(%q): the scanner reads %+v, the decoder %+v", body, scan, decode)
		}
	})
}

// TestShouldScanTheBodiesSessionsSend: the bodies of the usual messages take the scanner, and
// it reads them as the decoder does; escapes, other bytes and deep nesting take the decoder.
func TestShouldScanTheBodiesSessionsSend(t *testing.T) {
	for _, tc := range []struct {
		body    string
		scanned bool
	}{
		{`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"projects_list","arguments":{"limit":10,"tags":["a","b"],"all":true}}}`, true},
		{`{"jsonrpc":"2.0","id":"x-1","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1.0.0"}}}`, true},
		{`{"jsonrpc":"2.0","method":"notifications/initialized"}`, true},
		{"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},\n null]", true},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"q":"caf\u00e9"}}}`, false},
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{"q":"café"}}}`, false},
		{`{"method":"ping","a":` + strings.Repeat(`[`, 16) + strings.Repeat(`]`, 16) + `}`, false},
		{`{"method":"ping","a":` + strings.Repeat(`[`, 14) + strings.Repeat(`]`, 14) + `}`, true},
		{`{"method":1}`, false},
	} {
		scan, decode := peekEach([]byte(tc.body))
		if scan.ok != tc.scanned {
			t.Errorf("peek(%q): scanned = %v, want %v", tc.body, scan.ok, tc.scanned)
		}
		if scan.ok && !scan.equal(decode) {
			t.Errorf("peek(%q): the scanner reads %+v, the decoder %+v", tc.body, scan, decode)
		}
		if methods, calls := peekInto([]byte(tc.body), nil, nil, nil); !slices.Equal(methods, decode.methods) || !slices.Equal(calls, decode.calls) {
			t.Errorf("peekInto(%q) = %q, %q; the decoder reads %+v", tc.body, methods, calls, decode)
		}
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
