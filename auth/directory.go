package auth

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

// The directory: the users of an organization in pages, without a scan.
//
// FerretDB v1 on SQLite filters in the database only an _id equality, and sorts and skips in
// Go after decoding every document: the first page of user_list read all users (4.5 s at
// 100,000), and reading a page's users one _id look-up each costs 50 look-ups. So each
// organization's users also have a directory: chunks of up to dirChunkSize entries, in order of
// creation, each chunk a document of a mongox.Chain (user_directory, _id org/<chunk>/<version>;
// user_directory_heads), whose entry holds what a listing shows (id, email, username, disabled,
// created). A page is one chunk read, sometimes two: two _id look-ups each.
//
// An entry is a copy of the user, so every change writes the entry around the user's own write,
// in an order that makes an interruption harmless: the entry is first marked pending (and must
// be, or the change is refused before the user is touched), then the user is written, then the
// entry is settled with the new values (best effort). A pending entry is never believed: a
// listing reads that user's record (one look-up; pending entries are rare: changes in flight or
// interrupted) and shows it as it is, or not at all if it does not exist. So a listing never
// shows a user that does not exist, never misses one that does (its entry is written first),
// and never shows a value the user does not have.
//
// A user's record says which chunk holds its entry (DirChunk); users that came from a store
// made before the directory have none, and their entry is found by reading the organization's
// chunks (administrator's acts only: update and delete).
//
// A filtered listing (a prefix of email or username) matches entries in memory: it reads at most
// dirScanChunks chunks per call (dirScanChunks*dirChunkSize users), then returns what it found
// with a cursor that continues the scan, so a page may hold fewer than its limit.
type dirChunk struct {
	OrgID string `bson:"org_id"`
	Added int    `bson:"added"` // entries ever added: a chunk takes dirChunkSize, then the next one does
	// Packed holds Entries as one BSON binary: FerretDB v1 converts every field of a document
	// it reads or writes through its own document type, which made a chunk of 128 entries as
	// separate fields cost 15 ms per read; as one binary field, 1.5 ms (and at 64 entries, 1 ms).
	Packed  []byte     `bson:"entries"`
	Entries []dirEntry `bson:"-"`
}

// Tombstone keeps the organization (mongox.Tombstoner).
func (d dirChunk) Tombstone() dirChunk { return dirChunk{OrgID: d.OrgID} }

type packedEntries struct {
	E []dirEntry `bson:"e"`
}

func (d *dirChunk) unpack() error {
	d.Entries = nil
	if len(d.Packed) == 0 {
		return nil
	}
	var p packedEntries
	if err := bson.Unmarshal(d.Packed, &p); err != nil {
		return fmt.Errorf("read directory chunk: %w", err)
	}
	d.Entries = p.E
	return nil
}

func (d *dirChunk) pack() error {
	b, err := bson.Marshal(packedEntries{E: d.Entries})
	if err != nil {
		return fmt.Errorf("write directory chunk: %w", err)
	}
	d.Packed = b
	return nil
}

// dirChange is s.dir.Change on the unpacked entries.
func (s *MongoStore) dirChange(ctx context.Context, key string, edit func(d *dirChunk) error) error {
	return s.dir.Change(ctx, key, func(d *dirChunk) error {
		if err := d.unpack(); err != nil {
			return err
		}
		if err := edit(d); err != nil {
			return err
		}
		return d.pack()
	})
}

// dirLatest is s.dir.Latest, unpacked.
func (s *MongoStore) dirLatest(ctx context.Context, key string) (mongox.Version[dirChunk], error) {
	v, err := s.dir.Latest(ctx, key)
	if err != nil {
		return v, err
	}
	return v, v.Body.unpack()
}

type dirEntry struct {
	Seq       int       `bson:"seq"` // the entry's place in its chunk, 1..dirChunkSize; a cursor points at one
	ID        string    `bson:"id"`
	Email     string    `bson:"email"`
	Username  string    `bson:"username,omitempty"`
	Disabled  bool      `bson:"disabled"`
	CreatedAt time.Time `bson:"created_at"`
	Pending   bool      `bson:"pending,omitempty"`
}

const (
	dirChunkSize  = 64
	dirScanChunks = 32
	// dirKeep: a chunk changes at each create, update and delete of its users.
	dirKeep = 32
	// directoryV1 marks a store whose users all have their directory entries.
	directoryV1 = "meta:directory-v1"
)

func orgOf(orgID string) string {
	if orgID == "" {
		return DefaultOrgID
	}
	return orgID
}

func chunkKey(orgID string, chunk int64) string {
	return mongox.Key(orgOf(orgID), fmt.Sprintf("%08d", chunk))
}

