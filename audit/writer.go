package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Writer defaults.
const (
	DefaultQueueSize    = 10_000
	DefaultBatchSize    = 500
	DefaultFlushEvery   = 50 * time.Millisecond
	DefaultWriteTimeout = 5 * time.Second
)

// Replay backoff while MongoDB is away.
const (
	retryFirst = 50 * time.Millisecond
	retryMax   = time.Second
)

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Instance names this writer's chain. It must be stable across restarts (the writer resumes
	// its chain) and unique among live writers (two live writers with one Instance would claim
	// the same positions: the unique index refuses the second's, which stay in its spill file).
	Instance string
	// SpillDir holds the spill file. Empty means no spill file: while MongoDB is unreachable
	// the writer retries and, once its queue is full, Record blocks (it still never drops).
	SpillDir string
	// QueueSize bounds the queue (default 10,000): Record blocks while it is full.
	QueueSize int
	// BatchSize (default 500) and FlushEvery (default 50 ms): a batch is written when it is full
	// or FlushEvery after its first event, and at once when a RecordDurable caller waits on it
	// and the queue is empty.
	BatchSize  int
	FlushEvery time.Duration
	// WriteTimeout bounds one MongoDB write (default 5 s); past it the batch goes to the spill file.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	// Now stamps events recorded with a zero Time (default time.Now).
	Now func() time.Time
	// Request returns what ctx knows of the call an event is recorded in (mcp.AuditRequest
	// in mcpauth); an event takes the request fields it leaves empty from it. Nil: none.
	Request func(ctx context.Context) Request
}

// Stats is a writer's state, for metrics and readiness.
type Stats struct {
	QueueDepth int   // events waiting in the queue
	SpillBytes int64 // size of the spill file (0 when there is none)
	Spilling   bool  // events are going to (or waiting in) the spill file: MongoDB was unreachable
	Written    int64 // events this writer made durable: in MongoDB, or fsynced to the spill file
	Spilled    int64 // of those, events written to the spill file
	Replayed   int64 // events of the spill file replayed into MongoDB (or found there already)
}

// Writer records events asynchronously in batches into one hash chain, and never drops one: the
// queue is bounded and Record blocks while it is full (back-pressure); a batch MongoDB cannot
// take goes to the spill file, which is replayed, in order, once MongoDB is back. It is safe for
// concurrent use.
type Writer struct {
	store Store
	cfg   WriterConfig
	log   *slog.Logger
	spill *spillFile // nil without SpillDir

	queue     chan item
	mu        sync.RWMutex // Record holds it shared while sending; Close exclusively to close queue
	closed    bool
	stopping  chan struct{} // closed when Close starts: releases blocked Records
	closeOnce sync.Once
	closeErr  error

	ctx    context.Context // ends when Close gives up waiting: pending writes then go to the spill file
	cancel context.CancelFunc
	done   chan struct{} // the batcher has exited

	kick         chan struct{} // wakes the replayer
	replayCancel context.CancelFunc
	replayDone   chan struct{}
	replayOff    int64 // replayer only: how far the spill file is in MongoDB

	head chainHead // batcher only

	written, spilled, replayed atomic.Int64
	mongoDown                  atomic.Bool // for logging the transitions once
}

// item is one queued event; done is set when its recorder waits for it to be durable.
type item struct {
	ev   Event
	done chan error
}

var _ Recorder = (*Writer)(nil)

