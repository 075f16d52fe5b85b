package mcp

import (
	"bufio"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
)

func TestShouldReadEachHeaderAsHeaderGetDoes(t *testing.T) {
	// A request as a client writes it, names in any case, parsed by net/http itself.
	raw := "POST /mcp HTTP/1.1\r\nHost: x\r\norigin: http://a\r\ncontent-type: application/json\r\n" +
		"AUTHORIZATION: Bearer t\r\nx-request-id: r1\r\nmcp-protocol-version: 2025-06-18\r\nMCP-SESSION-ID: s1\r\n\r\n"
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{headerOrigin, headerContentType, headerAuthorization, headerRequestID,
		headerProtocolVersion, headerSessionID} {
		if c := textproto.CanonicalMIMEHeaderKey(name); c != name {
			t.Errorf("%q is not canonical (%q): header would never find it", name, c)
		}
		if got, want := header(r.Header, name), r.Header.Get(name); got != want || got == "" {
			t.Errorf("header(%q) = %q, want %q (Header.Get)", name, got, want)
		}
	}
	if got := header(r.Header, "Cookie"); got != "" {
		t.Errorf("an absent header reads %q, want empty", got)
	}
}
