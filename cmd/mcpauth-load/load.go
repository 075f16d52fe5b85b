package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// setupParallel bounds the concurrent user creations and logins (each one bcrypt on the server).
const setupParallel = 4

// target is one server under load: its sessions, ready to call.
type target struct {
	mode     string
	srv      *server
	client   *client
	sessions []*session
	check    guardCheck
}

// guardCheck is what the server did with a tools/call that carried no token.
type guardCheck struct {
	Refused bool   `json:"refused"`
	Answer  string `json:"answer"` // "HTTP 401", "tool_error: ...", "HTTP 200 result"
}

// prepare logs the owner in, checks how the server answers an unauthenticated call, creates
// one user per session and opens each session with its own login.
func (t *target) prepare(ctx context.Context, c config) error {
	var err error
	if t.client, err = newClient(t.srv.url, c.Sessions); err != nil {
		return err
	}
	owner, err := t.client.open(ctx)
	if err != nil {
		return fmt.Errorf("owner session: %w", err)
	}
	token, err := login(ctx, owner, t.srv.email, t.srv.password)
	if err != nil {
		return fmt.Errorf("owner login: %w", err)
	}
	owner.setBearer(token)
	if t.check, err = t.probe(ctx, c); err != nil {
		return err
	}

	t.sessions = make([]*session, c.Sessions)
	setupCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, c.Sessions)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(setupParallel, c.Sessions) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < c.Sessions && setupCtx.Err() == nil; i = int(next.Add(1)) - 1 {
				s, err := t.newUserSession(setupCtx, owner, c.Role, i)
				if err != nil {
					errs <- fmt.Errorf("session %d: %w", i, err)
					cancel() // the first error is the one reported; the others stop
					return
				}
				t.sessions[i] = s
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}

// newUserSession creates user i (as the owner) and opens a session logged in as that user.
func (t *target) newUserSession(ctx context.Context, owner *session, role string, i int) (*session, error) {
	email, password := fmt.Sprintf("load-%05d@example.com", i), "load-user-"+randomHex(12)
	if _, err := owner.callTool(ctx, "user_create", map[string]any{"email": email, "password": password, "roles": []string{role}}); err != nil {
		return nil, err
	}
	s, err := t.client.open(ctx)
	if err != nil {
		return nil, err
	}
	token, err := login(ctx, s, email, password)
	if err != nil {
		return nil, err
	}
	s.setBearer(token)
	return s, nil
}

func login(ctx context.Context, s *session, email, password string) (string, error) {
	res, err := s.callTool(ctx, "auth_login", map[string]any{"email": email, "password": password})
	if err != nil {
		return "", err
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(res, &out); err != nil || out.AccessToken == "" {
		return "", fmt.Errorf("auth_login: no access_token in %s", short(res))
	}
	return out.AccessToken, nil
}

// probe calls the tool on a fresh session without any token.
func (t *target) probe(ctx context.Context, c config) (guardCheck, error) {
	s, err := t.client.open(ctx)
	if err != nil {
		return guardCheck{}, fmt.Errorf("unauthenticated session: %w", err)
	}
	var buf bytes.Buffer
	res, err := s.post(ctx, newCallBody(c.Tool, c.Args).with(nil, 1), &buf)
	if err != nil {
		return guardCheck{}, fmt.Errorf("unauthenticated call: %w", err)
	}
	var r reply
	if cerr := check(res, buf.Bytes(), &r); cerr != nil {
		answer := cerr.Error()
		if res.status != http.StatusOK {
			answer = fmt.Sprintf("HTTP %d", res.status)
		}
		return guardCheck{Refused: true, Answer: answer}, nil
	}
	return guardCheck{Refused: false, Answer: "HTTP 200, a result"}, nil
}

// phaseResult is one phase's measurements.
type phaseResult struct {
	Calls    int64
	Errors   int64
	Elapsed  time.Duration
	Hist     *hdrhistogram.Histogram // latency of successful calls, ns
	Failures map[string]int64        // by kind
	Samples  []string                // the first few failures
	CPU      cpuSample               // used during the phase; -1: unknown
}

// Latencies are recorded in nanoseconds from 1 µs to 1 min, to 3 significant digits.
func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(1_000, int64(time.Minute), 3) }

