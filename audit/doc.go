// Package audit is the security event trail: event model, an asynchronous batched writer, a
// tamper-evident hash chain and queries. It imports nothing of ours (only the MongoDB driver).
// It must never drop an event, and never hold a secret: details are stored as their JSON form,
// so a secret type that redacts itself when marshalled is stored redacted.
//
// # Never dropping an event
//
// Record puts the event on a bounded queue (QueueSize) and blocks while it is full, until its
// context ends: back-pressure, never a silent drop. One goroutine takes events off the queue in
// order, links them into the chain and writes them a batch at a time (BatchSize, or FlushEvery
// after the batch's first event). A batch MongoDB does not take within WriteTimeout is appended
// to a spill file in SpillDir (JSON lines, fsynced per batch). While the spill file exists every
// new batch goes to it too, behind what it holds, and a retry loop (backoff up to a second)
// replays it front to back into MongoDB, then removes it and writes go to MongoDB again: the
// chain reaches MongoDB in order. A replayed event that is already stored (MongoDB took part of
// a batch before failing; a replay was cut short) hits the unique (instance, seq) index and is
// recognized as written. RecordDurable returns once its event is in MongoDB or fsynced to the
// spill file; Close drains the queue; a spill file left behind is replayed by the next writer of
// the same Instance.
//
// # One hash chain per writer instance
//
// Each event carries the hash of the previous event of its chain and its own canonical hash
// (see chain.go), so an edited, deleted or reordered event breaks a link that Verify finds.
// Every writer instance keeps its own chain (Event.Instance, Seq from 1) rather than all
// instances sharing one sequenced chain, because one shared chain would need the instances to
// agree, for every event, on the next position and the previous hash: a round trip to MongoDB
// per event under a lock or a transaction. FerretDB v1 has no transactions and its updates are
// not atomic (README, "Security decisions"), and that coordination would put MongoDB's latency
// on every event and stop every writer while MongoDB is away. A chain per instance needs none of
// it: an instance links its events in memory, appends them with plain inserts (the unique
// (instance, seq) index makes two events at one position impossible), keeps chaining into its
// spill file while MongoDB is down, and each chain verifies on its own. At start an instance
// resumes its chain from its last stored event (or from its spill file, which may go further).
// The instance id must therefore be stable across restarts and unique among live writers.
//
// # Retention
//
// ApplyRetention deletes the oldest events of each chain, always a prefix in Seq order, so what
// remains is still one unbroken chain. Before deleting, it checks that prefix (it never deletes
// the evidence of tampering) and adds an anchor (on MongoDB: collection audit_anchors, _id
// "<instance>/<seq>", Type RETENTION_ANCHOR) holding the Seq and Hash of the last event it
// deletes. Verify starts each chain after its highest anchor: the first remaining event must be
// at anchor Seq+1 and carry the anchor's Hash as PrevHash. The anchor is a separate document, not
// an event appended to the chain, because retention may run in any instance while another
// instance is appending to that chain, and only a chain's own writer may append to it. Anchors
// are only inserted, never updated, so concurrent retention runs cannot move one backwards.
//
// Verify and ApplyRetention are plain Go over two small interfaces (verify.go): ChainReader (list
// the chains, read a chain in Seq order a page at a time, its highest anchor) and ChainPruner
// (add an anchor, delete the head of a chain). MongoStore implements both; audit/storetest is
// the suite of their contracts, beside Store's.
//
// # What a chain shows
//
// Edits, deletions and reorderings of its events. It cannot show events cut from its very end,
// nor from its head by someone who also forges an anchor. The hash is unkeyed: someone with
// write access to MongoDB who edits an event and recomputes every hash after it leaves a
// consistent chain, until the chain's live writer appends its next event (linked to the true
// hash), which then shows out of order. The writer logs its chain head (seq and hash) at start
// and at close: a witness kept outside MongoDB to compare against MongoStore.Last.
package audit
