package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

const keyHelp = `Usage: mcpauth key rotate

Makes a new signing key the one that signs access tokens. The previous key keeps verifying for
one access-token lifetime, so no token in flight breaks; servers sharing the store pick the new
key up the first time they see its kid. The rotation is recorded in the audit trail (KEY_ROTATED).
`

// Key runs "mcpauth key rotate".
func Key(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const prog = "mcpauth"
	if len(args) == 0 || args[0] != "rotate" {
		fmt.Fprint(stderr, keyHelp)
		return ExitUsage
	}
	fs := newFlagSet("key rotate")
	vals := registerFlags(fs, storeFlags)
	if code, stop := parseFlags(prog, fs, keyHelp, args[1:], stdout, stderr); stop {
		return code
	}
	a, code := openForCLI(ctx, fs, vals, getenv, stderr)
	if a == nil {
		return code
	}
	defer a.Close()
	kid, err := a.auth.RotateSigningKey(ctx)
	if err != nil {
		return Fail(prog, stderr, err)
	}
	_ = json.NewEncoder(stdout).Encode(map[string]string{"kid": kid})
	return ExitOK
}
