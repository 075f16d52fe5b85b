package embedmongo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the SQLite driver FerretDB itself uses (database/sql "sqlite")
)

// The _id index FerretDB v1.24's SQLite backend needs and does not make.
//
// FerretDB filters an _id equality with `_ferretdb_sjson->'$._id' = ?`, but creates each
// collection's unique _id index on `_ferretdb_sjson->"_id"`; SQLite's planner does not take the
// two expressions for the same, so every lookup by _id was a scan of the whole table (83 ms at
// 20,000 documents; EXPLAIN QUERY PLAN: SCAN). An index on the exact expression the queries use
// turns it into SEARCH ... USING INDEX (about 1 ms at any size).
//
// The index lives in FerretDB's own SQLite files, one per database, beside the tables FerretDB
// lists in its _ferretdb_collections table; FerretDB knows nothing of it (it reads its indexes
// from its own metadata), SQLite keeps it up to date on every write, and dropping the
// collection drops it. It is added when the server starts, whenever IndexIDs is called (after
// the stores create their collections) and every indexEvery while the server runs (for
// collections created later). Remove this file once FerretDB builds its _id index on the
// expression its queries use (FerretDB v2 stores documents differently and does not have the
// mismatch).
const (
	idIndexSuffix = "_mcpauth_id"
	idExpression  = `_ferretdb_sjson->'$._id'`
	indexEvery    = 10 * time.Second
)

// withoutIDIndex are the collections left as FerretDB makes them: the audit trail's events, whose
// inserts are the store's heaviest write (the writer's throughput target) and whose reads are
// ordered scans (verification, search), never a look-up by _id on a hot path; the index would
// cost every insert about a tenth and serve only the rare check of a replayed event.
var withoutIDIndex = map[string]bool{"audit_events": true}

// idIndexer adds the index to the tables of the SQLite files under dir.
type idIndexer struct {
	dir string
	mu  sync.Mutex
	dbs map[string]*sql.DB // by file
}

// IndexIDs adds the _id index to every collection of the embedded store that lacks it, and
// reports how many it added.
func (s *Server) IndexIDs(ctx context.Context) (int, error) { return s.ids.run(ctx) }

func (x *idIndexer) run(ctx context.Context) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	files, err := filepath.Glob(filepath.Join(x.dir, "*.sqlite"))
	if err != nil {
		return 0, fmt.Errorf("embedded store: %w", err)
	}
	added := 0
	var errs []error
	for _, f := range files {
		n, err := x.indexFile(ctx, f)
		added += n
		if err != nil {
			errs = append(errs, fmt.Errorf("index _id in %s: %w", filepath.Base(f), err))
		}
	}
	return added, errors.Join(errs...)
}

func (x *idIndexer) indexFile(ctx context.Context, file string) (int, error) {
	db, ok := x.dbs[file]
	if !ok {
		var err error
		// FerretDB's own settings: WAL, and a busy timeout so that an index being added waits
		// for FerretDB's writes instead of failing.
		if db, err = sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"); err != nil {
			return 0, err
		}
		db.SetMaxOpenConns(1)
		x.dbs[file] = db
	}
	tables, err := collectionTables(ctx, db)
	if err != nil {
		return 0, err
	}
	added := 0
	for _, t := range tables {
		var exists int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, t+idIndexSuffix).Scan(&exists); err != nil {
			return added, err
		}
		if exists > 0 {
			continue
		}
		q := fmt.Sprintf(`CREATE UNIQUE INDEX IF NOT EXISTS %q ON %q (%s)`, t+idIndexSuffix, t, idExpression)
		if _, err := db.ExecContext(ctx, q); err != nil {
			if strings.Contains(err.Error(), "no such table") { // dropped since it was listed
				continue
			}
			return added, err
		}
		added++
	}
	return added, nil
}

// collectionTables lists the tables FerretDB keeps collections in (an empty list for a file
// FerretDB has not finished creating).
func collectionTables(ctx context.Context, db *sql.DB) ([]string, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_ferretdb_collections'`).Scan(&n); err != nil || n == 0 {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, `SELECT name, table_name FROM _ferretdb_collections`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var name, t string
		if err := rows.Scan(&name, &t); err != nil {
			return nil, err
		}
		if !withoutIDIndex[name] {
			tables = append(tables, t)
		}
	}
	return tables, rows.Err()
}

// close closes the files it opened.
func (x *idIndexer) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, db := range x.dbs {
		_ = db.Close()
	}
	x.dbs = nil
}
