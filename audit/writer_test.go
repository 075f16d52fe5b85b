package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/bduf/mcpauth/audit"
	"github.com/bduf/mcpauth/internal/embedmongo"
)

func TestShouldWriteEventsRecordedConcurrentlyExactlyOnceInOrder(t *testing.T) {
	const goroutines, each = 8, 250
	s, db := newStore(t)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a"})
	ctx := ctxFor(t)
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				e := audit.Event{Type: audit.AuthzGranted, Subject: fmt.Sprintf("usr_%d", g),
					Details: map[string]any{"g": g, "i": i}}
				if err := w.Record(ctx, e); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("record: %v", err)
	}
	mustOK(t, "close", w.Close(ctx))
	if st := w.Stats(); st.Written != goroutines*each || st.QueueDepth != 0 || st.Spilling {
		t.Fatalf("stats after close = %+v", st)
	}

	events := stored(t, db, "inst-a")
	mustBeOneUnbrokenRun(t, events, goroutines*each)
	next := make([]int, goroutines) // each goroutine's events appear in the order it recorded them
	for _, e := range events {
		g, i := int(e.Details["g"].(float64)), int(e.Details["i"].(float64))
		if i != next[g] {
			t.Fatalf("seq %d holds goroutine %d's event %d, want its event %d", e.Seq, g, i, next[g])
		}
		next[g]++
	}
	mustVerify(t, s, 1, goroutines*each)
}

func TestShouldBlockARecordWhileTheQueueIsFullUntilItsContextEnds(t *testing.T) {
	s, db, proxy := proxiedStore(t)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", QueueSize: 10, BatchSize: 5,
		FlushEvery: time.Millisecond, WriteTimeout: waitFor})
	proxy.Pause() // MongoDB takes nothing: the store blocks

	ctx, cancel := context.WithCancel(ctxFor(t))
	var accepted atomic.Int64
	stopped := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := w.Record(ctx, event(i)); err != nil {
				stopped <- err
				return
			}
			accepted.Add(1)
		}
	}()
	eventually(t, "a full queue", func() bool { return w.Stats().QueueDepth == 10 })
	before := accepted.Load()
	select {
	case err := <-stopped:
		t.Fatalf("record returned %v with the queue full; it must block", err)
	case <-time.After(200 * time.Millisecond):
	}
	if got := accepted.Load(); got != before {
		t.Fatalf("%d events accepted with the queue full", got-before)
	}
	cancel()
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Fatalf("blocked record returned %v, want context.Canceled", err)
	}

	proxy.Resume()
	mustOK(t, "close", w.Close(ctxFor(t)))
	n := accepted.Load()
	if n < 10 {
		t.Fatalf("only %d events accepted", n)
	}
	mustBeOneUnbrokenRun(t, stored(t, db, "inst-a"), int(n))
	mustVerify(t, s, 1, n)
}

// spillPath is where a writer of instance keeps its spill file in dir.
func spillPath(dir, instance string) string { return filepath.Join(dir, audit.SpillFileName(instance)) }

func fileHolds(t *testing.T, path, text string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	mustOK(t, "read spill file", err)
	return bytes.Contains(b, []byte(text))
}

func startFerretDB(t *testing.T, dir string) *embedmongo.Server {
	t.Helper()
	srv, err := embedmongo.Start(dir, quiet)
	mustOK(t, "start FerretDB", err)
	return srv
}

func stopFerretDB(t *testing.T, srv *embedmongo.Server, proxy *tcpProxy) {
	t.Helper()
	proxy.Cut() // FerretDB waits for its connections to close
	ctx, cancel := context.WithTimeout(context.Background(), embedmongo.StopTimeout)
	defer cancel()
	mustOK(t, "stop FerretDB", srv.Stop(ctx))
}