// dirTail is the hint of an organization's last chunk (a plain replace: it may lag, and the
// chunks after it are found by looking).
type dirTail struct {
	ID    string `bson:"_id"`
	Chunk int64  `bson:"chunk"`
}

func entryOf(u User, seq int) dirEntry {
	return dirEntry{Seq: seq, ID: u.ID, Email: u.Email, Username: u.Username, Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

// dirAdd writes a pending entry for u at the end of its organization's directory and returns
// the chunk that holds it.
func (s *MongoStore) dirAdd(ctx context.Context, u User) (int64, error) {
	org := orgOf(u.OrgID)
	chunk := int64(1)
	if t, err := findOne[dirTail](ctx, s.dirTails, mongox.ByID(org), "directory"); err == nil && t.Chunk > 0 {
		chunk = t.Chunk
	} else if err != nil && !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	for start := chunk; ; chunk++ {
		full := false
		err := s.dirChange(ctx, chunkKey(org, chunk), func(d *dirChunk) error {
			if full = d.Added >= dirChunkSize; full {
				return mongox.ErrUnchanged
			}
			d.OrgID = org
			d.Added++
			e := entryOf(u, d.Added)
			e.Pending = true
			d.Entries = append(d.Entries, e)
			return nil
		})
		if err != nil {
			return 0, err
		}
		if full {
			continue
		}
		if chunk != start {
			_, _ = s.dirTails.ReplaceOne(ctx, mongox.ByID(org), dirTail{ID: org, Chunk: chunk}, options.Replace().SetUpsert(true))
		}
		return chunk, nil
	}
}

// dirEdit applies edit to u's entry (found through u.DirChunk, or by reading the organization's
// chunks); edit returns true to remove the entry. A user without an entry is no error: there
// is nothing to keep in step.
func (s *MongoStore) dirEdit(ctx context.Context, u User, edit func(e *dirEntry) (remove bool)) error {
	chunk := u.DirChunk
	if chunk == 0 {
		var err error
		if chunk, err = s.dirFind(ctx, u); err != nil || chunk == 0 {
			return err
		}
	}
	return s.dirChange(ctx, chunkKey(u.OrgID, chunk), func(d *dirChunk) error {
		i := slices.IndexFunc(d.Entries, func(e dirEntry) bool { return e.ID == u.ID })
		if i < 0 {
			return mongox.ErrUnchanged
		}
		if edit(&d.Entries[i]) {
			d.Entries = slices.Delete(d.Entries, i, i+1)
		}
		return nil
	})
}

// dirFind returns the chunk that holds u's entry (0 if none), reading its organization's chunks.
func (s *MongoStore) dirFind(ctx context.Context, u User) (int64, error) {
	for chunk := int64(1); ; chunk++ {
		v, err := s.dirLatest(ctx, chunkKey(u.OrgID, chunk))
		if err != nil {
			return 0, err
		}
		if v.Version == 0 {
			return 0, nil
		}
		if slices.ContainsFunc(v.Body.Entries, func(e dirEntry) bool { return e.ID == u.ID }) {
			return chunk, nil
		}
	}
}

func markPending(e *dirEntry) bool { e.Pending = true; return false }

// dirSettle writes u's values into its entry and clears pending (best effort: a pending entry
// is read from the user's record).
func (s *MongoStore) dirSettle(ctx context.Context, u User) {
	_ = s.dirEdit(ctx, u, func(e *dirEntry) bool {
		*e = entryOf(u, e.Seq)
		return false
	})
}

// dirSettleFrom settles the entry of was from the user's record as it now is (best effort).
func (s *MongoStore) dirSettleFrom(ctx context.Context, was User) {
	u, err := s.GetUser(ctx, was.ID)
	if err != nil {
		return
	}
	s.dirSettle(ctx, u)
}

// userCursor is a place in an organization's directory: after entry Seq of chunk Chunk.
type userCursor struct {
	Chunk int64
	Seq   int
}

func (c userCursor) String() string { return fmt.Sprintf("%d.%d", c.Chunk, c.Seq) }

// parseUserCursor reads what userCursor.String wrote.
func parseUserCursor(s string) (userCursor, bool) {
	a, b, ok := strings.Cut(s, ".")
	if !ok {
		return userCursor{}, false
	}
	chunk, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || chunk < 1 || seq < 0 {
		return userCursor{}, false
	}
	return userCursor{Chunk: chunk, Seq: seq}, true
}

// ListUsers pages an organization's users in order of creation, from its directory.
func (s *MongoStore) ListUsers(ctx context.Context, q UserQuery) ([]User, string, error) {
	at := userCursor{Chunk: 1}
	if q.After != "" {
		var ok bool
		if at, ok = parseUserCursor(q.After); !ok {
			return nil, "", fmt.Errorf("user cursor %q: %w", q.After, ErrInvalidCursor)
		}
	}
	if q.Limit <= 0 {
		q.Limit = DefaultPageSize
	}
	org := orgOf(q.OrgID)
	var out []User
	last := at
	for read := 0; ; read++ {
		if q.Prefix != "" && read == dirScanChunks {
			return out, userCursor{Chunk: at.Chunk}.String(), nil
		}
		v, err := s.dirLatest(ctx, chunkKey(org, at.Chunk))
		if err != nil {
			return nil, "", err
		}
		if v.Version == 0 { // past the last chunk
			return out, "", nil
		}
		for _, e := range v.Body.Entries {
			if e.Seq <= at.Seq {
				continue
			}
			u, ok, err := s.believe(ctx, org, e)
			if err != nil {
				return nil, "", err
			}
			if !ok || !hasPrefix(u, q.Prefix) {
				continue
			}
			if len(out) == q.Limit {
				return out, last.String(), nil
			}
			out = append(out, u)
			last = userCursor{Chunk: at.Chunk, Seq: e.Seq}
		}
		at = userCursor{Chunk: at.Chunk + 1}
	}
}

// believe returns the user an entry shows: the entry itself, or for a pending one the user's
// record (ok false if it does not exist, or is no longer in org).
func (s *MongoStore) believe(ctx context.Context, org string, e dirEntry) (User, bool, error) {
	if !e.Pending {
		return User{ID: e.ID, Email: e.Email, Username: e.Username, OrgID: org, Disabled: e.Disabled, CreatedAt: e.CreatedAt}, true, nil
	}
	u, err := s.GetUser(ctx, e.ID)
	if errors.Is(err, ErrNotFound) {
		return User{}, false, nil
	}
	if err != nil {
		return User{}, false, err
	}
	u.PasswordHash = nil
	return u, orgOf(u.OrgID) == org, nil
}

func hasPrefix(u User, prefix string) bool {
	return prefix == "" || strings.HasPrefix(u.Email, prefix) || (u.Username != "" && strings.HasPrefix(u.Username, prefix))
}

// dirBackfill gives every user of a store made before the directory its entry, once: the
// users of each organization in order of creation, dirChunkSize to a chunk. Chunks are written
// as their first version; a chunk that a server already running wrote meanwhile (its users
// created during the backfill) gets the missing entries added to it instead.
func (s *MongoStore) dirBackfill(ctx context.Context) error {
	if done, err := mongox.Migrated(ctx, s.dirTails, directoryV1); done || err != nil {
		return err
	}
	all, err := mongox.FindAll[User](ctx, s.users, bson.D{}, options.Find().SetProjection(bson.D{{Key: "password_hash", Value: 0}}), "users")
	if err != nil {
		return fmt.Errorf("backfill directory: %w", err)
	}
	byOrg := map[string][]User{}
	for _, u := range all {
		byOrg[orgOf(u.OrgID)] = append(byOrg[orgOf(u.OrgID)], u)
	}
	for org, users := range byOrg {
		slices.SortFunc(users, func(a, b User) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		for i := 0; i < len(users); i += dirChunkSize {
			part := users[i:min(i+dirChunkSize, len(users))]
			chunk := int64(i/dirChunkSize + 1)
			if err := s.dirBackfillChunk(ctx, org, chunk, part); err != nil {
				return err
			}
		}
	}
	return mongox.MarkMigrated(ctx, s.dirTails, directoryV1)
}

func (s *MongoStore) dirBackfillChunk(ctx context.Context, org string, chunk int64, users []User) error {
	body := dirChunk{OrgID: org, Added: len(users)}
	for i, u := range users {
		body.Entries = append(body.Entries, entryOf(u, i+1))
	}
	if err := body.pack(); err != nil {
		return err
	}
	key := chunkKey(org, chunk)
	if created, err := s.dir.Begin(ctx, key, body); err != nil || created {
		return err
	}
	// Written already: by an earlier, interrupted backfill (then its entries are there) or by a
	// running server's create. Add whoever is missing, after what is there.
	return s.dirChange(ctx, key, func(d *dirChunk) error {
		added := false
		for _, u := range users {
			if !slices.ContainsFunc(d.Entries, func(e dirEntry) bool { return e.ID == u.ID }) {
				d.Added++
				d.Entries = append(d.Entries, entryOf(u, d.Added))
				added = true
			}
		}
		if !added {
			return mongox.ErrUnchanged
		}
		return nil
	})
}
