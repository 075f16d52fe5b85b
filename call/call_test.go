package call_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/bduf/mcpauth/call"
)

const secret = "eyJhbGciOiJFUzI1NiJ9.the-bearer-token"

// The bearer is a secret: however a Request is printed, logged or marshalled, it stays out.
func TestShouldNeverShowTheBearer(t *testing.T) {
	r := &call.Request{Transport: call.HTTP, ClientAddr: netip.MustParseAddr("203.0.113.7"), RequestID: "req-1", Bearer: secret}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("call", "request", r, "by_value", *r)
	j, _ := json.Marshal(r)
	for what, out := range map[string]string{
		"%v": fmt.Sprintf("%v", r), "%+v": fmt.Sprintf("%+v", r), "%+v of the value": fmt.Sprintf("%+v", *r),
		"String": r.String(), "slog": logged.String(), "json": string(j),
	} {
		if strings.Contains(out, "the-bearer-token") {
			t.Errorf("%s shows the bearer: %s", what, out)
		}
		if what != "json" && !strings.Contains(out, "203.0.113.7") {
			t.Errorf("%s leaves out the client address: %s", what, out)
		}
	}
}

func TestShouldReadTheTransportsRequestFromTheContext(t *testing.T) {
	ctx := context.Background()
	if call.From(ctx) != nil || call.ClientAddr(ctx).IsValid() || call.From(ctx).Addr() != "local" {
		t.Fatal("a context without a request: want nil, no address, and \"local\"")
	}
	r := &call.Request{Transport: call.Stdio, BindSession: true}
	ctx = call.With(ctx, r)
	if call.From(ctx) != r || r.Addr() != "local" {
		t.Fatalf("stdio: From = %v, Addr = %q", call.From(ctx), r.Addr())
	}
	ip := netip.MustParseAddr("2001:db8::1")
	ctx = call.With(context.Background(), &call.Request{Transport: call.HTTP, ClientAddr: ip})
	if call.ClientAddr(ctx) != ip || call.From(ctx).Addr() != "2001:db8::1" {
		t.Fatalf("http: ClientAddr = %v, Addr = %q", call.ClientAddr(ctx), call.From(ctx).Addr())
	}
}

func TestShouldReadTheRequestOfANodeAndTheParentsOtherValues(t *testing.T) {
	type other struct{}
	parent := context.WithValue(call.With(context.Background(), &call.Request{Transport: call.Stdio}), other{}, "kept")
	n := &call.Node{Context: parent, Request: call.Request{Transport: call.HTTP, ClientAddr: netip.MustParseAddr("192.0.2.1")}}
	var ctx context.Context = n
	if r := call.From(ctx); r != &n.Request || r.Transport != call.HTTP || call.ClientAddr(ctx) != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("From(node) = %v, want the node's own request", r)
	}
	if got := ctx.Value(other{}); got != "kept" {
		t.Fatalf("a parent's other value through the node = %v, want kept", got)
	}
}