func TestShouldSpillWhileMongoDBIsDownAndReplayEverythingOnceWhenItIsBack(t *testing.T) {
	ctx := ctxFor(t)
	dataDir, spillDir := t.TempDir(), t.TempDir()
	srv := startFerretDB(t, dataDir)
	proxy := newProxy(t, srv.URI())
	db := connect(t, proxy.URI()).Database("audit")
	s, err := audit.NewMongoStore(ctx, db)
	mustOK(t, "new store", err)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", SpillDir: spillDir,
		FlushEvery: 2 * time.Millisecond, WriteTimeout: 3 * time.Second}) // the replay reads the chain head on FerretDB, slow under -race
	record := func(prefix string, n int) {
		for i := range n {
			e := event(i)
			e.RequestID = fmt.Sprintf("%s-%d", prefix, i)
			mustOK(t, "record", w.Record(ctx, e))
		}
	}

	record("before", 100)
	eventually(t, "the first events in MongoDB", func() bool { return w.Stats().Written == 100 })

	stopFerretDB(t, srv, proxy)
	record("down", 150)
	durable := event(0)
	durable.RequestID = "durable-while-down"
	mustOK(t, "record durable", w.RecordDurable(ctx, durable))
	path := spillPath(spillDir, "inst-a")
	if !fileHolds(t, path, "durable-while-down") {
		t.Fatalf("RecordDurable returned before its event was in the spill file")
	}
	if st := w.Stats(); !st.Spilling || st.SpillBytes == 0 || st.Spilled == 0 {
		t.Fatalf("stats while MongoDB is down = %+v, want spilling", st)
	}
	record("still-down", 50)

	srv = startFerretDB(t, dataDir) // the same data, on a new port
	proxy.Restore(srv.URI())
	t.Cleanup(func() { stopFerretDB(t, srv, proxy) })
	eventually(t, "the spill file replayed", func() bool {
		_, err := os.Stat(path)
		return !w.Stats().Spilling && errors.Is(err, os.ErrNotExist)
	})
	record("after", 50)
	mustOK(t, "close", w.Close(ctx))

	const total = 100 + 150 + 1 + 50 + 50
	mustBeOneUnbrokenRun(t, stored(t, db, "inst-a"), total)
	for _, prefix := range []string{"before-99", "down-0", "down-149", "durable-while-down", "still-down-49", "after-49"} {
		if n := countEvents(t, db, bson.D{{Key: "request_id", Value: prefix}}); n != 1 {
			t.Errorf("event %s stored %d times, want once", prefix, n)
		}
	}
	mustVerify(t, s, 1, total)
	if st := w.Stats(); st.Written != total || st.Replayed == 0 || st.SpillBytes != 0 {
		t.Errorf("stats after close = %+v", st)
	}
}

func TestShouldReturnFromRecordDurableOnlyOnceTheEventIsInMongoDB(t *testing.T) {
	s, db := newStore(t)
	// A flush interval far beyond the test: only the waiting recorder makes the batch go.
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", FlushEvery: time.Hour, BatchSize: 1000})
	ctx := ctxFor(t)
	for i := range 3 {
		e := event(i)
		e.RequestID = fmt.Sprintf("durable-%d", i)
		mustOK(t, "record durable", w.RecordDurable(ctx, e))
		if n := countEvents(t, db, bson.D{{Key: "request_id", Value: e.RequestID}}); n != 1 {
			t.Fatalf("after RecordDurable the event is stored %d times, want once", n)
		}
	}
}

func TestShouldDrainTheQueueOnClose(t *testing.T) {
	s, db := newStore(t)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", FlushEvery: time.Hour, BatchSize: 5000, QueueSize: 5000})
	ctx := ctxFor(t)
	// A queue of some size, small enough for the embedded store under -race beside the other
	// packages' tests (1,000 took 7 s alone and over the 30 s bound in the full suite).
	const queued = 300
	for i := range queued {
		mustOK(t, "record", w.Record(ctx, event(i)))
	}
	if n := countEvents(t, db, bson.D{}); n != 0 {
		t.Fatalf("%d events written before close; the test needs them queued", n)
	}
	mustOK(t, "close", w.Close(ctx))
	mustBeOneUnbrokenRun(t, stored(t, db, "inst-a"), queued)
	if st := w.Stats(); st.Written != queued || st.QueueDepth != 0 {
		t.Fatalf("stats after close = %+v", st)
	}
	if err := w.Record(ctx, event(0)); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("record after close = %v, want ErrClosed", err)
	}
	if err := w.RecordDurable(ctx, event(0)); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("record durable after close = %v, want ErrClosed", err)
	}
	mustOK(t, "second close", w.Close(ctx))
}

