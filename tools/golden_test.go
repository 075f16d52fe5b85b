package tools_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mark3labs/mcp-go/server"

	"github.com/bduf/mcpauth/auth"
	"github.com/bduf/mcpauth/auth/oauth"
	"github.com/bduf/mcpauth/tools"
)

// allTools are every declared tool: a set with single sign-on set up (sso_login is listed only
// then), whose services are never called.
func allTools() []server.ServerTool {
	set := tools.New(nil, nil, nil, nil)
	set.UseSSO(noSSO{})
	return set.Tools()
}

type noSSO struct{}

func (noSSO) Start(string, string) (oauth.DeviceSignIn, error) { return oauth.DeviceSignIn{}, nil }
func (noSSO) Redeem(context.Context, string, string) (auth.Tokens, auth.User, error) {
	return auth.Tokens{}, auth.User{}, oauth.ErrPending
}

var update = flag.Bool("update", false, "rewrite the golden files of the tools package")

// toolsList answers a tools/list through mcp-go's server, as a client sees it, as indented JSON
// with sorted keys (how a schema is represented in Go does not matter, only what is published).
func toolsList(t *testing.T) []byte {
	t.Helper()
	s := server.NewMCPServer("mcpauth", "test", server.WithToolCapabilities(true))
	s.AddTools(allTools()...)
	resp := s.HandleMessage(t.Context(), json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	raw, err := json.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct {
		Result struct {
			Tools []any `json:"tools"`
		} `json:"result"`
		Error any `json:"error"`
	}
	if err := json.Unmarshal(raw, &reply); err != nil || reply.Error != nil {
		t.Fatalf("tools/list: %s (%v)", raw, err)
	}
	out, err := json.MarshalIndent(reply.Result.Tools, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// The published tools (names, descriptions, input schemas, annotations) are the public
// contract: a change to any of them shows here as a diff of testdata/tools_list.golden.json
// (rewrite it with go test ./tools/ -run Golden -update, and explain the diff in the commit).
func TestShouldPublishTheToolsOfTheGoldenFile(t *testing.T) {
	got := toolsList(t)
	path := filepath.Join("testdata", "tools_list.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("tools/list differs from %s (rerun with -update if the change is meant):\n%s", path, lineDiff(want, got))
	}
}

// lineDiff shows where got first departs from want, a few lines of each around it.
func lineDiff(want, got []byte) string {
	w, g := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	n := 0
	for n < len(w) && n < len(g) && bytes.Equal(w[n], g[n]) {
		n++
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "first difference at line %d\n", n+1)
	for _, side := range []struct {
		sign  string
		lines [][]byte
	}{{"-", w}, {"+", g}} {
		for k := max(0, n-3); k < min(len(side.lines), n+8); k++ {
			fmt.Fprintf(&b, "%s%5d %s\n", side.sign, k+1, side.lines[k])
		}
	}
	return b.String()
}
