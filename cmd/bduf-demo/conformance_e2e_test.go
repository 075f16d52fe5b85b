package main

// The official MCP conformance suite (npm @modelcontextprotocol/conformance, pinned in
// testdata/clients) against the real bduf-demo over streamable HTTP, without a token: every
// scenario that applies to a guarded server must pass, at each wire revision it exists for.
// README's "Conformance" section lists the scenarios that do not apply and why.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/bduf/mcpauth/internal/mcptest"
)

// conformanceRun is one scenario of the suite at one wire revision (--spec-version), with the
// checks inside it that do not apply to a guarded server (check id -> why).
type conformanceRun struct {
	scenario      string
	wire          string
	notApplicable map[string]string
}

const (
	wire20251125 = "2025-11-25"
	wire20260728 = "2026-07-28" // the stateless revision (server/discover, per-request _meta)
)

// The suite's diagnostic tools that a few checks of server-stateless call; a guarded server
// has none of them.
var statelessNotApplicable = map[string]string{
	"sep-2575-server-rejects-undeclared-capability":          "calls the suite's diagnostic tool test_missing_capability",
	"sep-2575-missing-capability-http-400":                   "calls the suite's diagnostic tool test_missing_capability",
	"sep-2575-http-server-no-independent-requests-on-stream": "calls the suite's diagnostic tool test_streaming_elicitation (elicitation)",
	"sep-2575-server-no-log-without-loglevel":                "calls the suite's diagnostic tool test_logging_tool (logging)",
}

// No prompts and no resources: the caching hints of their lists cannot be checked.
var cachingNotApplicable = map[string]string{
	"sep-2549-prompts-list-caching-hints":             "the server has no prompts",
	"sep-2549-resources-list-caching-hints":           "the server has no resources",
	"sep-2549-resources-templates-list-caching-hints": "the server has no resources",
}

var conformanceRuns = []conformanceRun{
	{scenario: "server-initialize", wire: wire20251125},
	{scenario: "ping", wire: wire20251125},
	{scenario: "tools-list", wire: wire20251125},
	{scenario: "server-session-lifecycle", wire: wire20251125},
	{scenario: "server-sse-multiple-streams", wire: wire20251125},
	{scenario: "dns-rebinding-protection", wire: wire20251125},
	{scenario: "server-stateless", wire: wire20260728, notApplicable: statelessNotApplicable},
	{scenario: "tools-list", wire: wire20260728},
	{scenario: "server-sse-multiple-streams", wire: wire20260728},
	{scenario: "dns-rebinding-protection", wire: wire20260728},
	{scenario: "http-header-validation", wire: wire20260728},
	{scenario: "caching", wire: wire20260728, notApplicable: cachingNotApplicable},
}

// conformanceNotApplicable are the suite's server scenarios that need what a guarded auth
// server does not have (README, Conformance, says the same).
var conformanceNotApplicable = map[string]string{
	"logging-set-level":                             "no logging capability",
	"completion-complete":                           "no completions",
	"tools-call-simple-text":                        "calls the suite's own test tool",
	"tools-call-image":                              "calls the suite's own test tool",
	"tools-call-audio":                              "calls the suite's own test tool",
	"tools-call-embedded-resource":                  "calls the suite's own test tool",
	"tools-call-mixed-content":                      "calls the suite's own test tool",
	"tools-call-with-logging":                       "calls the suite's own test tool",
	"tools-call-error":                              "calls the suite's own test tool",
	"tools-call-with-progress":                      "calls the suite's own test tool",
	"tools-call-sampling":                           "calls the suite's own test tool (sampling)",
	"tools-call-elicitation":                        "calls the suite's own test tool (elicitation)",
	"json-schema-2020-12":                           "looks for the suite's own test tool and its schema",
	"elicitation-sep1034-defaults":                  "elicitation",
	"elicitation-sep1330-enums":                     "elicitation",
	"server-sse-polling":                            "calls the suite's own test tool test_reconnection",
	"resources-list":                                "no resources",
	"resources-read-text":                           "no resources",
	"resources-read-binary":                         "no resources",
	"resources-templates-read":                      "no resources",
	"resources-subscribe":                           "no resources",
	"resources-unsubscribe":                         "no resources",
	"sep-2164-resource-not-found":                   "no resources",
	"prompts-list":                                  "no prompts",
	"prompts-get-simple":                            "no prompts",
	"prompts-get-with-args":                         "no prompts",
	"prompts-get-embedded-resource":                 "no prompts",
	"prompts-get-with-image":                        "no prompts",
	"http-custom-header-server-validation":          "needs a tool with x-mcp-header annotations",
	"sep-2640-skills-directory":                     "extension (skills), not part of a spec revision",
	"sep-2640-skills-enumeration":                   "extension (skills), not part of a spec revision",
	"sep-2640-skills-manifest":                      "extension (skills), not part of a spec revision",
	"tasks-lifecycle":                               "extension (tasks), not part of a spec revision",
	"tasks-capability-negotiation":                  "extension (tasks), not part of a spec revision",
	"tasks-wire-fields":                             "extension (tasks), not part of a spec revision",
	"tasks-request-state-removal":                   "extension (tasks), not part of a spec revision",
	"tasks-mrtr-input":                              "extension (tasks), not part of a spec revision",
	"tasks-request-headers":                         "extension (tasks), not part of a spec revision",
	"tasks-dispatch-and-envelope":                   "extension (tasks), not part of a spec revision",
	"tasks-status-notifications":                    "extension (tasks), not part of a spec revision",
	"tasks-required-task-error":                     "extension (tasks), not part of a spec revision",
	"tasks-mrtr-composition":                        "extension (tasks), not part of a spec revision",
	"input-required-result-basic-elicitation":       "calls the suite's own test tool (elicitation)",
	"input-required-result-basic-sampling":          "calls the suite's own test tool (sampling)",
	"input-required-result-basic-list-roots":        "calls the suite's own test tool (roots)",
	"input-required-result-request-state":           "calls the suite's own test tool",
	"input-required-result-multiple-input-requests": "calls the suite's own test tool",
	"input-required-result-multi-round":             "calls the suite's own test tool",
	"input-required-result-missing-input-response":  "calls the suite's own test tool",
	"input-required-result-non-tool-request":        "needs prompts or resources that ask for input",
	"input-required-result-result-type":             "calls the suite's own test tool",
	"input-required-result-unsupported-methods":     "calls the suite's own test tool",
	"input-required-result-tampered-state":          "calls the suite's own test tool",
	"input-required-result-capability-check":        "calls the suite's own test tool",
	"input-required-result-ignore-extra-params":     "calls the suite's own test tool",
	"input-required-result-validate-input":          "calls the suite's own test tool",
}