func TestShouldContinueTheChainWhenRestartedOnTheSameStore(t *testing.T) {
	s, db := newStore(t)
	writeChain(t, s, "inst-a", 10)
	writeChain(t, s, "inst-a", 10)
	events := stored(t, db, "inst-a")
	mustBeOneUnbrokenRun(t, events, 20)
	if events[10].PrevHash != events[9].Hash {
		t.Fatalf("the restarted writer's first event does not link to the last stored one")
	}
	mustVerify(t, s, 1, 20)
}

func TestShouldResumeFromTheSpillFileWhenMongoDBIsDownAtStart(t *testing.T) {
	s, db, proxy := proxiedStore(t)
	spillDir := t.TempDir()
	cfg := audit.WriterConfig{Instance: "inst-a", SpillDir: spillDir, FlushEvery: time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, Logger: quiet}
	ctx := ctxFor(t)

	first := newWriter(t, s, cfg)
	for i := range 10 {
		mustOK(t, "record", first.Record(ctx, event(i)))
	}
	eventually(t, "the first events in MongoDB", func() bool { return first.Stats().Written == 10 })
	proxy.Cut()
	for i := range 5 {
		mustOK(t, "record durable", first.RecordDurable(ctx, event(i)))
	}
	mustOK(t, "close", first.Close(ctx))
	if _, err := os.Stat(spillPath(spillDir, "inst-a")); err != nil {
		t.Fatalf("the spill file must outlive a writer closed while MongoDB is down: %v", err)
	}

	second, err := audit.NewWriter(ctx, s, cfg)
	mustOK(t, "new writer while MongoDB is down", err)
	t.Cleanup(func() { _ = second.Close(context.Background()) })
	for i := range 5 {
		mustOK(t, "record", second.Record(ctx, event(i)))
	}
	eventually(t, "the new events spilled", func() bool { return second.Stats().Spilled == 5 })

	proxy.Restore("")
	eventually(t, "the spill file replayed", func() bool { return !second.Stats().Spilling })
	mustOK(t, "close", second.Close(ctx))
	mustBeOneUnbrokenRun(t, stored(t, db, "inst-a"), 20)
	mustVerify(t, s, 1, 20)
}

func TestShouldRefuseToStartWhenMongoDBIsDownAndNoSpillFileTellsWhereTheChainStands(t *testing.T) {
	s, _, proxy := proxiedStore(t)
	proxy.Cut()
	for _, spillDir := range []string{"", t.TempDir()} {
		w, err := audit.NewWriter(ctxFor(t), s, audit.WriterConfig{Instance: "inst-a", SpillDir: spillDir,
			WriteTimeout: 300 * time.Millisecond, Logger: quiet})
		if err == nil {
			_ = w.Close(context.Background())
			t.Fatalf("writer started (spill dir %q) without knowing where its chain stands", spillDir)
		}
	}
}

func TestShouldRejectAWriterWithoutAnInstance(t *testing.T) {
	s, _ := newStore(t)
	if _, err := audit.NewWriter(ctxFor(t), s, audit.WriterConfig{}); err == nil {
		t.Fatal("writer started without an instance id")
	}
}

func TestShouldRefuseToStartAWriterThatCouldNotKeepItsEvents(t *testing.T) {
	s, _ := newStore(t)
	notADir := filepath.Join(t.TempDir(), "file")
	mustOK(t, "write file", os.WriteFile(notADir, []byte("x"), 0o600))
	tests := []struct {
		name  string
		store audit.Store
		cfg   audit.WriterConfig
	}{
		{"no store", nil, audit.WriterConfig{Instance: "inst-a"}},
		{"a spill dir that cannot be made", s, audit.WriterConfig{Instance: "inst-a", SpillDir: filepath.Join(notADir, "spill")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if w, err := audit.NewWriter(ctxFor(t), tc.store, tc.cfg); err == nil {
				_ = w.Close(ctxFor(t))
				t.Fatal("the writer started")
			}
		})
	}
}