// NewWriter starts a writer on store. It resumes its chain where it stands: from the store's
// last event of cfg.Instance, or from a spill file left by an earlier run if that goes further
// (the spill file is then replayed first). If MongoDB cannot be reached, it resumes from the
// spill file's last event; with no spill file to resume from, it fails.
func NewWriter(ctx context.Context, store Store, cfg WriterConfig) (*Writer, error) {
	if store == nil {
		return nil, errors.New("audit: writer needs a store")
	}
	if cfg.Instance == "" {
		return nil, errors.New("audit: writer needs an instance id")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = DefaultFlushEvery
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Writer{
		store:    store,
		cfg:      cfg,
		log:      cfg.Logger.With("audit_instance", cfg.Instance),
		queue:    make(chan item, cfg.QueueSize),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
		kick:     make(chan struct{}, 1),
	}
	var spillLast *Event
	if cfg.SpillDir != "" {
		var err error
		w.spill, spillLast, err = openSpill(cfg.SpillDir, cfg.Instance)
		if err != nil {
			return nil, err
		}
	}
	lctx, cancel := context.WithTimeout(ctx, cfg.WriteTimeout)
	last, ok, err := store.Last(lctx, cfg.Instance)
	cancel()
	switch {
	case err != nil && spillLast == nil:
		if w.spill != nil {
			_ = w.spill.close()
		}
		return nil, fmt.Errorf("audit: resume chain %q: %w", cfg.Instance, err)
	case err != nil:
		w.log.Warn("audit: MongoDB unreachable at start; chain resumed from the spill file", "seq", spillLast.Seq, "err", err)
		w.head = chainHead{Seq: spillLast.Seq, Hash: spillLast.Hash}
		w.mongoDown.Store(true)
	default:
		if ok {
			w.head = chainHead{Seq: last.Seq, Hash: last.Hash}
		}
		if spillLast != nil && spillLast.Seq > w.head.Seq {
			w.head = chainHead{Seq: spillLast.Seq, Hash: spillLast.Hash}
		}
	}
	// The chain head, logged at start and at close, is a witness kept outside MongoDB (see doc.go).
	w.log.Info("audit: chain resumed", "seq", w.head.Seq, "hash", w.head.Hash)
	w.ctx, w.cancel = context.WithCancel(context.Background())
	go w.run()
	if w.spill != nil {
		var rctx context.Context
		rctx, w.replayCancel = context.WithCancel(context.Background())
		w.replayDone = make(chan struct{})
		go w.replayLoop(rctx)
		if w.spill.active() {
			w.kickReplay()
		}
	}
	return w, nil
}

// Record queues e. It blocks while the queue is full, until ctx ends (then it returns
// ctx.Err() and e is not recorded); once it returns nil, e will be written. It returns
// ErrClosed once Close has begun.
func (w *Writer) Record(ctx context.Context, e Event) error {
	_, err := w.enqueue(ctx, e, false)
	return err
}

// RecordDurable records e and returns once e is in MongoDB or fsynced to the spill file. If ctx
// ends first it returns ctx.Err() (e, once queued, is still written).
func (w *Writer) RecordDurable(ctx context.Context, e Event) error {
	done, err := w.enqueue(ctx, e, true)
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) enqueue(ctx context.Context, e Event, durable bool) (chan error, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if w.cfg.Request != nil {
		e = Enrich(e, w.cfg.Request(ctx))
	}
	it := item{ev: capEvent(prepare(e, w.cfg.Now))}
	if durable {
		it.done = make(chan error, 1)
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return nil, ErrClosed
	}
	select {
	case w.queue <- it:
		return it.done, nil
	default:
	}
	select {
	case w.queue <- it:
		return it.done, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-w.stopping:
		return nil, ErrClosed
	}
}

// Size caps of an event's strings (see Event): what a client sends (a header, a tool name)
// reaches the trail, and the trail must not hold, or queue, whatever size it is sent.
const (
	MaxFieldLen      = 256  // each request field: ClientAddr, Transport, RequestID, Subject, Actor, OrgID, SessionID
	MaxDetailLen     = 1024 // each string inside Details, at any depth
	TruncationMarker = "…(truncated)"
)

// capEvent cuts e's strings to their caps (MaxFieldLen, MaxDetailLen), each cut string ending
// with TruncationMarker, at a rune boundary (the strings of a prepared event are valid UTF-8,
// so the cut is too). It is applied after prepare, so to every event recorded, before the event
// is hashed. It never modifies the caller's maps or slices (a cut one is copied) and allocates
// nothing for an event that needs no cut.
func capEvent(e Event) Event {
	for _, s := range [...]*string{&e.ClientAddr, &e.Transport, &e.RequestID, &e.Subject, &e.Actor,
		&e.OrgID, &e.SessionID} {
		if len(*s) > MaxFieldLen {
			*s = cutString(*s, MaxFieldLen)
		}
	}
	if d, cut := capDetails(e.Details); cut {
		e.Details = d
	}
	return e
}

// capDetails returns m with its strings cut to MaxDetailLen, and whether any was: a copy of m
// if so, m itself otherwise.
func capDetails(m map[string]any) (map[string]any, bool) {
	var out map[string]any
	for k, v := range m {
		if nv, cut := capDetail(v); cut {
			if out == nil {
				out = maps.Clone(m)
			}
			out[k] = nv
		}
	}
	return out, out != nil
}

// capDetail is capDetails for one value: strings, and maps and lists of them at any depth
// (what normalized details are made of, []string besides).
func capDetail(v any) (any, bool) {
	switch x := v.(type) {
	case string:
		if len(x) > MaxDetailLen {
			return cutString(x, MaxDetailLen), true
		}
	case map[string]any:
		if m, cut := capDetails(x); cut {
			return m, true
		}
	case []any:
		var out []any
		for i, el := range x {
			if nv, cut := capDetail(el); cut {
				if out == nil {
					out = slices.Clone(x)
				}
				out[i] = nv
			}
		}
		if out != nil {
			return out, true
		}
	case []string:
		var out []string
		for i, el := range x {
			if len(el) > MaxDetailLen {
				if out == nil {
					out = slices.Clone(x)
				}
				out[i] = cutString(el, MaxDetailLen)
			}
		}
		if out != nil {
			return out, true
		}
	}
	return v, false
}

// cutString returns s cut to at most limit bytes, TruncationMarker included, at a rune
// boundary.
func cutString(s string, limit int) string {
	n := limit - len(TruncationMarker)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + TruncationMarker
}

// Stats returns the writer's current state.
func (w *Writer) Stats() Stats {
	s := Stats{
		QueueDepth: len(w.queue),
		Written:    w.written.Load(),
		Spilled:    w.spilled.Load(),
		Replayed:   w.replayed.Load(),
	}
	if w.spill != nil {
		s.SpillBytes = w.spill.bytes.Load()
		s.Spilling = s.SpillBytes > 0
	}
	return s
}

// Close stops accepting events, drains the queue into MongoDB (or the spill file) and stops the
// writer's goroutines. If ctx ends first, what is still queued goes to the spill file (without
// waiting on MongoDB) and Close returns ctx's error. A spill file MongoDB could not take yet is
// kept and replayed by the next writer of the same Instance.
func (w *Writer) Close(ctx context.Context) error {
	w.closeOnce.Do(func() { w.closeErr = w.close(ctx) })
	return w.closeErr
}

func (w *Writer) close(ctx context.Context) error {
	close(w.stopping) // releases Records blocked on a full queue, so the lock comes at once
	w.mu.Lock()
	w.closed = true
	close(w.queue)
	w.mu.Unlock()

	var errs []error
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel()
		<-w.done
		errs = append(errs, fmt.Errorf("audit: close: %w", ctx.Err()))
	}
	w.cancel()
	w.log.Info("audit: chain closed", "seq", w.head.Seq, "hash", w.head.Hash) // the batcher has exited
	if w.spill == nil {
		return errors.Join(errs...)
	}
	w.replayCancel()
	<-w.replayDone
	if w.spill.active() && ctx.Err() == nil {
		// One last attempt; whatever MongoDB does not take stays in the file for the next start.
		if err := w.replayOnce(ctx); err != nil {
			w.log.Warn("audit: spill file kept for the next start", "bytes", w.spill.bytes.Load(), "err", err)
		}
	}
	if err := w.spill.close(); err != nil {
		errs = append(errs, fmt.Errorf("audit: close spill file: %w", err))
	}
	return errors.Join(errs...)
}

