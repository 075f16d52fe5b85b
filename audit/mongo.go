package audit

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/internal/mongox"
)

// Errors of the store.
var (
	// ErrInvalidQuery is a query the store cannot run: a malformed cursor, a negative limit,
	// Until before Since.
	ErrInvalidQuery = errors.New("audit: invalid query")
	// ErrChainConflict means two different events claim one position of a chain: two live
	// writers were given the same Instance. The second one's events stay in its spill file.
	ErrChainConflict = errors.New("audit: two events claim one position of a chain")
	// ErrSearchTooLong is a search that ran out of its time (StoreOptions.SearchTimeout): on the
	// embedded store, one that scans more events than fit in it.
	ErrSearchTooLong = errors.New("audit: search took too long")
)

// Query limits.
const (
	DefaultQueryLimit = 50
	MaxQueryLimit     = 500
)

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
	// searches holds a token per search running on a server that scans for it (FerretDB v1):
	// one at a time, so searching takes at most one core. Nil on a server that uses indexes.
	searches      chan struct{}
	searchTimeout time.Duration
}

// anchorDoc is an Anchor as audit_anchors stores it.
type anchorDoc struct {
	ID       string    `bson:"_id"` // instance + "/" + seq (zero-padded)
	Type     string    `bson:"type"`
	Instance string    `bson:"instance"`
	Seq      int64     `bson:"seq"`
	Hash     string    `bson:"hash"`
	Time     time.Time `bson:"time"`   // the time of that last deleted event
	Before   time.Time `bson:"before"` // the retention cut-off that deleted it
}

func (a anchorDoc) anchor() Anchor {
	return Anchor{Instance: a.Instance, Seq: a.Seq, Hash: a.Hash, Time: a.Time, Before: a.Before}
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
	// SearchTimeout bounds one Query (0: DefaultSearchTimeout). On FerretDB v1 a search decodes
	// every stored event whatever its filter (about 0.26 ms each on the 2-core machine: 26 s at
	// 100,000 events), so the bound is what keeps a search from holding the server.
	SearchTimeout time.Duration
}

// DefaultSearchTimeout is StoreOptions.SearchTimeout's default.
const DefaultSearchTimeout = 30 * time.Second

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
	s := &MongoStore{events: db.Collection("audit_events"), anchors: db.Collection("audit_anchors"),
		searchTimeout: cmp.Or(opts.SearchTimeout, DefaultSearchTimeout)}
	if mongox.PushesDownOnlyIDs(ctx, db) {
		s.searches = make(chan struct{}, 1)
	}
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
	a, hasAnchor, err := s.Anchor(ctx, instance)
	if err != nil {
		return Event{}, false, err
	}
	if hasAnchor && (!ok || a.Seq >= last.Seq) {
		return Event{Type: RetentionAnchor, Instance: a.Instance, Seq: a.Seq, Hash: a.Hash, Time: a.Time}, true, nil
	}
	return last, ok, nil
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
// (more than 500 is cut to 500). A search that takes longer than the store's SearchTimeout is
// ErrSearchTooLong; on a server that scans for it, searches wait for each other.
func (s *MongoStore) Query(ctx context.Context, q Query) ([]Event, string, error) {
	if s.searches != nil {
		select {
		case s.searches <- struct{}{}:
			defer func() { <-s.searches }()
		case <-ctx.Done():
			return nil, "", fmt.Errorf("wait for another audit search: %w", ctx.Err())
		}
	}
	sctx, cancel := context.WithTimeoutCause(ctx, s.searchTimeout, ErrSearchTooLong)
	defer cancel()
	events, next, err := s.query(sctx, q)
	if err != nil && errors.Is(context.Cause(sctx), ErrSearchTooLong) {
		return nil, "", fmt.Errorf("audit search, %s: %w", s.searchTimeout, ErrSearchTooLong)
	}
	return events, next, err
}

func (s *MongoStore) query(ctx context.Context, q Query) ([]Event, string, error) {
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
	// A find command of its own rather than Collection.Find, which never sends maxTimeMS (the
	// driver leaves it out of commands that open a cursor): with it the server stops the scan at
	// the search's deadline (the driver derives maxTimeMS from ctx). One batch holds the page.
	n := int64(limit) + 1
	var reply struct {
		Cursor struct {
			FirstBatch []Event `bson:"firstBatch"`
		} `bson:"cursor"`
	}
	err := s.events.Database().RunCommand(ctx, bson.D{
		{Key: "find", Value: s.events.Name()}, {Key: "filter", Value: filter},
		{Key: "sort", Value: bson.D{{Key: "time", Value: -1}, {Key: "_id", Value: -1}}},
		{Key: "limit", Value: n}, {Key: "batchSize", Value: n}, {Key: "singleBatch", Value: true},
	}).Decode(&reply)
	if err != nil {
		return nil, "", fmt.Errorf("query audit events: %w", err)
	}
	events := reply.Cursor.FirstBatch
	next := ""
	if len(events) > limit {
		events = events[:limit]
		next = encodeCursor(events[limit-1])
	}
	return events, next, nil
}

// Instances lists the chains that have events, sorted.
func (s *MongoStore) Instances(ctx context.Context) ([]string, error) {
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

// Anchors returns the highest anchor of every chain that has one.
func (s *MongoStore) Anchors(ctx context.Context) (map[string]Anchor, error) {
	cur, err := s.anchors.Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read audit anchors: %w", err)
	}
	var all []anchorDoc
	if err := cur.All(ctx, &all); err != nil {
		return nil, fmt.Errorf("read audit anchors: %w", err)
	}
	m := make(map[string]Anchor, len(all))
	for _, a := range all {
		if a.Seq > m[a.Instance].Seq {
			m[a.Instance] = a.anchor()
		}
	}
	return m, nil
}

