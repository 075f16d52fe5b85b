package audit

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"
)

// Verification and retention of the hash chains (see doc.go), plain Go over the two small
// interfaces below: any store that lists its chains, yields their events in Seq order and keeps
// retention anchors can be verified and pruned. MongoStore is one; storetest checks the
// methods' contracts.

// ErrChainBroken is returned by ApplyRetention when the part of a chain it would delete does not
// verify: retention never deletes the evidence of tampering.
var ErrChainBroken = errors.New("audit: chain does not verify")

// verifyProgressEvery is how often (in events checked) Verify reports progress.
const verifyProgressEvery = 1000

// Anchor is a retention anchor: the position and hash of the last event retention deleted from
// a chain. The chain of what remains starts after its highest anchor: its first event must be at
// Seq+1 and carry Hash as PrevHash.
type Anchor struct {
	Instance string
	Seq      int64
	Hash     string
	Time     time.Time // the time of that last deleted event
	Before   time.Time // the retention cut-off that deleted it
}

// ChainReader is what Verify needs of a store. The events come as iterators, not pages: a store
// may read them in one pass (MongoStore reads each sequence through one cursor; on FerretDB v1,
// which pushes no filter or sort down to SQLite, every page read by a query of its own would
// scan the whole collection again). An iterator that fails yields its error once and stops.
type ChainReader interface {
	// Instances lists the chains that have events, sorted.
	Instances(ctx context.Context) ([]string, error)
	// Anchors returns the highest retention anchor of every chain that has one, by instance.
	Anchors(ctx context.Context) (map[string]Anchor, error)
	// Events yields the events of every chain, in (Instance, Seq) order.
	Events(ctx context.Context) iter.Seq2[Event, error]
	// ChainEvents yields the events of instance's chain at positions from on, in Seq order.
	ChainEvents(ctx context.Context, instance string, from int64) iter.Seq2[Event, error]
	// FirstSince returns the first event of instance's chain, in Seq order, at position from or
	// later whose Time is at or after since; ok is false when there is none.
	FirstSince(ctx context.Context, instance string, from int64, since time.Time) (e Event, ok bool, err error)
}

// ChainPruner is what ApplyRetention needs of a store.
type ChainPruner interface {
	// Instances lists the chains that have events, sorted.
	Instances(ctx context.Context) ([]string, error)
	// Anchor returns the highest retention anchor of instance's chain; ok is false for a chain
	// that has none.
	Anchor(ctx context.Context, instance string) (a Anchor, ok bool, err error)
	// ChainEvents yields the events of instance's chain at positions from on, in Seq order.
	ChainEvents(ctx context.Context, instance string, from int64) iter.Seq2[Event, error]
	// AddAnchor stores a. Anchors are only added, never changed, so concurrent retention runs
	// cannot move one backwards; adding an anchor already stored (same instance and Seq) is not
	// an error.
	AddAnchor(ctx context.Context, a Anchor) error
	// DeleteThrough deletes the events of instance's chain at positions up to seq, and its
	// anchors below seq (superseded by the one at seq), and returns how many events it deleted.
	DeleteThrough(ctx context.Context, instance string, seq int64) (deleted int64, err error)
}

// VerifyOptions narrows a verification.
type VerifyOptions struct {
	// Since, if not zero, checks each chain from its first event at or after Since (linked to the
	// event just before it) rather than from its start.
	Since time.Time
	// OrgID, if not empty, is the organization whose auditor asks: the chains are walked whole (a
	// link joins events of every organization), but Checked counts only OrgID's events, and a
	// broken link at another organization's event is reported without its id.
	OrgID string
	// Progress, if not nil, is called every 1,000 events checked and once at the end with the
	// number checked so far.
	Progress func(checked int64)
}