// conformanceCheck is one entry of the suite's checks.json.
type conformanceCheck struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	Status       string          `json:"status"` // SUCCESS, FAILURE, WARNING, INFO, SKIPPED
	ErrorMessage string          `json:"errorMessage"`
	Details      json.RawMessage `json:"details"`
}

// conformanceAnonymousMethods is what the suite (which sends no token) needs to reach without
// one: the setting for it.
const conformanceAnonymousMethods = "initialize,ping,tools/list,server/discover"

func TestShouldPassEveryApplicableConformanceScenario(t *testing.T) {
	nc := mcptest.FindNodeClients(t)
	suite := filepath.Join("node_modules", ".bin", "conformance")
	t.Run("every server scenario of the suite is run or listed as not applicable", func(t *testing.T) {
		t.Parallel()
		r := nc.Run(t, mcptest.BaseEnv(), time.Minute, suite, "list", "--server")
		if r.Err != nil {
			t.Fatalf("conformance list: %v\n%s%s", r.Err, r.Stdout, r.Stderr)
		}
		listed := regexp.MustCompile(`(?m)^\s+- (\S+) \[`).FindAllStringSubmatch(r.Stdout, -1)
		if len(listed) == 0 {
			t.Fatalf("conformance list --server lists no scenario:\n%s", r.Stdout)
		}
		var names []string
		for _, m := range listed {
			name := m[1]
			names = append(names, name)
			run := slices.ContainsFunc(conformanceRuns, func(c conformanceRun) bool { return c.scenario == name })
			if _, na := conformanceNotApplicable[name]; !run && !na {
				t.Errorf("the suite's server scenario %s is neither run nor listed as not applicable (and why) here and in README", name)
			}
		}
		// A renamed scenario would otherwise fail only as "wrote no checks.json".
		for _, c := range conformanceRuns {
			if !slices.Contains(names, c.scenario) {
				t.Errorf("the suite has no server scenario %s (it lists %v)", c.scenario, names)
			}
		}
	})

	in := mcptest.NewInstance(t)
	srv := mcptest.StartHTTP(t, binPath, in.Env("MCPAUTH_ANONYMOUS_METHODS="+conformanceAnonymousMethods), "http")
	url := srv.URL + "/mcp"
	for _, c := range conformanceRuns {
		t.Run(c.scenario+"@"+c.wire, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			r := nc.Run(t, mcptest.BaseEnv(), 2*time.Minute, suite, "server", "--url", url,
				"--scenario", c.scenario, "--spec-version", c.wire, "--timeout", "30000", "-o", out)
			checks := readConformanceChecks(t, out, c.scenario, r)
			t.Logf("%s at %s: %d checks in %s", c.scenario, c.wire, len(checks), r.Took.Round(time.Millisecond))
			passed := 0
			for _, ch := range checks {
				if why, na := c.notApplicable[ch.ID]; na {
					t.Logf("not applicable: %s (%s): %s", ch.ID, ch.Status, why)
					continue
				}
				switch ch.Status {
				case "SUCCESS":
					passed++
				case "FAILURE":
					t.Errorf("%s at %s: check %s FAILED: %s\n  %s\n  details: %.1500s", c.scenario, c.wire, ch.ID, ch.ErrorMessage, ch.Description, ch.Details)
				case "WARNING":
					t.Logf("%s at %s: check %s warns: %s", c.scenario, c.wire, ch.ID, ch.ErrorMessage)
				}
			}
			if passed == 0 && !t.Failed() {
				t.Errorf("%s at %s: no applicable check passed:\n%s", c.scenario, c.wire, r.Stdout)
			}
			if t.Failed() {
				t.Logf("suite output:\n%s%s", r.Stdout, r.Stderr)
			}
		})
	}
}

// readConformanceChecks reads the checks.json the suite wrote for scenario under dir.
func readConformanceChecks(t *testing.T, dir, scenario string, r mcptest.NodeRun) []conformanceCheck {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "server-"+scenario+"-*", "checks.json"))
	if len(files) != 1 {
		t.Fatalf("conformance %s wrote %d checks.json (%v); exit: %v\n%s%s", scenario, len(files), files, r.Err, r.Stdout, r.Stderr)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var checks []conformanceCheck
	if err := json.Unmarshal(b, &checks); err != nil || len(checks) == 0 {
		t.Fatalf("conformance %s: checks.json: %v: %s", scenario, err, b)
	}
	return checks
}