// live is what the progress line shows while a phase runs.
type live struct {
	calls, errors atomic.Int64
}

// worker is one session's loop and what it measured.
type worker struct {
	hist     *hdrhistogram.Histogram
	failures map[string]int64
	samples  []string
}

const maxSamples = 5

// runPhase loads the server with every session for d. Latencies and failures are kept only
// when record is set (a warm-up discards them).
func (t *target) runPhase(ctx context.Context, c config, d time.Duration, prog *progress, label string, record bool) phaseResult {
	body := newCallBody(c.Tool, c.Args)
	var interval time.Duration // per session, open loop
	if c.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(t.sessions)) / c.Rate)
	}
	var lv live
	workers := make([]*worker, len(t.sessions))
	cpu0 := cpuTimes(t.srv)
	start := time.Now()
	end := start.Add(d)
	stopProgress := prog.start(label, start, d, &lv)
	var wg sync.WaitGroup
	for i, s := range t.sessions {
		w := &worker{hist: newHistogram(), failures: map[string]int64{}}
		workers[i] = w
		// open loop: the sessions' schedules are spread evenly over one interval
		offset := time.Duration(int64(interval) * int64(i) / int64(len(t.sessions)))
		wg.Go(func() { w.loop(ctx, s, body, start.Add(offset), end, interval, &lv) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTimes(t.srv).since(cpu0)
	stopProgress()

	res := phaseResult{Calls: lv.calls.Load(), Errors: lv.errors.Load(), Elapsed: elapsed, Hist: newHistogram(),
		Failures: map[string]int64{}, CPU: cpu}
	if !record {
		return res
	}
	for _, w := range workers {
		res.Hist.Merge(w.hist)
		for k, n := range w.failures {
			res.Failures[k] += n
		}
		for _, s := range w.samples {
			if len(res.Samples) < maxSamples {
				res.Samples = append(res.Samples, s)
			}
		}
	}
	return res
}

// cpuTimes are the server's, this process's and the whole machine's CPU time so far (-1 when
// unknown).
type cpuSample struct{ server, client, machine time.Duration }

func cpuTimes(s *server) cpuSample {
	var c cpuSample
	var err error
	if c.server, err = processCPU(s.cmd.Process.Pid); err != nil {
		c.server = -1
	}
	if c.client, err = selfCPU(); err != nil {
		c.client = -1
	}
	if c.machine, err = machineBusy(); err != nil {
		c.machine = -1
	}
	return c
}

// since is the CPU used from b to a (-1 where unknown).
func (a cpuSample) since(b cpuSample) cpuSample {
	d := func(x, y time.Duration) time.Duration {
		if x < 0 || y < 0 {
			return -1
		}
		return x - y
	}
	return cpuSample{server: d(a.server, b.server), client: d(a.client, b.client), machine: d(a.machine, b.machine)}
}

// loop calls the tool until end. Closed loop (interval 0): the next call goes as soon as the
// last one is answered, and latency is the call's own. Open loop: call k is due at
// first+k*interval, and latency counts from when it was due, so a server that falls behind
// is charged for the calls it delayed (no coordinated omission).
func (w *worker) loop(ctx context.Context, s *session, body callBody, first, end time.Time, interval time.Duration, lv *live) {
	var (
		buf   bytes.Buffer
		req   []byte
		r     reply
		id    int64
		due   = first
		timer *time.Timer
	)
	if interval > 0 {
		timer = time.NewTimer(time.Hour)
		defer timer.Stop()
	}
	for ctx.Err() == nil {
		now := time.Now()
		sent := now
		if interval > 0 {
			if !due.Before(end) {
				return
			}
			if wait := due.Sub(now); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			sent, due = due, due.Add(interval)
		} else if !now.Before(end) {
			return
		}
		id++
		req = body.with(req, id)
		res, err := s.post(ctx, req, &buf)
		took := time.Since(sent)
		if err != nil && ctx.Err() != nil {
			return // interrupted, not a failure of the server
		}
		var cerr *callError
		if err != nil {
			cerr = &callError{kind: "transport", detail: err.Error()}
		} else {
			cerr = check(res, buf.Bytes(), &r)
		}
		if cerr != nil {
			lv.errors.Add(1)
			w.failures[cerr.kind]++
			if len(w.samples) < maxSamples {
				w.samples = append(w.samples, cerr.Error())
			}
			continue
		}
		lv.calls.Add(1)
		_ = w.hist.RecordValue(took.Nanoseconds()) // beyond a minute: not recorded
	}
}

// profilePhase loads the server for one more phase while taking its CPU profile; the phase is
// not part of the results (the profiler costs a little).
func (t *target) profilePhase(ctx context.Context, c config, prog *progress) (string, error) {
	if err := os.MkdirAll(c.ProfileDir, 0o755); err != nil {
		return "", fmt.Errorf("profile directory: %w", err)
	}
	path, err := filepath.Abs(filepath.Join(c.ProfileDir, t.mode+".cpu.pprof"))
	if err != nil {
		return "", err
	}
	secs := int(math.Ceil(c.Duration.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", t.srv.url, secs), nil)
	if err != nil {
		return "", err
	}
	type fetched struct {
		body []byte
		err  error
	}
	done := make(chan fetched, 1)
	go func() {
		resp, err := (&http.Client{Timeout: time.Duration(secs)*time.Second + time.Minute}).Do(req)
		if err != nil {
			done <- fetched{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, short(b))
		}
		done <- fetched{body: b, err: err}
	}()
	// the profile covers [now, now+secs]; load a little past it
	t.runPhase(ctx, c, time.Duration(secs)*time.Second+500*time.Millisecond, prog, t.mode+" profile", false)
	f := <-done
	if f.err != nil {
		return "", fmt.Errorf("fetch CPU profile: %w", f.err)
	}
	if err := os.WriteFile(path, f.body, 0o644); err != nil {
		return "", fmt.Errorf("write CPU profile: %w", err)
	}
	// And what the server allocated since it started (mostly the load): the guard's cost is
	// largely garbage collection.
	if err := fetchTo(ctx, t.srv.url+"/debug/pprof/allocs", filepath.Join(c.ProfileDir, t.mode+".allocs.pprof")); err != nil {
		return "", fmt.Errorf("fetch allocation profile: %w", err)
	}
	return path, nil
}

func fetchTo(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, short(b))
	}
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// progress prints a line on stderr each second while a phase runs: over itself on a
// terminal, one per second elsewhere.
type progress struct {
	w   io.Writer
	tty bool
}

func newProgress(w io.Writer, tty bool) *progress { return &progress{w: w, tty: tty} }

// isTerminal reports whether w is a terminal (the progress line then rewrites itself).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// start begins the display of a phase; the returned func ends it with a final line.
func (p *progress) start(label string, start time.Time, d time.Duration, lv *live) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	line := func(now time.Time, lastCalls int64, lastAt time.Time, final bool) int64 {
		calls := lv.calls.Load()
		rate := float64(calls-lastCalls) / max(now.Sub(lastAt).Seconds(), 1e-9)
		if final {
			rate = float64(calls) / max(now.Sub(start).Seconds(), 1e-9)
		}
		text := fmt.Sprintf("%-28s %5.1fs/%-5s calls %10s  %8s calls/s  errors %d",
			label, min(now.Sub(start), d).Seconds(), d, group(calls), group(int64(rate)), lv.errors.Load())
		switch {
		case p.tty && final:
			fmt.Fprintf(p.w, "\r\033[K%s\n", text)
		case p.tty:
			fmt.Fprintf(p.w, "\r\033[K%s", text)
		default:
			fmt.Fprintln(p.w, text)
		}
		return calls
	}
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		lastCalls, lastAt := int64(0), start
		for {
			select {
			case now := <-tick.C:
				lastCalls = line(now, lastCalls, lastAt, false)
				lastAt = now
			case <-stop:
				return
			}
		}
	})
	return func() {
		close(stop)
		wg.Wait()
		line(time.Now(), 0, start, true)
	}
}