// Verify walks every chain of r in Seq order, recomputing each event's hash and checking each
// link, and reports the first broken link: an edited event (its hash does not match its
// content), a missing one (a gap in Seq), or one out of order (it does not link to the event
// before it). Chains are walked in instance order; a chain starts after its highest retention
// anchor, if any.
//
// What a chain cannot show: events cut from its very end (nothing links to them), or from its
// head by someone who also forges an anchor. Edits, deletions and reorderings in between are
// found.
func Verify(ctx context.Context, r ChainReader, opts VerifyOptions) (VerifyResult, error) {
	anchors, err := r.Anchors(ctx)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("read audit anchors: %w", err)
	}
	v := verification{opts: opts, anchors: anchors}
	if opts.Since.IsZero() {
		err = v.all(ctx, r)
	} else {
		err = v.since(ctx, r)
	}
	if err != nil {
		return VerifyResult{}, err
	}
	v.res.OK = v.res.FirstBad == nil
	if opts.Progress != nil {
		opts.Progress(v.res.Checked)
	}
	return v.res, nil
}

// verification is one run of Verify.
type verification struct {
	res     VerifyResult
	opts    VerifyOptions
	anchors map[string]Anchor // the highest anchor of each chain
}

// all verifies every chain from its start in one pass over the events in (instance, seq) order.
// Chains counts the anchored chains and those the pass reached.
func (v *verification) all(ctx context.Context, r ChainReader) error {
	chains := map[string]bool{}
	for instance := range v.anchors {
		chains[instance] = true
	}
	defer func() { v.res.Chains = len(chains) }()
	var c *chainChecker
	for e, err := range r.Events(ctx) {
		if err != nil {
			return fmt.Errorf("read audit chains: %w", err)
		}
		if c == nil || e.Instance != c.instance {
			a := v.anchors[e.Instance]
			c = &chainChecker{instance: e.Instance, next: chainHead{Seq: a.Seq + 1, Hash: a.Hash}}
			chains[e.Instance] = true
		}
		if e.Seq <= v.anchors[e.Instance].Seq {
			continue // anchored by a retention run that was cut short before deleting it
		}
		if !v.check(c, e) {
			return nil
		}
	}
	return nil
}

// since verifies each chain from its first event at or after opts.Since.
func (v *verification) since(ctx context.Context, r ChainReader) error {
	instances, err := r.Instances(ctx)
	if err != nil {
		return fmt.Errorf("list audit chains: %w", err)
	}
	for instance := range v.anchors {
		instances = append(instances, instance)
	}
	slices.Sort(instances)
	instances = slices.Compact(instances)
	v.res.Chains = len(instances)
	for _, instance := range instances {
		start, err := chainStart(ctx, r, instance, v.anchors[instance], v.opts.Since)
		if err != nil {
			return err
		}
		if start.bad != nil {
			v.res.FirstBad = start.bad
			return nil
		}
		if start.empty {
			continue
		}
		c := chainChecker{instance: instance, next: start.head}
		for e, err := range r.ChainEvents(ctx, instance, start.head.Seq) {
			if err != nil {
				return fmt.Errorf("read audit chain %q: %w", instance, err)
			}
			if !v.check(&c, e) {
				return nil
			}
		}
	}
	return nil
}

// check checks the next event of a chain and reports whether to go on.
func (v *verification) check(c *chainChecker, e Event) bool {
	org := v.opts.OrgID
	if org == "" || e.OrgID == org {
		v.res.Checked++
		if v.opts.Progress != nil && v.res.Checked%verifyProgressEvery == 0 {
			v.opts.Progress(v.res.Checked)
		}
	}
	v.res.FirstBad = c.check(e)
	if v.res.FirstBad != nil && org != "" && e.OrgID != org {
		v.res.FirstBad.EventID = "" // another organization's event
	}
	return v.res.FirstBad == nil
}

// verifyStart is where the verification of a chain starts.
type verifyStart struct {
	head  chainHead // the first position to check and the PrevHash it must carry
	empty bool      // nothing to check (no event since the cut-off)
	bad   *BadLink  // the link into the checked part is already broken
}