func TestShouldNotRecordAnEventWhoseContextHasEnded(t *testing.T) {
	s, db := newStore(t)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a"})
	ctx, cancel := context.WithCancel(ctxFor(t))
	cancel()
	for name, record := range map[string]func(context.Context, audit.Event) error{"Record": w.Record, "RecordDurable": w.RecordDurable} {
		if err := record(ctx, event(1)); !errors.Is(err, context.Canceled) {
			t.Fatalf("%s with an ended context = %v, want context.Canceled", name, err)
		}
	}
	mustOK(t, "close", w.Close(ctxFor(t)))
	if n := countEvents(t, db, bson.D{}); n != 0 {
		t.Fatalf("%d events stored, want none: a caller told no is not recorded", n)
	}
}

func TestShouldKeepAnEventWhoseDetailsAreNotJSONAndSayWhy(t *testing.T) {
	s, db := newStore(t)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a"})
	e := event(1)
	e.Details = map[string]any{"callback": func() {}}
	mustOK(t, "record durable", w.RecordDurable(ctxFor(t), e))
	mustOK(t, "close", w.Close(ctxFor(t)))
	got := stored(t, db, "inst-a")
	if len(got) != 1 || got[0].Details["details_error"] != "details not serializable as JSON" || got[0].Details["callback"] != nil {
		t.Fatalf("stored %+v, want the event kept with details_error in place of its details", got)
	}
	mustVerify(t, s, 1, 1)
}

// redacting stands for a secret type that redacts itself when marshalled (auth.Secret does).
type redacting string

func (redacting) MarshalText() ([]byte, error) { return []byte("[REDACTED]"), nil }

func TestShouldStoreDetailsInTheirJSONFormSoSecretsStayRedacted(t *testing.T) {
	s, db := newStore(t)
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a"})
	e := event(1)
	e.Details = map[string]any{"password": redacting("hunter2-secret"), "nested": map[string]any{"token": redacting("tok-secret")}}
	mustOK(t, "record durable", w.RecordDurable(ctxFor(t), e))
	var raw bson.M
	mustOK(t, "read", db.Collection("audit_events").FindOne(ctxFor(t), bson.D{}).Decode(&raw))
	if text := fmt.Sprint(raw); bytes.Contains([]byte(text), []byte("secret")) {
		t.Fatalf("a secret reached the stored event: %s", text)
	}
	mustOK(t, "close", w.Close(ctxFor(t)))
	mustVerify(t, s, 1, 1)
}

// writerGoroutines counts the goroutines running the writer's code.
func writerGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "mcpauth/audit.(*Writer)") {
			count++
		}
	}
	return count
}

func TestShouldSpillWhatIsQueuedWhenCloseRunsOutOfTimeAndReplayItAtTheNextStart(t *testing.T) {
	s, db, proxy := proxiedStore(t)
	cfg := audit.WriterConfig{Instance: "inst-a", SpillDir: t.TempDir(), FlushEvery: time.Millisecond,
		WriteTimeout: waitFor, Logger: quiet}
	first := newWriter(t, s, cfg)
	proxy.Pause() // MongoDB hangs: writes neither succeed nor fail
	for i := range 20 {
		mustOK(t, "record", first.Record(ctxFor(t), event(i)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := first.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close past its deadline = %v, want DeadlineExceeded", err)
	}
	if st := first.Stats(); st.Written != 20 || st.Spilled != 20 || !st.Spilling {
		t.Fatalf("stats after an overdue close = %+v, want all 20 spilled", st)
	}
	eventually(t, "no writer goroutine left", func() bool { return writerGoroutines() == 0 })

	proxy.Resume()
	second := newWriter(t, s, cfg)
	eventually(t, "the spill file replayed", func() bool { return !second.Stats().Spilling })
	mustOK(t, "record", second.Record(ctxFor(t), event(21)))
	mustOK(t, "close", second.Close(ctxFor(t)))
	mustBeOneUnbrokenRun(t, stored(t, db, "inst-a"), 21)
	mustVerify(t, s, 1, 21)
}

func TestShouldLeaveNoGoroutineBehindAfterClose(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) (*audit.Writer, *tcpProxy)
	}{
		{"a writer without a spill file", func(t *testing.T) (*audit.Writer, *tcpProxy) {
			s, _ := newStore(t)
			return newWriter(t, s, audit.WriterConfig{Instance: "inst-a"}), nil
		}},
		{"a writer spilling while MongoDB is down", func(t *testing.T) (*audit.Writer, *tcpProxy) {
			s, _, proxy := proxiedStore(t)
			w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", SpillDir: t.TempDir(),
				WriteTimeout: 300 * time.Millisecond})
			proxy.Cut()
			return w, proxy
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := tc.setup(t)
			ctx := ctxFor(t)
			for i := range 50 {
				mustOK(t, "record", w.Record(ctx, event(i)))
			}
			mustOK(t, "record durable", w.RecordDurable(ctx, event(50)))
			if n := writerGoroutines(); n == 0 {
				t.Fatal("no writer goroutine found while running: the probe is broken")
			}
			mustOK(t, "close", w.Close(ctx))
			// (Close returns once they are done; their last instructions may still be running.)
			eventually(t, "no writer goroutine left", func() bool { return writerGoroutines() == 0 })
		})
	}
}

