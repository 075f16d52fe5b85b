package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Errors of the store.
var (
	// ErrInvalidQuery is a query the store cannot run: a malformed cursor, a negative limit,
	// Until before Since.
	ErrInvalidQuery = errors.New("audit: invalid query")
	// ErrChainConflict means two different events claim one position of a chain: two live
	// writers were given the same Instance. The second one's events stay in its spill file.
	ErrChainConflict = errors.New("audit: two events claim one position of a chain")
	// ErrChainBroken is returned by ApplyRetention when the part of a chain it would delete does
	// not verify: retention never deletes the evidence of tampering.
	ErrChainBroken = errors.New("audit: chain does not verify")
)

// Query limits.
const (
	DefaultQueryLimit = 50
	MaxQueryLimit     = 500
)

// verifyProgressEvery is how often (in events) Verify reports progress.
const verifyProgressEvery = 1000

// MongoStore keeps audit events in MongoDB (or the embedded FerretDB).
//
// Collection audit_events holds the events, _id = Event.ID. A unique index on (instance, seq)
// makes two events at one position of a chain impossible: appending is a plain insert, atomic on
// every MongoDB-wire server (FerretDB v1 has no transactions, and its updates are not atomic, so
// nothing here depends on an update). Replaying a spilled event that is already stored hits that
// index and is recognized as written.
//
// Collection audit_anchors holds retention anchors: when retention deletes the head of a chain,
// it first inserts {instance, seq, hash} of the last event it will delete, with _id
// "<instance>/<seq>". Anchors are only ever inserted (never updated), so concurrent retention
// runs cannot move an anchor backwards: a chain starts after its highest anchor.
type MongoStore struct {
	events  *mongo.Collection
	anchors *mongo.Collection
}

// anchor is a retention anchor: the position and hash of the last event deleted from a chain.
type anchor struct {
	ID       string    `bson:"_id"` // instance + "/" + seq (zero-padded)
	Type     string    `bson:"type"`
	Instance string    `bson:"instance"`
	Seq      int64     `bson:"seq"`
	Hash     string    `bson:"hash"`
	Time     time.Time `bson:"time"`   // the time of that last deleted event
	Before   time.Time `bson:"before"` // the retention cut-off that deleted it
}

// StoreOptions tunes NewMongoStoreWith.
type StoreOptions struct {
	// NoQueryIndexes leaves out the indexes that only serve Query (time_id, type_time,
	// subject_time on audit_events), and drops them if they exist. For a server that never uses
	// them: FerretDB v1 on SQLite (the embedded store) pushes no filter or sort down to SQLite but
	// a lone _id, so Query scans the collection whatever its indexes, while every index costs
	// each insert (SQLite evaluates json_extract over the whole document once per indexed field:
	// the three of them are six of the nine per event). On MongoDB keep them. The unique
	// (instance, seq) index is always kept: the chain's correctness depends on it.
	NoQueryIndexes bool
}

// queryIndexes are the indexes of audit_events that only Query uses.
var queryIndexes = []struct {
	name string
	keys bson.D
}{
	{"time_id", bson.D{{Key: "time", Value: -1}, {Key: "_id", Value: -1}}},
	{"type_time", bson.D{{Key: "type", Value: 1}, {Key: "time", Value: -1}}},
	{"subject_time", bson.D{{Key: "subject", Value: 1}, {Key: "time", Value: -1}}},
}

// NewMongoStore returns the store on db, creating its indexes (idempotently).
func NewMongoStore(ctx context.Context, db *mongo.Database) (*MongoStore, error) {
	return NewMongoStoreWith(ctx, db, StoreOptions{})
}

