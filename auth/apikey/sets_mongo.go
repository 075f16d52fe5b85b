package apikey

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/bduf/mcpauth/internal/mongox"
)

// A user's keys, listed in two _id look-ups for the set and two per key.
//
// FerretDB v1 on SQLite pushes down only an _id equality, so a filter on user_id scanned every
// key of every user, and any authenticated user could make it (apikey_list, and apikey_create,
// which counts the caller's keys). Instead each user has a key set, a document of a
// mongox.Chain: api_key_sets holds one document per version, _id <user>/<version>, with the
// ids of the user's keys, oldest first (the last setVersionsKept versions are kept), and
// api_key_set_heads a recent copy, where a read starts. A listing reads the set, then each key
// by _id and its revocation by _id.
//
// A create enters the key in its user's set first, then inserts the key record. An interrupted
// create leaves an entry without a record, which a listing skips and which the cap counts only
// for setGrace (a create in flight; older, a left-over); the other order would leave a key that
// works but is not listed, which its user could neither see nor revoke.
//
// The cap is checked inside the change of the set, so it is exact: concurrent creates change
// the set one at a time (the chain's unique insert), and each counts the entries written before
// it. The set stays bounded: past maxSetEntries, a create drops its oldest revoked or expired
// entries (their records stay, and still authenticate nothing; they are only no longer listed).
type keySet struct {
	UserID string     `bson:"user_id"` // for EraseUser, which selects the versions by it
	Keys   []setEntry `bson:"keys"`    // oldest first
}

// Tombstone keeps what EraseUser filters on (mongox.Tombstoner): a pruned version is still erased.
func (k keySet) Tombstone() keySet { return keySet{UserID: k.UserID} }

// setEntry is a key in its user's set, with what the cap needs to know without reading the key.
// It is stored as one string (MarshalBSONValue), not a subdocument.
type setEntry struct {
	ID        string
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	// Revoked caches that the key's revocation record exists, learnt by a create that had to
	// look (a revocation is never undone), so later creates do not look again. The revocation
	// record stays the only truth of revocation; a false Revoked says nothing.
	Revoked bool
}

// MarshalBSONValue stores e as "<created ms> <expires ms, 0: never> <r if revoked, else -> <id>",
// the id last so that it may hold anything. FerretDB v1 keeps a schema beside each subdocument,
// and a set of a hundred subdocuments cost three to five times as much to read and write as a
// hundred strings (each create reads and writes the whole set).
func (e setEntry) MarshalBSONValue() (byte, []byte, error) {
	var expires int64
	if !e.ExpiresAt.IsZero() {
		expires = e.ExpiresAt.UnixMilli()
	}
	revoked := "-"
	if e.Revoked {
		revoked = "r"
	}
	t, data, err := bson.MarshalValue(fmt.Sprintf("%d %d %s %s", e.CreatedAt.UnixMilli(), expires, revoked, e.ID))
	return byte(t), data, err
}

// UnmarshalBSONValue reads what MarshalBSONValue stores.
func (e *setEntry) UnmarshalBSONValue(t byte, data []byte) error {
	var str string
	if err := bson.UnmarshalValue(bson.Type(t), data, &str); err != nil {
		return fmt.Errorf("api key set entry: %w", err)
	}
	parts := strings.SplitN(str, " ", 4)
	if len(parts) != 4 {
		return fmt.Errorf("api key set entry %q: malformed", str)
	}
	created, err1 := strconv.ParseInt(parts[0], 10, 64)
	expires, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("api key set entry %q: %w", str, err)
	}
	*e = setEntry{ID: parts[3], CreatedAt: time.UnixMilli(created).UTC(), Revoked: parts[2] == "r"}
	if expires != 0 {
		e.ExpiresAt = time.UnixMilli(expires).UTC()
	}
	return nil
}

// maxSetEntries bounds a user's set: twice the live keys allowed, so a user sees the keys they
// recently revoked or let expire beside their live ones.
const maxSetEntries = 2 * MaxPerUser

// setVersionsKept is how many versions of a set the chain keeps: each create writes one with
// the whole set (up to maxSetEntries entries), so keeping them all would grow with the square
// of a user's creates; 32 is the chain's margin for heads that lag (see mongox.Chain).
const setVersionsKept = 32