// chainStart finds where to start checking instance's chain since a time: at its first event
// since then (after its anchor a), which must link to the event just before it.
func chainStart(ctx context.Context, r ChainReader, instance string, a Anchor, since time.Time) (verifyStart, error) {
	start := verifyStart{head: chainHead{Seq: a.Seq + 1, Hash: a.Hash}}
	first, ok, err := r.FirstSince(ctx, instance, start.head.Seq, since)
	if err != nil {
		return verifyStart{}, fmt.Errorf("read audit chain %q: %w", instance, err)
	}
	if !ok {
		start.empty = true
		return start, nil
	}
	if first.Seq == start.head.Seq {
		return start, nil
	}
	prev, ok, err := firstOf(r.ChainEvents(ctx, instance, first.Seq-1))
	if err != nil {
		return verifyStart{}, fmt.Errorf("read audit chain %q: %w", instance, err)
	}
	if !ok || prev.Seq != first.Seq-1 {
		start.bad = &BadLink{Instance: instance, Seq: first.Seq - 1, Problem: ProblemMissing}
		return start, nil
	}
	start.head = chainHead{Seq: first.Seq, Hash: prev.Hash}
	return start, nil
}

// firstOf returns the first event events yields.
func firstOf(events iter.Seq2[Event, error]) (Event, bool, error) {
	for e, err := range events {
		return e, err == nil, err
	}
	return Event{}, false, nil
}

// ApplyRetention deletes, from every chain of p, the events older than before that start the
// chain (the longest prefix, in Seq order, of events older than before), so that what remains is
// still a chain. Before deleting, it checks the part it deletes (retention never deletes the
// evidence of tampering: a broken part is left in place and reported as ErrChainBroken) and adds
// an anchor with the Seq and Hash of the last event it deletes; Verify and a resuming writer
// start the chain from that anchor. A chain that fails does not stop the others; their errors
// are joined.
func ApplyRetention(ctx context.Context, p ChainPruner, before time.Time) (deleted int64, err error) {
	chains, err := p.Instances(ctx)
	if err != nil {
		return 0, fmt.Errorf("list audit chains: %w", err)
	}
	var errs []error
	for _, instance := range chains {
		n, err := retainChain(ctx, p, instance, before)
		deleted += n
		if err != nil {
			if ctx.Err() != nil {
				return deleted, err
			}
			errs = append(errs, err)
		}
	}
	return deleted, errors.Join(errs...)
}

// retainChain applies retention to one chain.
func retainChain(ctx context.Context, p ChainPruner, instance string, before time.Time) (int64, error) {
	a, _, err := p.Anchor(ctx, instance)
	if err != nil {
		return 0, fmt.Errorf("read audit anchor of chain %q: %w", instance, err)
	}
	c := chainChecker{instance: instance, next: chainHead{Seq: a.Seq + 1, Hash: a.Hash}}
	var last Event
	var bad *BadLink
	for e, err := range p.ChainEvents(ctx, instance, c.next.Seq) {
		if err != nil {
			return 0, fmt.Errorf("read audit chain %q: %w", instance, err)
		}
		if !e.Time.Before(before) {
			break
		}
		if bad = c.check(e); bad != nil {
			break
		}
		last = e
	}
	if bad != nil {
		return 0, fmt.Errorf("retention of chain %q stopped: %s at seq %d: %w", instance, bad.Problem, bad.Seq, ErrChainBroken)
	}
	cut := a.Seq
	if last.Seq > cut {
		next := Anchor{Instance: instance, Seq: last.Seq, Hash: last.Hash, Time: last.Time, Before: before}
		if err := p.AddAnchor(ctx, next); err != nil {
			return 0, fmt.Errorf("anchor audit chain %q at seq %d: %w", instance, last.Seq, err)
		}
		cut = last.Seq
	}
	if cut == 0 {
		return 0, nil
	}
	// Also removes what an interrupted earlier run anchored but did not delete.
	n, err := p.DeleteThrough(ctx, instance, cut)
	if err != nil {
		return n, fmt.Errorf("delete the head of audit chain %q through seq %d: %w", instance, cut, err)
	}
	return n, nil
}