// NewMongoStoreWith is NewMongoStore with options.
func NewMongoStoreWith(ctx context.Context, db *mongo.Database, opts StoreOptions) (*MongoStore, error) {
	s := &MongoStore{events: db.Collection("audit_events"), anchors: db.Collection("audit_anchors")}
	type index struct {
		coll *mongo.Collection
		name string
		keys bson.D
		uniq bool
	}
	indexes := []index{
		{s.events, "instance_seq", bson.D{{Key: "instance", Value: 1}, {Key: "seq", Value: 1}}, true},
		{s.anchors, "instance_seq", bson.D{{Key: "instance", Value: 1}, {Key: "seq", Value: -1}}, false},
	}
	if !opts.NoQueryIndexes {
		for _, ix := range queryIndexes {
			indexes = append(indexes, index{s.events, ix.name, ix.keys, false})
		}
	}
	for _, ix := range indexes {
		model := mongo.IndexModel{Keys: ix.keys, Options: options.Index().SetName(ix.name).SetUnique(ix.uniq)}
		if _, err := ix.coll.Indexes().CreateOne(ctx, model); err != nil {
			return nil, fmt.Errorf("create index %s.%s: %w", ix.coll.Name(), ix.name, err)
		}
	}
	if opts.NoQueryIndexes {
		if err := s.dropQueryIndexes(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// dropQueryIndexes drops those of the query indexes that exist (created by an earlier start
// without NoQueryIndexes).
func (s *MongoStore) dropQueryIndexes(ctx context.Context) error {
	specs, err := s.events.Indexes().ListSpecifications(ctx)
	if err != nil {
		return fmt.Errorf("list indexes of audit_events: %w", err)
	}
	for _, spec := range specs {
		for _, ix := range queryIndexes {
			if spec.Name != ix.name {
				continue
			}
			if err := s.events.Indexes().DropOne(ctx, ix.name); err != nil {
				return fmt.Errorf("drop index audit_events.%s: %w", ix.name, err)
			}
		}
	}
	return nil
}

// Append stores events at their positions, in order, treating an event that is already stored
// (same position, same id and hash) as written: replaying a spill file is safe however often it
// is retried. A different event at one of the positions is ErrChainConflict.
func (s *MongoStore) Append(ctx context.Context, events []Event) error {
	for len(events) > 0 {
		_, err := s.events.InsertMany(ctx, events, options.InsertMany().SetOrdered(true))
		if err == nil {
			return nil
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 || bwe.WriteConcernError != nil ||
			!mongo.IsDuplicateKeyError(bwe.WriteErrors[0].WriteError) {
			return fmt.Errorf("insert audit events: %w", err)
		}
		i := bwe.WriteErrors[0].Index
		if i < 0 || i >= len(events) {
			return fmt.Errorf("insert audit events: %w", err)
		}
		if err := s.sameAsStored(ctx, events[i]); err != nil {
			return err
		}
		events = events[i+1:]
	}
	return nil
}

// sameAsStored checks that the event stored at e's position is e.
func (s *MongoStore) sameAsStored(ctx context.Context, e Event) error {
	var stored Event
	err := s.events.FindOne(ctx, bson.D{{Key: "instance", Value: e.Instance}, {Key: "seq", Value: e.Seq}}).Decode(&stored)
	if errors.Is(err, mongo.ErrNoDocuments) {
		err = s.events.FindOne(ctx, bson.D{{Key: "_id", Value: e.ID}}).Decode(&stored)
	}
	if err != nil {
		return fmt.Errorf("read stored audit event: %w", err)
	}
	if stored.ID != e.ID || stored.Hash != e.Hash || stored.Seq != e.Seq || stored.Instance != e.Instance {
		return fmt.Errorf("chain %q position %d: %w", e.Instance, e.Seq, ErrChainConflict)
	}
	return nil
}

// Last returns where a chain stands: its last stored event, or, when retention has deleted
// every event of the chain, its anchor (an Event of Type RetentionAnchor carrying the Instance,
// Seq and Hash of the last deleted event). ok is false for a chain that has never been written.
func (s *MongoStore) Last(ctx context.Context, instance string) (last Event, ok bool, err error) {
	err = s.events.FindOne(ctx, bson.D{{Key: "instance", Value: instance}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}})).Decode(&last)
	switch {
	case err == nil:
		ok = true
	case !errors.Is(err, mongo.ErrNoDocuments):
		return Event{}, false, fmt.Errorf("read last audit event: %w", err)
	}
	a, hasAnchor, err := s.lastAnchor(ctx, instance)
	if err != nil {
		return Event{}, false, err
	}
	if hasAnchor && (!ok || a.Seq >= last.Seq) {
		return Event{Type: RetentionAnchor, Instance: a.Instance, Seq: a.Seq, Hash: a.Hash, Time: a.Time}, true, nil
	}
	return last, ok, nil
}

func (s *MongoStore) lastAnchor(ctx context.Context, instance string) (anchor, bool, error) {
	var a anchor
	err := s.anchors.FindOne(ctx, bson.D{{Key: "instance", Value: instance}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}})).Decode(&a)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return anchor{}, false, nil
	}
	if err != nil {
		return anchor{}, false, fmt.Errorf("read audit anchor: %w", err)
	}
	return a, true, nil
}

