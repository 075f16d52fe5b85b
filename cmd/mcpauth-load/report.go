package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The targets for the guarded server on the 2-core machine.
const (
	targetCallsPerSec = 10_000
	targetP99Ms       = 5.0
	targetMaxBelow    = 10.0 // percent below the unguarded server's calls/s
)

// report is the run's result, printed as a table or as JSON.
type report struct {
	Date               string  `json:"date"`
	CPUModel           string  `json:"cpu_model"`
	NumCPU             int     `json:"num_cpu"`
	GoVersion          string  `json:"go_version"`
	ClientGOMAXPROCS   int     `json:"client_gomaxprocs"`
	ServerGOMAXPROCS   string  `json:"server_gomaxprocs"`
	Sessions           int     `json:"sessions"`
	DurationSeconds    float64 `json:"duration_seconds"`
	WarmupSeconds      float64 `json:"warmup_seconds"`
	Rounds             int     `json:"rounds"`
	Tool               string  `json:"tool"`
	Args               string  `json:"args"`
	Role               string  `json:"role"`
	Loop               string  `json:"loop"`                   // "closed" or "open"
	RatePerSec         float64 `json:"rate_per_sec,omitempty"` // open loop: the offered load
	AuditGrantedSample string  `json:"audit_granted_sample"`
	BcryptCost         string  `json:"bcrypt_cost"`

	Guarded    *modeReport `json:"guarded"`
	Unguarded  *modeReport `json:"unguarded"`
	Comparison comparison  `json:"comparison"`
	Targets    []goal      `json:"targets"`
	Notes      []string    `json:"notes,omitempty"`
	Profiles   []string    `json:"profiles,omitempty"`
}

// modeReport is one server's measurements over all rounds.
type modeReport struct {
	Calls                  int64   `json:"calls"`
	Errors                 int64   `json:"errors"`
	Seconds                float64 `json:"seconds"`
	CallsPerSec            float64 `json:"calls_per_sec"`
	MeanMs                 float64 `json:"mean_ms"`
	P50Ms                  float64 `json:"p50_ms"`
	P95Ms                  float64 `json:"p95_ms"`
	P99Ms                  float64 `json:"p99_ms"`
	P999Ms                 float64 `json:"p999_ms"`
	MaxMs                  float64 `json:"max_ms"`
	ServerCPUPercent       float64 `json:"server_cpu_percent,omitempty"` // of one core
	ServerCPUMicrosPerCall float64 `json:"server_cpu_us_per_call,omitempty"`
	ClientCPUPercent       float64 `json:"client_cpu_percent,omitempty"`
	// OtherCPUPercent is what the rest of the machine used meanwhile (the idle server and
	// any other process): a large figure means the measurement competed for the CPUs.
	OtherCPUPercent float64          `json:"other_cpu_percent,omitempty"`
	Failures        map[string]int64 `json:"failures,omitempty"`
	FailureSamples  []string         `json:"failure_samples,omitempty"`
	Rounds          []roundReport    `json:"rounds"`
	// Unauthenticated is how the server answered a tools/call without a token.
	Unauthenticated guardCheck `json:"unauthenticated_call"`

	hist    *hdrhistogram.Histogram
	elapsed time.Duration
	cpu     cpuSample // summed over the phases; -1: unknown
}