// setGrace is how long an entry whose key record does not exist counts as a create in flight
// (live, for the cap) rather than a left-over of an interrupted one.
const setGrace = time.Minute

// backfilledSetsV1 marks a store whose keys are all in their users' sets (stores made before the
// sets existed get them once, at the first start). Its '/' keeps it apart from every user's head,
// whose _id is the escaped user id.
const backfilledSetsV1 = "meta/backfilled-v1"

// setKey is the chain key of userID's set: escaped, so that no user id can end like another's
// version (the chain appends /<version>).
func setKey(userID string) string { return mongox.Key(userID) }

func entryOf(k Key) setEntry {
	return setEntry{ID: k.ID, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt}
}

func (e setEntry) expired(now time.Time) bool {
	return !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt)
}

// enter adds k to its user's set, unless the user has MaxPerUser live keys (ErrTooManyKeys):
// keys neither revoked nor expired at k.CreatedAt, entries of creates in flight included. It
// reports whether this call added the entry (false: a retry of a create already entered).
func (s *MongoStore) enter(ctx context.Context, k Key) (bool, error) {
	added := false
	err := s.sets.Change(ctx, setKey(k.UserID), func(set *keySet) error {
		added = false // the edit may run again, on a fresher set
		set.UserID = k.UserID
		if slices.ContainsFunc(set.Keys, func(e setEntry) bool { return e.ID == k.ID }) {
			return mongox.ErrUnchanged
		}
		full, err := s.atCap(ctx, k.UserID, set.Keys, k.CreatedAt)
		if err != nil {
			return err
		}
		if full {
			return fmt.Errorf("api keys of %s: %w", k.UserID, ErrTooManyKeys)
		}
		set.Keys = append(set.Keys, entryOf(k))
		if set.Keys, err = s.prune(ctx, k.UserID, set.Keys, k.CreatedAt); err != nil {
			return err
		}
		added = true
		return nil
	})
	return added, err
}

// leave takes id out of userID's set again, after its record could not be inserted. Best
// effort: an entry left behind is skipped by a listing and counts for setGrace only.
func (s *MongoStore) leave(ctx context.Context, userID, id string) {
	_ = s.sets.Change(ctx, setKey(userID), func(set *keySet) error {
		i := slices.IndexFunc(set.Keys, func(e setEntry) bool { return e.ID == id })
		if i < 0 {
			return mongox.ErrUnchanged
		}
		set.Keys = slices.Delete(set.Keys, i, i+1)
		return nil
	})
}

// atCap reports whether entries hold MaxPerUser live keys at now. It looks up no more than the
// answer needs: nothing while the entries not known to be expired or revoked are fewer than the
// cap (the usual case), then the revocations of those (marking the revoked ones), then whether
// the key records of those older than setGrace exist.
func (s *MongoStore) atCap(ctx context.Context, userID string, entries []setEntry, now time.Time) (bool, error) {
	var open []*setEntry
	for i := range entries {
		if e := &entries[i]; !e.Revoked && !e.expired(now) {
			open = append(open, e)
		}
	}
	if len(open) < MaxPerUser {
		return false, nil
	}
	if err := s.markRevoked(ctx, open); err != nil {
		return false, err
	}
	open = slices.DeleteFunc(open, func(e *setEntry) bool { return e.Revoked })
	if len(open) < MaxPerUser {
		return false, nil
	}
	// A young entry is live whether or not its record is written yet: only the older ones'
	// records are looked up.
	var old []*setEntry
	for _, e := range open {
		if now.Sub(e.CreatedAt) >= setGrace {
			old = append(old, e)
		}
	}
	stored, err := s.stored(ctx, userID, old)
	if err != nil {
		return false, err
	}
	live := len(open) - len(old)
	for _, e := range old {
		if stored[e.ID] {
			live++
		}
	}
	return live >= MaxPerUser, nil
}