// queryCursor is the position after the last event of a page.
type queryCursor struct {
	Time int64  `json:"t"` // Unix milliseconds
	ID   string `json:"i"`
}

func encodeCursor(e Event) string {
	b, _ := json.Marshal(queryCursor{Time: e.Time.UnixMilli(), ID: e.ID})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (queryCursor, error) {
	var c queryCursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.ID == "" {
		return c, fmt.Errorf("malformed cursor: %w", ErrInvalidQuery)
	}
	return c, nil
}

// Query returns one page of events, newest first (by time, then id), and the cursor of the next
// page ("" on the last page). Since is inclusive, Until exclusive; Limit is 1..500, 0 meaning 50
// (more than 500 is cut to 500).
func (s *MongoStore) Query(ctx context.Context, q Query) ([]Event, string, error) {
	limit := q.Limit
	switch {
	case limit < 0:
		return nil, "", fmt.Errorf("limit %d: %w", limit, ErrInvalidQuery)
	case limit == 0:
		limit = DefaultQueryLimit
	case limit > MaxQueryLimit:
		limit = MaxQueryLimit
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return nil, "", fmt.Errorf("until before since: %w", ErrInvalidQuery)
	}
	filter := bson.D{}
	for _, f := range []struct{ key, value string }{
		{"type", q.Type}, {"subject", q.Subject}, {"org_id", q.OrgID},
	} {
		if f.value != "" {
			filter = append(filter, bson.E{Key: f.key, Value: f.value})
		}
	}
	timeRange := bson.D{}
	if !q.Since.IsZero() {
		timeRange = append(timeRange, bson.E{Key: "$gte", Value: q.Since})
	}
	if !q.Until.IsZero() {
		timeRange = append(timeRange, bson.E{Key: "$lt", Value: q.Until})
	}
	if len(timeRange) > 0 {
		filter = append(filter, bson.E{Key: "time", Value: timeRange})
	}
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		t := time.UnixMilli(c.Time).UTC()
		filter = append(filter, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "time", Value: bson.D{{Key: "$lt", Value: t}}}},
			bson.D{{Key: "time", Value: t}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: c.ID}}}},
		}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "time", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit) + 1)
	cur, err := s.events.Find(ctx, filter, opts)
	if err != nil {
		return nil, "", fmt.Errorf("query audit events: %w", err)
	}
	var events []Event
	if err := cur.All(ctx, &events); err != nil {
		return nil, "", fmt.Errorf("read audit events: %w", err)
	}
	next := ""
	if len(events) > limit {
		events = events[:limit]
		next = encodeCursor(events[limit-1])
	}
	return events, next, nil
}