type roundReport struct {
	Round       int     `json:"round"`
	Calls       int64   `json:"calls"`
	Errors      int64   `json:"errors"`
	CallsPerSec float64 `json:"calls_per_sec"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
}

// comparison is guarded against unguarded.
type comparison struct {
	CallsPerSecRatio      float64 `json:"calls_per_sec_ratio"`     // guarded / unguarded
	BelowUnguardedPercent float64 `json:"below_unguarded_percent"` // (1 - ratio) * 100
	P50DeltaMs            float64 `json:"p50_delta_ms"`            // guarded - unguarded
	P99DeltaMs            float64 `json:"p99_delta_ms"`
	ServerCPUPerCallRatio float64 `json:"server_cpu_per_call_ratio,omitempty"`
	GuardCostMicros       float64 `json:"guard_cpu_us_per_call,omitempty"` // server CPU per call, guarded - unguarded
}

// goal is one of the targets.
type goal struct {
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	Met  bool   `json:"met"`
}

func newReport(c config, s serverSettings) *report {
	r := &report{
		Date: time.Now().UTC().Format(time.RFC3339), CPUModel: cpuModel(), NumCPU: runtime.NumCPU(), GoVersion: runtime.Version(),
		ClientGOMAXPROCS: runtime.GOMAXPROCS(0), ServerGOMAXPROCS: "Go's default", Sessions: c.Sessions,
		DurationSeconds: c.Duration.Seconds(), WarmupSeconds: c.Warmup.Seconds(), Rounds: c.Rounds,
		Tool: c.Tool, Args: c.Args, Role: c.Role, Loop: "closed", AuditGrantedSample: "1 (server default)", BcryptCost: "10 (server default)",
		Guarded: newModeReport(), Unguarded: newModeReport(),
	}
	if s.gomaxprocs > 0 {
		r.ServerGOMAXPROCS = strconv.Itoa(s.gomaxprocs)
	}
	if c.Rate > 0 {
		r.Loop, r.RatePerSec = "open", c.Rate
	}
	if s.auditSample != "" {
		r.AuditGrantedSample = s.auditSample
	}
	if s.bcryptCost != 0 {
		r.BcryptCost = strconv.Itoa(s.bcryptCost)
		r.Notes = append(r.Notes, fmt.Sprintf("bcrypt cost lowered to %d to create the users faster; logins are not part of the measured calls", s.bcryptCost))
	}
	return r
}

func newModeReport() *modeReport {
	return &modeReport{hist: newHistogram(), Failures: map[string]int64{}}
}

func addCPU(sum *time.Duration, d time.Duration, first bool) {
	switch {
	case first:
		*sum = d
	case *sum < 0 || d < 0:
		*sum = -1
	default:
		*sum += d
	}
}

func (r *report) mode(name string) *modeReport {
	if name == modeGuarded {
		return r.Guarded
	}
	return r.Unguarded
}

// add records one measured phase.
func (r *report) add(mode string, round int, p phaseResult) {
	m := r.mode(mode)
	m.Calls += p.Calls
	m.Errors += p.Errors
	m.elapsed += p.Elapsed
	m.hist.Merge(p.Hist)
	for k, n := range p.Failures {
		m.Failures[k] += n
	}
	for _, s := range p.Samples {
		if len(m.FailureSamples) < maxSamples {
			m.FailureSamples = append(m.FailureSamples, s)
		}
	}
	first := len(m.Rounds) == 0
	addCPU(&m.cpu.server, p.CPU.server, first)
	addCPU(&m.cpu.client, p.CPU.client, first)
	addCPU(&m.cpu.machine, p.CPU.machine, first)
	m.Rounds = append(m.Rounds, roundReport{Round: round, Calls: p.Calls, Errors: p.Errors,
		CallsPerSec: perSec(p.Calls, p.Elapsed), P50Ms: ms(p.Hist.ValueAtQuantile(50)), P99Ms: ms(p.Hist.ValueAtQuantile(99))})
}

func perSec(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// finish computes the summaries, the comparison and the targets.
func (r *report) finish(servers []*target) {
	for _, t := range servers {
		r.mode(t.mode).Unauthenticated = t.check
	}
	for _, m := range []*modeReport{r.Guarded, r.Unguarded} {
		m.Seconds = m.elapsed.Seconds()
		m.CallsPerSec = perSec(m.Calls, m.elapsed)
		m.MeanMs = m.hist.Mean() / 1e6
		m.P50Ms, m.P95Ms, m.P99Ms = ms(m.hist.ValueAtQuantile(50)), ms(m.hist.ValueAtQuantile(95)), ms(m.hist.ValueAtQuantile(99))
		m.P999Ms, m.MaxMs = ms(m.hist.ValueAtQuantile(99.9)), ms(m.hist.Max())
		if m.elapsed <= 0 {
			continue
		}
		if m.cpu.server >= 0 {
			m.ServerCPUPercent = 100 * m.cpu.server.Seconds() / m.Seconds
			if m.Calls > 0 {
				m.ServerCPUMicrosPerCall = float64(m.cpu.server.Microseconds()) / float64(m.Calls)
			}
		}
		if m.cpu.client >= 0 {
			m.ClientCPUPercent = 100 * m.cpu.client.Seconds() / m.Seconds
		}
		if m.cpu.machine >= 0 && m.cpu.server >= 0 && m.cpu.client >= 0 {
			m.OtherCPUPercent = max(0, 100*(m.cpu.machine-m.cpu.server-m.cpu.client).Seconds()/m.Seconds)
		}
	}
	g, u := r.Guarded, r.Unguarded
	if u.CallsPerSec > 0 {
		r.Comparison.CallsPerSecRatio = g.CallsPerSec / u.CallsPerSec
		r.Comparison.BelowUnguardedPercent = math.Round(1000*(1-r.Comparison.CallsPerSecRatio)) / 10 // to 0.1%, never -0
		if r.Comparison.BelowUnguardedPercent == 0 {
			r.Comparison.BelowUnguardedPercent = 0
		}
	}
	r.Comparison.P50DeltaMs, r.Comparison.P99DeltaMs = g.P50Ms-u.P50Ms, g.P99Ms-u.P99Ms
	if g.ServerCPUMicrosPerCall > 0 && u.ServerCPUMicrosPerCall > 0 {
		r.Comparison.ServerCPUPerCallRatio = g.ServerCPUMicrosPerCall / u.ServerCPUMicrosPerCall
		r.Comparison.GuardCostMicros = g.ServerCPUMicrosPerCall - u.ServerCPUMicrosPerCall
	}
	rate := goal{Name: "guarded calls/s", Want: fmt.Sprintf(">= %s", group(targetCallsPerSec)), Got: group(int64(g.CallsPerSec)), Met: g.CallsPerSec >= targetCallsPerSec}
	if r.Loop == "open" { // the offered load, if the server kept up with it (the last answers end a little after it)
		rate.Got += " (offered " + group(int64(r.RatePerSec)) + ")"
		rate.Met = r.RatePerSec >= targetCallsPerSec && g.CallsPerSec >= 0.99*r.RatePerSec
	}
	r.Targets = []goal{
		rate,
		{Name: "guarded p99", Want: fmt.Sprintf("< %g ms", targetP99Ms), Got: fmt.Sprintf("%.2f ms", g.P99Ms), Met: g.Calls > 0 && g.P99Ms < targetP99Ms},
		{Name: "guarded below unguarded", Want: fmt.Sprintf("<= %g%%", targetMaxBelow), Got: fmt.Sprintf("%.1f%%", r.Comparison.BelowUnguardedPercent),
			Met: u.CallsPerSec > 0 && r.Comparison.BelowUnguardedPercent <= targetMaxBelow},
	}
	if r.Loop == "closed" && g.CallsPerSec > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("closed loop: %d sessions always have a call out, so mean latency = sessions / throughput "+
			"(%.2f ms at %s calls/s); p99 < %g ms at %s calls/s needs at most ~%d calls in flight: measure it with --rate",
			r.Sessions, 1000*float64(r.Sessions)/g.CallsPerSec, group(int64(g.CallsPerSec)), targetP99Ms, group(targetCallsPerSec),
			int(targetCallsPerSec*targetP99Ms/1000)))
	}
	if r.Loop == "open" {
		r.Notes = append(r.Notes, "open loop: a server that keeps up answers the offered calls/s, so compare latency and CPU µs/call, not calls/s")
		for _, m := range []struct {
			name string
			m    *modeReport
		}{{modeGuarded, g}, {modeUnguarded, u}} {
			if m.m.CallsPerSec < 0.95*r.RatePerSec {
				r.Notes = append(r.Notes, fmt.Sprintf("the %s server did not keep up with the offered %s calls/s (%s): its latencies include the backlog",
					m.name, group(int64(r.RatePerSec)), group(int64(m.m.CallsPerSec))))
			}
		}
	}
	for _, m := range []struct {
		name string
		m    *modeReport
	}{{modeGuarded, g}, {modeUnguarded, u}} {
		if m.m.OtherCPUPercent > 20 {
			r.Notes = append(r.Notes, fmt.Sprintf("other processes used %.0f%% of a CPU while the %s server was measured: its figures competed for the CPUs (CPU µs/call is the steadier figure)",
				m.m.OtherCPUPercent, m.name))
		}
	}
	r.Notes = append(r.Notes, "client and servers share this machine's CPUs (CPU columns: % of one CPU); both servers get identical requests (each session its own user and bearer token)")
}

// problems are the reasons the run failed: failed calls, or a comparison that is not real.
func (r *report) problems() []string {
	var out []string
	for _, m := range []struct {
		name string
		m    *modeReport
	}{{modeGuarded, r.Guarded}, {modeUnguarded, r.Unguarded}} {
		if m.m.Errors > 0 {
			out = append(out, fmt.Sprintf("%d %s calls failed", m.m.Errors, m.name))
		}
		if m.m.Calls == 0 {
			out = append(out, fmt.Sprintf("the %s server answered no call", m.name))
		}
	}
	if !r.Guarded.Unauthenticated.Refused {
		out = append(out, "the guarded server accepted a call without a token: it is not guarded")
	}
	if r.Unguarded.Unauthenticated.Refused {
		out = append(out, "the unguarded server refused a call without a token ("+r.Unguarded.Unauthenticated.Answer+"): the guard is not off")
	}
	return out
}

// writeTable prints the report for people.
func (r *report) writeTable(w io.Writer) {
	fmt.Fprintf(w, "mcpauth-load: bduf-demo over streamable HTTP, tool %s %s, %d sessions (each its own user and token), role %s\n",
		r.Tool, r.Args, r.Sessions, r.Role)
	loop := "closed loop"
	if r.Loop == "open" {
		loop = fmt.Sprintf("open loop at %s calls/s", group(int64(r.RatePerSec)))
	}
	fmt.Fprintf(w, "date %s, %s, %d CPUs, %s, GOMAXPROCS client %d / servers %s\n",
		r.Date, r.CPUModel, r.NumCPU, r.GoVersion, r.ClientGOMAXPROCS, r.ServerGOMAXPROCS)
	fmt.Fprintf(w, "%s, %d round(s) of %gs per server (after %gs warm-up each), audit granted sample %s, bcrypt cost %s\n\n",
		loop, r.Rounds, r.DurationSeconds, r.WarmupSeconds, r.AuditGrantedSample, r.BcryptCost)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tcalls/s\tp50 ms\tp95 ms\tp99 ms\tp99.9 ms\tmax ms\tcalls\terrors\tserver CPU\tCPU µs/call\tclient CPU\tother CPU\t")
	for _, m := range []struct {
		name string
		m    *modeReport
	}{{modeGuarded, r.Guarded}, {modeUnguarded, r.Unguarded}} {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%d\t%.0f%%\t%.0f\t%.0f%%\t%.0f%%\t\n", m.name, group(int64(m.m.CallsPerSec)),
			m.m.P50Ms, m.m.P95Ms, m.m.P99Ms, m.m.P999Ms, m.m.MaxMs, group(m.m.Calls), m.m.Errors,
			m.m.ServerCPUPercent, m.m.ServerCPUMicrosPerCall, m.m.ClientCPUPercent, m.m.OtherCPUPercent)
	}
	_ = tw.Flush()

	c := r.Comparison
	fmt.Fprintf(w, "\nguarded/unguarded calls/s: %.3f (%.1f%% below)   p50 %+.2f ms   p99 %+.2f ms", c.CallsPerSecRatio, c.BelowUnguardedPercent, c.P50DeltaMs, c.P99DeltaMs)
	if c.ServerCPUPerCallRatio > 0 {
		fmt.Fprintf(w, "   server CPU per call %.2fx (the guard: %+.0f µs)", c.ServerCPUPerCallRatio, c.GuardCostMicros)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "\nper round:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tserver\tcalls/s\tp50 ms\tp99 ms\terrors\t")
	for i := range r.Rounds {
		for _, m := range []struct {
			name string
			m    *modeReport
		}{{modeGuarded, r.Guarded}, {modeUnguarded, r.Unguarded}} {
			if i < len(m.m.Rounds) {
				rr := m.m.Rounds[i]
				fmt.Fprintf(tw, "%d\t%s\t%s\t%.2f\t%.2f\t%d\t\n", rr.Round, m.name, group(int64(rr.CallsPerSec)), rr.P50Ms, rr.P99Ms, rr.Errors)
			}
		}
	}
	_ = tw.Flush()

	fmt.Fprintf(w, "\nguard check, a tools/call without a token: guarded server: %s (%s); unguarded server: %s (%s)\n",
		refusedWord(r.Guarded.Unauthenticated.Refused), r.Guarded.Unauthenticated.Answer,
		refusedWord(r.Unguarded.Unauthenticated.Refused), r.Unguarded.Unauthenticated.Answer)
	for _, m := range []struct {
		name string
		m    *modeReport
	}{{modeGuarded, r.Guarded}, {modeUnguarded, r.Unguarded}} {
		for k, n := range m.m.Failures {
			fmt.Fprintf(w, "%s failures %s: %d\n", m.name, k, n)
		}
		for _, s := range m.m.FailureSamples {
			fmt.Fprintf(w, "  e.g. %s\n", s)
		}
	}

	fmt.Fprintln(w, "\ntargets (guarded server):")
	for _, g := range r.Targets {
		met := "NOT met"
		if g.Met {
			met = "met"
		}
		fmt.Fprintf(w, "  %-24s want %-10s got %-26s %s\n", g.Name, g.Want, g.Got, met)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(w, "CPU profile: %s (go tool pprof -top %s)\n", p, p)
	}
}

func refusedWord(refused bool) string {
	if refused {
		return "refused"
	}
	return "served"
}

// group writes n with thousands separators.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// cpuModel is the CPU's model name (Linux), else the architecture.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