func TestShouldNeverLetTwoWritersWithOneInstanceOverwriteEachOther(t *testing.T) {
	s, db := newStore(t)
	ctx := ctxFor(t)
	first := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", SpillDir: t.TempDir()})
	secondDir := t.TempDir()
	second := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", SpillDir: secondDir}) // misconfigured twin

	a := event(1)
	a.RequestID = "from-the-first"
	mustOK(t, "record durable", first.RecordDurable(ctx, a))
	b := event(2)
	b.RequestID = "from-the-twin"
	mustOK(t, "record durable (kept in the spill file)", second.RecordDurable(ctx, b))

	if n := countEvents(t, db, bson.D{{Key: "request_id", Value: "from-the-twin"}}); n != 0 {
		t.Fatalf("the twin's event took the first writer's position (%d stored)", n)
	}
	if st := second.Stats(); !st.Spilling || !fileHolds(t, spillPath(secondDir, "inst-a"), "from-the-twin") {
		t.Fatalf("the twin's event is not kept in its spill file (stats %+v)", st)
	}
	mustOK(t, "close", first.Close(ctx))
	mustOK(t, "close twin", second.Close(ctx))
	if !fileHolds(t, spillPath(secondDir, "inst-a"), "from-the-twin") {
		t.Fatal("the twin's spill file was dropped at close")
	}
	mustVerify(t, s, 1, 1)
}

// The writer fills what an event leaves empty from the request in its context, and severity
// Info: recorders set only what is theirs to say, and what they set stands.
func TestShouldFillAnEventsRequestFieldsFromItsContext(t *testing.T) {
	s, db := newStore(t)
	type requestKey struct{}
	w := newWriter(t, s, audit.WriterConfig{Instance: "inst-a", Request: func(ctx context.Context) audit.Request {
		r, _ := ctx.Value(requestKey{}).(audit.Request)
		return r
	}})
	ctx := context.WithValue(ctxFor(t), requestKey{}, audit.Request{ClientAddr: "203.0.113.7", Transport: "http",
		RequestID: "req-1", Actor: "usr_actor", SessionID: "ses_1"})
	mustOK(t, "record", w.RecordDurable(ctx, audit.Event{Type: audit.AuthSuccess, Subject: "usr_1"}))
	mustOK(t, "record", w.RecordDurable(ctx, audit.Event{Type: audit.AuthFailed, Severity: audit.Warning, Subject: "usr_2",
		ClientAddr: "198.51.100.1", Actor: "usr_other"}))
	got := stored(t, db, "inst-a")
	if len(got) != 2 {
		t.Fatalf("%d events stored, want 2", len(got))
	}
	if e := got[0]; e.ClientAddr != "203.0.113.7" || e.Transport != "http" || e.RequestID != "req-1" || e.Actor != "usr_actor" ||
		e.SessionID != "ses_1" || e.Severity != audit.Info {
		t.Errorf("an event without request fields: %+v, want them from the context and severity info", e)
	}
	if e := got[1]; e.ClientAddr != "198.51.100.1" || e.Actor != "usr_other" || e.Severity != audit.Warning || e.RequestID != "req-1" {
		t.Errorf("an event with its own fields: %+v, want its own kept and the rest filled", e)
	}
}
