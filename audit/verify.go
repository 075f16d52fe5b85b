package audit

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Verification and retention of the hash chains (see doc.go), plain Go over the two small
// interfaces below: any store that lists its chains, reads a chain in Seq order a page at a time,
// and keeps retention anchors can be verified and pruned. MongoStore is one; storetest checks the
// methods' contracts.

// ErrChainBroken is returned by ApplyRetention when the part of a chain it would delete does not
// verify: retention never deletes the evidence of tampering.
var ErrChainBroken = errors.New("audit: chain does not verify")

// chainPageSize is how many events the verifier and retention read from a store at a time, and
// how often (in events checked) Verify reports progress.
const chainPageSize = 1000

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

// ChainReader is what Verify needs of a store: its chains and their events in Seq order.
type ChainReader interface {
	// Chains lists the chains of the store, sorted: every instance with an event or an anchor.
	Chains(ctx context.Context) ([]string, error)
	// Anchor returns the highest retention anchor of instance's chain; ok is false for a chain
	// that has none.
	Anchor(ctx context.Context, instance string) (a Anchor, ok bool, err error)
	// ReadChain returns at most limit (≥ 1) events of instance's chain at positions from on, in
	// Seq order; fewer than limit only when the chain holds no more.
	ReadChain(ctx context.Context, instance string, from int64, limit int) ([]Event, error)
	// FirstSince returns the first event of instance's chain, in Seq order, at position from or
	// later whose Time is at or after since; ok is false when there is none.
	FirstSince(ctx context.Context, instance string, from int64, since time.Time) (e Event, ok bool, err error)
}

// ChainPruner is what ApplyRetention needs of a store: reading its chains, adding an anchor,
// deleting the head of a chain.
type ChainPruner interface {
	ChainReader
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
// anchor, if any. Chains counts every chain of r.
//
// What a chain cannot show: events cut from its very end (nothing links to them), or from its
// head by someone who also forges an anchor. Edits, deletions and reorderings in between are
// found.
func Verify(ctx context.Context, r ChainReader, opts VerifyOptions) (VerifyResult, error) {
	chains, err := r.Chains(ctx)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("list audit chains: %w", err)
	}
	v := verification{opts: opts}
	v.res.Chains = len(chains)
	for _, instance := range chains {
		if err := v.chain(ctx, r, instance); err != nil {
			return VerifyResult{}, err
		}
		if v.res.FirstBad != nil {
			break
		}
	}
	v.res.OK = v.res.FirstBad == nil
	if opts.Progress != nil {
		opts.Progress(v.res.Checked)
	}
	return v.res, nil
}

// verification is one run of Verify.
type verification struct {
	res  VerifyResult
	opts VerifyOptions
}

// chain verifies one chain, from its start or from the first event since opts.Since.
func (v *verification) chain(ctx context.Context, r ChainReader, instance string) error {
	a, _, err := r.Anchor(ctx, instance)
	if err != nil {
		return fmt.Errorf("read audit anchor of chain %q: %w", instance, err)
	}
	start, err := chainStart(ctx, r, instance, a, v.opts.Since)
	if err != nil {
		return err
	}
	if start.bad != nil {
		v.res.FirstBad = start.bad
		return nil
	}
	if start.empty {
		return nil
	}
	c := chainChecker{instance: instance, next: start.head}
	return walk(ctx, r, instance, start.head.Seq, func(e Event) bool { return v.check(&c, e) })
}

// check checks the next event of a chain and reports whether to go on.
func (v *verification) check(c *chainChecker, e Event) bool {
	org := v.opts.OrgID
	if org == "" || e.OrgID == org {
		v.res.Checked++
		if v.opts.Progress != nil && v.res.Checked%chainPageSize == 0 {
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

// chainStart finds where to start checking instance's chain: after its anchor a, or, with a
// non-zero since, at its first event since then, which must link to the event just before it.
func chainStart(ctx context.Context, r ChainReader, instance string, a Anchor, since time.Time) (verifyStart, error) {
	start := verifyStart{head: chainHead{Seq: a.Seq + 1, Hash: a.Hash}}
	if since.IsZero() {
		return start, nil
	}
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
	prev, err := r.ReadChain(ctx, instance, first.Seq-1, 1)
	if err != nil {
		return verifyStart{}, fmt.Errorf("read audit chain %q: %w", instance, err)
	}
	if len(prev) == 0 || prev[0].Seq != first.Seq-1 {
		start.bad = &BadLink{Instance: instance, Seq: first.Seq - 1, Problem: ProblemMissing}
		return start, nil
	}
	start.head = chainHead{Seq: first.Seq, Hash: prev[0].Hash}
	return start, nil
}

// walk calls f with the events of instance's chain from position from on, in Seq order, reading
// them a page at a time, until f returns false or the chain ends.
func walk(ctx context.Context, r ChainReader, instance string, from int64, f func(Event) bool) error {
	for {
		page, err := r.ReadChain(ctx, instance, from, chainPageSize)
		if err != nil {
			return fmt.Errorf("read audit chain %q: %w", instance, err)
		}
		for _, e := range page {
			if !f(e) {
				return nil
			}
		}
		if len(page) < chainPageSize {
			return nil
		}
		from = page[len(page)-1].Seq + 1
	}
}

// ApplyRetention deletes, from every chain of p, the events older than before that start the
// chain (the longest prefix, in Seq order, of events older than before), so that what remains is
// still a chain. Before deleting, it checks the part it deletes (retention never deletes the
// evidence of tampering: a broken part is left in place and reported as ErrChainBroken) and adds
// an anchor with the Seq and Hash of the last event it deletes; Verify and a resuming writer
// start the chain from that anchor. A chain that fails does not stop the others; their errors
// are joined.
func ApplyRetention(ctx context.Context, p ChainPruner, before time.Time) (deleted int64, err error) {
	chains, err := p.Chains(ctx)
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
	err = walk(ctx, p, instance, c.next.Seq, func(e Event) bool {
		if !e.Time.Before(before) {
			return false
		}
		if bad = c.check(e); bad != nil {
			return false
		}
		last = e
		return true
	})
	if err != nil {
		return 0, err
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
