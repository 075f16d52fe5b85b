package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/bduf/mcpauth/audit"
)

const auditHelp = `Usage: mcpauth audit verify [--since T] | tail [--n N] | export [--since T]

Reads the audit trail in the store the server uses (with the embedded store, the server's data
directory: MCPAUTH_DATA_DIR).
  verify   walk every hash chain and report the first broken link (exit 1 if there is one);
           a progress bar on stderr shows the events checked
  tail     the last N events (default 20), oldest first, as JSON lines
  export   every event since T (RFC 3339), newest first, as JSON lines
`

// Audit runs "mcpauth audit ...".
func Audit(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	const prog = "mcpauth"
	if len(args) == 0 || (args[0] != "verify" && args[0] != "tail" && args[0] != "export") {
		fmt.Fprint(stderr, auditHelp)
		return ExitUsage
	}
	fs := newFlagSet("audit " + args[0])
	since := fs.String("since", "", "RFC 3339 time")
	n := fs.Int("n", 20, "tail: how many events")
	vals := registerFlags(fs, storeFlags)
	if code, stop := parseFlags(prog, fs, auditHelp, args[1:], stdout, stderr); stop {
		return code
	}
	c, err := buildConfig(resolve(fs, storeFlags, vals, getenv), getenv)
	if err != nil {
		fmt.Fprintln(stderr, "mcpauth:", err)
		return ExitUsage
	}
	var from time.Time
	if *since != "" {
		if from, err = time.Parse(time.RFC3339, *since); err != nil {
			fmt.Fprintf(stderr, "mcpauth: --since: want an RFC 3339 time, got %q\n", *since)
			return ExitUsage
		}
	}
	if *n < 1 || *n > 10000 {
		fmt.Fprintln(stderr, "mcpauth: --n: want 1 to 10000")
		return ExitUsage
	}
	a := &app{}
	defer a.Close()
	if err := ensureDataDir(c.DataDir); err != nil {
		return Fail(prog, stderr, err)
	}
	db, err := a.connectMongo(ctx, c, newLogger(stderr, "warn"))
	if err != nil {
		return Fail(prog, stderr, err)
	}
	store, err := auditStore(ctx, c, db)
	if err != nil {
		return Fail(prog, stderr, err)
	}
	enc := json.NewEncoder(stdout)
	switch args[0] {
	case "verify":
		// No spinner ticker (interval 0): progressbar's ticker goroutine reads the bar's state
		// without its lock while Set64 writes it, a data race; the bar redraws on each Set64.
		bar := progressbar.NewOptions64(-1, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("verifying"),
			progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetSpinnerChangeInterval(0))
		res, err := store.Verify(ctx, from, func(checked int64) { _ = bar.Set64(checked) })
		_ = bar.Finish()
		if err != nil {
			return Fail(prog, stderr, err)
		}
		_ = enc.Encode(res)
		if !res.OK {
			return Fail(prog, stderr, fmt.Errorf("audit chain broken: %s at %s #%d", res.FirstBad.Problem, res.FirstBad.Instance, res.FirstBad.Seq))
		}
		return ExitOK
	case "tail":
		events, _, err := store.Query(ctx, audit.Query{Limit: *n})
		if err != nil {
			return Fail(prog, stderr, err)
		}
		for i := len(events) - 1; i >= 0; i-- {
			_ = enc.Encode(events[i])
		}
		return ExitOK
	default: // export
		cursor := ""
		for {
			events, next, err := store.Query(ctx, audit.Query{Since: from, Limit: 500, Cursor: cursor})
			if err != nil {
				return Fail(prog, stderr, err)
			}
			for _, e := range events {
				if err := enc.Encode(e); err != nil {
					return Fail(prog, stderr, err)
				}
			}
			if next == "" {
				return ExitOK
			}
			cursor = next
		}
	}
}