// run is the batcher: it takes events off the queue in order, links them into the chain and
// writes them a batch at a time. It exits once the queue is closed and drained.
func (w *Writer) run() {
	defer close(w.done)
	batch := make([]item, 0, w.cfg.BatchSize)
	timer := time.NewTimer(w.cfg.FlushEvery)
	timer.Stop()
	for {
		first, ok := <-w.queue
		if !ok {
			return
		}
		batch = append(batch[:0], first)
		waited := first.done != nil
		timer.Reset(w.cfg.FlushEvery)
		open := true
	fill:
		for len(batch) < w.cfg.BatchSize {
			var it item
			select {
			case it, open = <-w.queue:
			default:
				if waited {
					break fill // someone waits for this batch: write what there is
				}
				select {
				case it, open = <-w.queue:
				case <-timer.C:
					break fill
				}
			}
			if !open {
				break
			}
			batch = append(batch, it)
			waited = waited || it.done != nil
		}
		timer.Stop()
		w.flush(batch)
		clear(batch) // drop references to the events
		if !open {
			return
		}
	}
}

// flush links a batch into the chain and makes it durable, then answers its durable waiters.
func (w *Writer) flush(batch []item) {
	events := make([]Event, len(batch))
	ids := newEventIDs(w.head.Seq+1, len(batch))
	for i, it := range batch {
		e := it.ev
		e.ID, e.Instance = ids[i], w.cfg.Instance
		linked, head, err := w.head.link(e)
		if err != nil { // unreachable for prepared events; keep the event all the same
			e.Details = map[string]any{"details_error": "details not serializable as JSON"}
			linked, head, _ = w.head.link(e)
		}
		events[i], w.head = linked, head
	}
	err := w.persist(events)
	if err != nil {
		w.log.Error("audit: events lost: neither MongoDB nor the spill file took them", "events", len(events), "err", err)
		err = fmt.Errorf("audit: event not stored: %w", err)
	}
	for _, it := range batch {
		if it.done != nil {
			it.done <- err
		}
	}
}