// Anchor returns the highest anchor of instance's chain.
func (s *MongoStore) Anchor(ctx context.Context, instance string) (Anchor, bool, error) {
	var a anchorDoc
	err := s.anchors.FindOne(ctx, bson.D{{Key: "instance", Value: instance}},
		options.FindOne().SetSort(bson.D{{Key: "seq", Value: -1}})).Decode(&a)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Anchor{}, false, nil
	}
	if err != nil {
		return Anchor{}, false, fmt.Errorf("read audit anchor: %w", err)
	}
	return a.anchor(), true, nil
}

// Events yields the events of every chain in (instance, seq) order (the unique index's order),
// through one cursor.
func (s *MongoStore) Events(ctx context.Context) iter.Seq2[Event, error] {
	return s.scan(ctx, bson.D{}, bson.D{{Key: "instance", Value: 1}, {Key: "seq", Value: 1}})
}

// ChainEvents yields the events of instance's chain at positions from on, in Seq order, through
// one cursor.
func (s *MongoStore) ChainEvents(ctx context.Context, instance string, from int64) iter.Seq2[Event, error] {
	return s.scan(ctx, bson.D{{Key: "instance", Value: instance}, {Key: "seq", Value: bson.D{{Key: "$gte", Value: from}}}},
		bson.D{{Key: "seq", Value: 1}})
}

// scan yields the events filter selects in sort order, until the loop over it stops.
func (s *MongoStore) scan(ctx context.Context, filter, sort bson.D) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		cur, err := s.events.Find(ctx, filter, options.Find().SetSort(sort).SetBatchSize(1000))
		if err != nil {
			yield(Event{}, fmt.Errorf("find audit events: %w", err))
			return
		}
		defer cur.Close(context.WithoutCancel(ctx))
		for cur.Next(ctx) {
			var e Event
			if err := cur.Decode(&e); err != nil {
				yield(Event{}, fmt.Errorf("decode audit event: %w", err))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
		if err := cur.Err(); err != nil {
			yield(Event{}, fmt.Errorf("read audit events: %w", err))
		}
	}
}

// FirstSince returns the first event of instance's chain at position from or later whose Time is
// at or after since.
func (s *MongoStore) FirstSince(ctx context.Context, instance string, from int64, since time.Time) (Event, bool, error) {
	var first Event
	err := s.events.FindOne(ctx, bson.D{
		{Key: "instance", Value: instance},
		{Key: "seq", Value: bson.D{{Key: "$gte", Value: from}}},
		{Key: "time", Value: bson.D{{Key: "$gte", Value: since}}},
	}, options.FindOne().SetSort(bson.D{{Key: "seq", Value: 1}})).Decode(&first)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return Event{}, false, nil
	}
	if err != nil {
		return Event{}, false, fmt.Errorf("read audit event: %w", err)
	}
	return first, true, nil
}

// AddAnchor inserts a (its _id is its instance and zero-padded Seq, so adding it again is a
// duplicate key, taken as stored).
func (s *MongoStore) AddAnchor(ctx context.Context, a Anchor) error {
	doc := anchorDoc{
		ID: fmt.Sprintf("%s/%020d", a.Instance, a.Seq), Type: RetentionAnchor, Instance: a.Instance,
		Seq: a.Seq, Hash: a.Hash, Time: a.Time, Before: a.Before,
	}
	if _, err := s.anchors.InsertOne(ctx, doc); err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("insert audit anchor: %w", err)
	}
	return nil
}

// DeleteThrough deletes instance's events at positions up to seq and its anchors below seq.
func (s *MongoStore) DeleteThrough(ctx context.Context, instance string, seq int64) (int64, error) {
	res, err := s.events.DeleteMany(ctx, bson.D{{Key: "instance", Value: instance}, {Key: "seq", Value: bson.D{{Key: "$lte", Value: seq}}}})
	if err != nil {
		return 0, fmt.Errorf("delete old audit events: %w", err)
	}
	if _, err := s.anchors.DeleteMany(ctx, bson.D{{Key: "instance", Value: instance}, {Key: "seq", Value: bson.D{{Key: "$lt", Value: seq}}}}); err != nil {
		return res.DeletedCount, fmt.Errorf("delete superseded audit anchors: %w", err)
	}
	return res.DeletedCount, nil
}

// Verify is Verify (the function) over s: every chain, from since if not zero.
func (s *MongoStore) Verify(ctx context.Context, since time.Time, progress func(checked int64)) (VerifyResult, error) {
	return Verify(ctx, s, VerifyOptions{Since: since, Progress: progress})
}

// VerifyOrg is Verify as one organization's auditor sees it (orgID "" is the whole trail; see
// VerifyOptions.OrgID).
func (s *MongoStore) VerifyOrg(ctx context.Context, since time.Time, orgID string, progress func(checked int64)) (VerifyResult, error) {
	return Verify(ctx, s, VerifyOptions{Since: since, OrgID: orgID, Progress: progress})
}

// ApplyRetention is ApplyRetention (the function) over s.
func (s *MongoStore) ApplyRetention(ctx context.Context, before time.Time) (int64, error) {
	return ApplyRetention(ctx, s, before)
}

var (
	_ Store       = (*MongoStore)(nil)
	_ ChainReader = (*MongoStore)(nil)
	_ ChainPruner = (*MongoStore)(nil)
)