// instances lists the chains that have events, sorted.
func (s *MongoStore) instances(ctx context.Context) ([]string, error) {
	// (An aggregation rather than distinct: FerretDB v1's distinct reply does not decode.)
	cur, err := s.events.Aggregate(ctx, mongo.Pipeline{
		{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$instance"}}}},
		{{Key: "$sort", Value: bson.D{{Key: "_id", Value: 1}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("list audit chains: %w", err)
	}
	var groups []struct {
		Instance string `bson:"_id"`
	}
	if err := cur.All(ctx, &groups); err != nil {
		return nil, fmt.Errorf("list audit chains: %w", err)
	}
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = g.Instance
	}
	return names, nil
}

// walk calls f with the events of a chain from position from on, in Seq order, until f returns
// false or an error.
func (s *MongoStore) walk(ctx context.Context, instance string, from int64, f func(Event) (bool, error)) error {
	cur, err := s.events.Find(ctx,
		bson.D{{Key: "instance", Value: instance}, {Key: "seq", Value: bson.D{{Key: "$gte", Value: from}}}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetBatchSize(1000))
	if err != nil {
		return fmt.Errorf("read audit chain %q: %w", instance, err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		var e Event
		if err := cur.Decode(&e); err != nil {
			return fmt.Errorf("decode audit event: %w", err)
		}
		more, err := f(e)
		if err != nil || !more {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read audit chain %q: %w", instance, err)
	}
	return nil
}

// Verify walks every chain in Seq order, recomputing each event's hash and checking each link,
// and reports the first broken link: an edited event (its hash does not match its content), a
// missing one (a gap in Seq), or one out of order (it does not link to the event before it).
// Chains are walked in instance order; a chain starts after its retention anchor, if any. With
// a non-zero since, each chain is checked from its first event at or after since (linked to the
// event just before it). progress, if not nil, is called every 1,000 events and once at the end
// with the number checked so far.
//
// What a chain cannot show: events cut from its very end (nothing links to them), or from its
// head by someone who also forges an anchor. Edits, deletions and reorderings in between are found.
func (s *MongoStore) Verify(ctx context.Context, since time.Time, progress func(checked int64)) (VerifyResult, error) {
	return s.VerifyOrg(ctx, since, "", progress)
}

// VerifyOrg is Verify as one organization's auditor sees it (orgID "" is the whole trail): the
// chains are walked whole (a link joins events of every organization), but Checked counts only
// orgID's events, and a broken link at another organization's event is reported without its id.
func (s *MongoStore) VerifyOrg(ctx context.Context, since time.Time, orgID string, progress func(checked int64)) (VerifyResult, error) {
	anchors, err := s.allAnchors(ctx)
	if err != nil {
		return VerifyResult{}, err
	}
	v := verification{progress: progress, anchors: anchors, org: orgID}
	if since.IsZero() {
		err = v.all(ctx, s)
	} else {
		err = v.since(ctx, s, since)
	}
	if err != nil {
		return VerifyResult{}, err
	}
	v.res.OK = v.res.FirstBad == nil
	if progress != nil {
		progress(v.res.Checked)
	}
	return v.res, nil
}

// verification is one run of Verify.
type verification struct {
	res      VerifyResult
	progress func(int64)
	anchors  map[string]anchor // the highest anchor of each chain
	org      string            // count (and name) only this organization's events; "" all
}

// check checks the next event of a chain and reports whether to go on.
func (v *verification) check(c *chainChecker, e Event) bool {
	if v.org == "" || e.OrgID == v.org {
		v.res.Checked++
		if v.progress != nil && v.res.Checked%verifyProgressEvery == 0 {
			v.progress(v.res.Checked)
		}
	}
	v.res.FirstBad = c.check(e)
	if v.res.FirstBad != nil && v.org != "" && e.OrgID != v.org {
		v.res.FirstBad.EventID = "" // another organization's event
	}
	return v.res.FirstBad == nil
}

// all verifies every chain from its start in one pass over the events in (instance, seq) order
// (the unique index's order).
func (v *verification) all(ctx context.Context, s *MongoStore) error {
	chains := map[string]bool{}
	for instance := range v.anchors {
		chains[instance] = true
	}
	defer func() { v.res.Chains = len(chains) }()
	cur, err := s.events.Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "instance", Value: 1}, {Key: "seq", Value: 1}}).SetBatchSize(1000))
	if err != nil {
		return fmt.Errorf("read audit chains: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var c *chainChecker
	for cur.Next(ctx) {
		var e Event
		if err := cur.Decode(&e); err != nil {
			return fmt.Errorf("decode audit event: %w", err)
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
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read audit chains: %w", err)
	}
	return nil
}

// since verifies each chain from its first event at or after since.
func (v *verification) since(ctx context.Context, s *MongoStore, since time.Time) error {
	instances, err := s.instances(ctx)
	if err != nil {
		return err
	}
	for instance := range v.anchors {
		instances = append(instances, instance)
	}
	slices.Sort(instances)
	instances = slices.Compact(instances)
	v.res.Chains = len(instances)
	for _, instance := range instances {
		start, err := s.chainStart(ctx, instance, v.anchors[instance], since)
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
		err = s.walk(ctx, instance, start.head.Seq, func(e Event) (bool, error) { return v.check(&c, e), nil })
		if err != nil || v.res.FirstBad != nil {
			return err
		}
	}
	return nil
}

// allAnchors returns the highest anchor of every chain.
func (s *MongoStore) allAnchors(ctx context.Context) (map[string]anchor, error) {
	cur, err := s.anchors.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read audit anchors: %w", err)
	}
	var all []anchor
	if err := cur.All(ctx, &all); err != nil {
		return nil, fmt.Errorf("read audit anchors: %w", err)
	}
	m := make(map[string]anchor, len(all))
	for _, a := range all {
		if a.Seq > m[a.Instance].Seq {
			m[a.Instance] = a
		}
	}
	return m, nil
}

// verifyStart is where the verification of a chain starts.
type verifyStart struct {
	head  chainHead // the first position to check and the PrevHash it must carry
	empty bool      // nothing to check (no event since the cut-off)
	bad   *BadLink  // the link into the checked part is already broken
}

func (s *MongoStore) chainStart(ctx context.Context, instance string, a anchor, since time.Time) (verifyStart, error) {
	start := verifyStart{head: chainHead{Seq: a.Seq + 1, Hash: a.Hash}}
	if since.IsZero() {
		return start, nil
	}
	var first Event
	err := s.events.FindOne(ctx, bson.D{
		{Key: "instance", Value: instance},
		{Key: "seq", Value: bson.D{{Key: "$gte", Value: start.head.Seq}}},
		{Key: "time", Value: bson.D{{Key: "$gte", Value: since}}},
	}, options.FindOne().SetSort(bson.D{{Key: "seq", Value: 1}})).Decode(&first)
	if errors.Is(err, mongo.ErrNoDocuments) {
		start.empty = true
		return start, nil
	}
	if err != nil {
		return verifyStart{}, fmt.Errorf("read audit chain %q: %w", instance, err)
	}
	if first.Seq == start.head.Seq {
		return start, nil
	}
	var prev Event
	err = s.events.FindOne(ctx, bson.D{{Key: "instance", Value: instance}, {Key: "seq", Value: first.Seq - 1}}).Decode(&prev)
	if errors.Is(err, mongo.ErrNoDocuments) {
		start.bad = &BadLink{Instance: instance, Seq: first.Seq - 1, Problem: ProblemMissing}
		return start, nil
	}
	if err != nil {
		return verifyStart{}, fmt.Errorf("read audit chain %q: %w", instance, err)
	}
	start.head = chainHead{Seq: first.Seq, Hash: prev.Hash}
	return start, nil
}

// ApplyRetention deletes, from every chain, the events older than before that start the chain
// (the longest prefix, in Seq order, of events older than before), so that what remains is still
// a chain. Before deleting, it checks the part it deletes (retention never deletes the evidence
// of tampering: a broken part is left in place and reported as ErrChainBroken) and inserts an
// anchor with the Seq and Hash of the last event it deletes; Verify and a resuming writer start
// the chain from that anchor.
func (s *MongoStore) ApplyRetention(ctx context.Context, before time.Time) (deleted int64, err error) {
	instances, err := s.instances(ctx)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, instance := range instances {
		n, err := s.retainChain(ctx, instance, before)
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

func (s *MongoStore) retainChain(ctx context.Context, instance string, before time.Time) (int64, error) {
	a, _, err := s.lastAnchor(ctx, instance)
	if err != nil {
		return 0, err
	}
	c := chainChecker{instance: instance, next: chainHead{Seq: a.Seq + 1, Hash: a.Hash}}
	var last Event
	var bad *BadLink
	err = s.walk(ctx, instance, c.next.Seq, func(e Event) (bool, error) {
		if !e.Time.Before(before) {
			return false, nil
		}
		if bad = c.check(e); bad != nil {
			return false, nil
		}
		last = e
		return true, nil
	})
	if err != nil {
		return 0, err
	}
	if bad != nil {
		return 0, fmt.Errorf("retention of chain %q stopped: %s at seq %d: %w", instance, bad.Problem, bad.Seq, ErrChainBroken)
	}
	cut := a.Seq
	if last.Seq > cut {
		next := anchor{
			ID: fmt.Sprintf("%s/%020d", instance, last.Seq), Type: RetentionAnchor, Instance: instance,
			Seq: last.Seq, Hash: last.Hash, Time: last.Time, Before: before,
		}
		if _, err := s.anchors.InsertOne(ctx, next); err != nil && !mongo.IsDuplicateKeyError(err) {
			return 0, fmt.Errorf("insert audit anchor: %w", err)
		}
		cut = last.Seq
	}
	if cut == 0 {
		return 0, nil
	}
	// Also removes what an interrupted earlier run anchored but did not delete.
	res, err := s.events.DeleteMany(ctx, bson.D{{Key: "instance", Value: instance}, {Key: "seq", Value: bson.D{{Key: "$lte", Value: cut}}}})
	if err != nil {
		return 0, fmt.Errorf("delete old audit events: %w", err)
	}
	if _, err := s.anchors.DeleteMany(ctx, bson.D{{Key: "instance", Value: instance}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: cut}}}}); err != nil {
		return res.DeletedCount, fmt.Errorf("delete superseded audit anchors: %w", err)
	}
	return res.DeletedCount, nil
}

var _ Store = (*MongoStore)(nil)