// persist writes events to MongoDB or, while the spill file exists or MongoDB fails, to the
// spill file. If neither works it retries (the queue fills and Record blocks) until the writer
// is told to give up by Close's deadline.
func (w *Writer) persist(events []Event) error {
	delay := retryFirst
	for {
		var err error
		if w.spill != nil && w.spill.active() {
			if err = w.toSpill(events); err == nil {
				return nil
			}
		} else {
			if err = w.toMongo(events); err == nil {
				return nil
			}
			if w.mongoDown.CompareAndSwap(false, true) {
				w.log.Warn("audit: MongoDB write failed; events go to the spill file until it is back",
					"spill", w.spill != nil, "err", err)
			}
			if w.spill != nil {
				if err = w.toSpill(events); err == nil {
					return nil
				}
			}
		}
		if w.ctx.Err() != nil {
			return err
		}
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-w.ctx.Done():
			timer.Stop()
		}
		delay = min(2*delay, retryMax)
	}
}

func (w *Writer) toMongo(events []Event) error {
	ctx, cancel := context.WithTimeout(w.ctx, w.cfg.WriteTimeout)
	defer cancel()
	if err := w.store.Append(ctx, events); err != nil {
		return err
	}
	w.written.Add(int64(len(events)))
	if w.mongoDown.CompareAndSwap(true, false) {
		w.log.Info("audit: MongoDB writes resumed")
	}
	return nil
}

func (w *Writer) toSpill(events []Event) error {
	if err := w.spill.append(events); err != nil {
		w.log.Error("audit: cannot write the spill file", "err", err)
		return err
	}
	w.written.Add(int64(len(events)))
	w.spilled.Add(int64(len(events)))
	w.kickReplay()
	return nil
}

func (w *Writer) kickReplay() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// replayLoop replays the spill file into MongoDB whenever there is one, retrying with backoff
// (up to a second) while MongoDB is away.
func (w *Writer) replayLoop(ctx context.Context) {
	defer close(w.replayDone)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		}
		delay := retryFirst
		failing := false
		for w.spill.active() {
			err := w.replayOnce(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			switch {
			case errors.Is(err, ErrChainConflict):
				w.log.Error("audit: spill file conflicts with the stored chain (two writers with one instance id?); kept", "err", err)
			case !failing:
				w.log.Warn("audit: spill file replay failed; retrying", "err", err)
			}
			failing = true
			timer := time.NewTimer(delay)
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return
			}
			delay = min(2*delay, retryMax)
		}
	}
}

// replayOnce replays the spill file to its end and removes it, or fails. Events the store
// already holds (MongoDB took part of a batch before failing, or an earlier replay was cut
// short) are recognized and skipped.
func (w *Writer) replayOnce(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, w.cfg.WriteTimeout)
	stored, ok, err := w.store.Last(lctx, w.cfg.Instance)
	cancel()
	if err != nil {
		return err
	}
	for {
		end := w.spill.end()
		if w.replayOff < end {
			off, err := w.spill.read(w.replayOff, end, w.cfg.BatchSize, func(chunk []Event) error {
				events, err := skipStored(chunk, stored, ok)
				if err != nil {
					return err
				}
				if len(events) > 0 {
					ictx, cancel := context.WithTimeout(ctx, w.cfg.WriteTimeout)
					defer cancel()
					if err := w.store.Append(ictx, events); err != nil {
						return err
					}
				}
				// The whole chunk counts: events found already stored got there from this spill
				// file too (an earlier attempt whose insert MongoDB committed after the write
				// timed out), or from the write that timed out before they were spilled.
				w.replayed.Add(int64(len(chunk)))
				return nil
			})
			w.replayOff = off
			if err != nil {
				return err
			}
		}
		gone, err := w.spill.removeIfReplayed(w.replayOff)
		if gone {
			w.replayOff = 0
			if err != nil {
				w.log.Warn("audit: spill file replayed but not removed", "err", err)
			}
			w.mongoDown.Store(false)
			w.log.Info("audit: spill file replayed into MongoDB", "replayed_total", w.replayed.Load())
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// skipStored drops the events at or before the chain's stored head (MongoDB holds a chain's
// events as one unbroken run, so those are in it), checking that the head is the same event.
func skipStored(events []Event, stored Event, ok bool) ([]Event, error) {
	if !ok {
		return events, nil
	}
	i := 0
	for ; i < len(events) && events[i].Seq <= stored.Seq; i++ {
		if events[i].Seq == stored.Seq && events[i].Hash != stored.Hash {
			return nil, fmt.Errorf("chain %q position %d: %w", stored.Instance, stored.Seq, ErrChainConflict)
		}
	}
	return events[i:], nil
}

// newEventIDs returns the ids of n events at chain positions first, first+1, ...: "evt_", the
// position (16 hex digits), then 64 random bits (hex). The ids of one chain sort in chain
// order, so Query (newest first by time, then id) lists the events of one millisecond in the
// order they were recorded; with random ids their order would be random.
func newEventIDs(first int64, n int) []string {
	b := make([]byte, 8*n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms (Go 1.24+)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_%016x%s", first+int64(i), hex.EncodeToString(b[8*i:8*(i+1)]))
	}
	return ids
}