// prune drops, oldest first, the entries that are not live at now until at most maxSetEntries
// remain, looking up each one's state only as it gets to it (usually the oldest is expired or
// known revoked, and nothing is looked up). The live ones number at most MaxPerUser, fewer than
// maxSetEntries, so it always gets there.
func (s *MongoStore) prune(ctx context.Context, userID string, entries []setEntry, now time.Time) ([]setEntry, error) {
	excess := len(entries) - maxSetEntries
	if excess <= 0 {
		return entries, nil
	}
	kept := make([]setEntry, 0, maxSetEntries)
	for i := range entries {
		e := &entries[i]
		if excess == 0 {
			kept = append(kept, entries[i:]...)
			break
		}
		live, err := s.live(ctx, userID, e, now)
		if err != nil {
			return nil, err
		}
		if live {
			kept = append(kept, *e)
		} else {
			excess--
		}
	}
	return kept, nil
}

// live reports whether one entry is a live key at now (or a create in flight), marking it if
// it turns out revoked.
func (s *MongoStore) live(ctx context.Context, userID string, e *setEntry, now time.Time) (bool, error) {
	if e.Revoked || e.expired(now) {
		return false, nil
	}
	if err := s.markRevoked(ctx, []*setEntry{e}); err != nil || e.Revoked {
		return false, err
	}
	if now.Sub(e.CreatedAt) < setGrace {
		return true, nil
	}
	stored, err := s.stored(ctx, userID, []*setEntry{e})
	if err != nil {
		return false, err
	}
	return stored[e.ID], nil
}

// markRevoked sets Revoked on the entries whose revocation record exists.
func (s *MongoStore) markRevoked(ctx context.Context, entries []*setEntry) error {
	found, err := mongox.FindByIDs[revocation](ctx, s.revoked, entryIDs(entries), s.byIDs, "api key revocations")
	if err != nil {
		return err
	}
	revoked := make(map[string]bool, len(found))
	for _, r := range found {
		revoked[r.KeyID] = true
	}
	for _, e := range entries {
		if revoked[e.ID] {
			e.Revoked = true
		}
	}
	return nil
}

// stored says which entries have a key record, and of userID (an entry whose id turned out to
// be another user's key, a create refused as a duplicate, is not userID's key).
func (s *MongoStore) stored(ctx context.Context, userID string, entries []*setEntry) (map[string]bool, error) {
	found, err := mongox.FindByIDs[Key](ctx, s.keys, entryIDs(entries), s.byIDs, "api keys")
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(found))
	for _, k := range found {
		out[k.ID] = k.UserID == userID
	}
	return out, nil
}

func entryIDs(entries []*setEntry) []string {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	return ids
}

// backfill enters every key of a store made before the sets existed in its user's set, once.
// Each user's keys are merged into the set's latest version (not written as a first version),
// so keys created meanwhile, or entered by an interrupted earlier backfill, are kept, and
// running it again changes nothing. Neither the cap nor the bound applies: the keys exist.
func (s *MongoStore) backfill(ctx context.Context) error {
	if done, err := mongox.Migrated(ctx, s.sets.Heads(), backfilledSetsV1); done || err != nil {
		return err
	}
	all, err := mongox.FindAll[Key](ctx, s.keys, bson.D{}, options.Find().SetProjection(
		bson.D{{Key: "user_id", Value: 1}, {Key: "created_at", Value: 1}, {Key: "expires_at", Value: 1}}), "api keys")
	if err != nil {
		return fmt.Errorf("backfill api key sets: %w", err)
	}
	byUser := map[string][]setEntry{}
	for _, k := range all {
		byUser[k.UserID] = append(byUser[k.UserID], entryOf(k))
	}
	for userID, entries := range byUser {
		err := s.sets.Change(ctx, setKey(userID), func(set *keySet) error {
			set.UserID = userID
			n := len(set.Keys)
			for _, e := range entries {
				if !slices.ContainsFunc(set.Keys, func(f setEntry) bool { return f.ID == e.ID }) {
					set.Keys = append(set.Keys, e)
				}
			}
			if len(set.Keys) == n {
				return mongox.ErrUnchanged
			}
			slices.SortStableFunc(set.Keys, compareEntries)
			return nil
		})
		if err != nil {
			return fmt.Errorf("backfill api key sets: %w", err)
		}
	}
	return mongox.MarkMigrated(ctx, s.sets.Heads(), backfilledSetsV1)
}

// compareEntries orders entries as listings are: by creation, then id.
func compareEntries(a, b setEntry) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}
