package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver
)

// Dialect is the SQL flavour of a store.
type Dialect int

// Dialects.
const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgresql"
	}
	return "sqlite"
}

// ErrDatabase is matched (errors.Is) by every error of the database
// itself, as opposed to errors of the input.
var ErrDatabase = errors.New("report database")

type dbError struct {
	name, op string
	err      error
}

func (e *dbError) Error() string {
	if e.op == "" {
		return fmt.Sprintf("report database %s: %v", e.name, e.err)
	}
	return fmt.Sprintf("report database %s: %s: %v", e.name, e.op, e.err)
}
func (e *dbError) Unwrap() []error { return []error{ErrDatabase, e.err} }

func (s *Store) fail(op string, err error) error { return &dbError{s.name, op, err} }

// Store is an open report database.
type Store struct {
	db      *sql.DB
	dialect Dialect
	name    string // for errors: the path, or the URL without its password
	groups  groupCache
}

// IsPostgres reports whether a report_database value names PostgreSQL.
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// Open opens the database dsn names — a postgres:// or postgresql:// URL,
// else the path of an SQLite file, created when missing — and creates the
// tables it lacks. An unreachable server is an error here, not at the
// first query.
func Open(ctx context.Context, dsn string) (*Store, error) {
	s := &Store{name: dsn}
	var err error
	if IsPostgres(dsn) {
		s.dialect = Postgres
		if u, perr := url.Parse(dsn); perr == nil {
			s.name = u.Redacted()
		}
		s.db, err = sql.Open("pgx", dsn)
	} else {
		if dsn == "" {
			return nil, &dbError{"", "", errors.New("no path")}
		}
		// WAL lets a summary read while an import writes; busy_timeout
		// makes a second writer wait instead of failing.
		s.db, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(30000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-65536)&_pragma=temp_store(MEMORY)&_txlock=immediate")
		if err == nil {
			// A reader (the groups of a report) and a writer (its delivery
			// record) at once: WAL lets them.
			s.db.SetMaxOpenConns(4)
		}
	}
	if err != nil {
		return nil, s.fail("", err)
	}
	if err := s.init(ctx); err != nil {
		s.db.Close()
		return nil, s.fail("", err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Dialect returns the store's SQL flavour.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB returns the database handle (for tests and tools).
func (s *Store) DB() *sql.DB { return s.db }

// schema is the tables, in the common subset of SQLite and PostgreSQL
// but for the %s: the gid column (SQLite's rowid, a PostgreSQL
// identity), the binary type (BLOB, BYTEA) and the end of two tables
// (SQLite: WITHOUT ROWID).
//
// report_groups holds each distinct group (groupColumns: what an
// aggregate report counts together) once, keyed by the SHA-256 of its
// values (gkey, 32 bytes). messages holds one narrow row per message: its identity
// — (received, reporter, jobid), as OpenDMARC's schema keys it — and its
// group; the primary key, starting with the arrival time, is also the
// index of the period queries. group_days is the rollup: per UTC day and
// group, the number of messages stored and the latest arrival, updated
// by each import transaction with the rows it actually inserted, so that
// a report reads one row per group and day instead of every message.
// store_meta holds the generation of report_groups, which Expire bumps
// when it deletes groups (importers then forget the ids they cached).
const schema = `
CREATE TABLE IF NOT EXISTS report_groups (
	gid %s,
	gkey %s NOT NULL UNIQUE,
	policy_domain TEXT NOT NULL,
	ip TEXT NOT NULL,
	action INTEGER NOT NULL,
	policy INTEGER NOT NULL,
	align_dkim INTEGER NOT NULL,
	align_spf INTEGER NOT NULL,
	arc_policy INTEGER NOT NULL,
	header_from TEXT NOT NULL,
	envelope_from TEXT NOT NULL,
	spf INTEGER NOT NULL,
	dkim TEXT NOT NULL,
	p INTEGER NOT NULL,
	sp INTEGER NOT NULL,
	pct INTEGER NOT NULL,
	adkim INTEGER NOT NULL,
	aspf INTEGER NOT NULL,
	rua TEXT NOT NULL,
	spf_domain TEXT,
	spf_scope TEXT,
	rcpt_domains TEXT,
	np INTEGER,
	psd INTEGER,
	testing INTEGER,
	fo TEXT,
	ruf TEXT,
	override TEXT
);
CREATE INDEX IF NOT EXISTS report_groups_domain ON report_groups (policy_domain);
CREATE TABLE IF NOT EXISTS messages (
	received BIGINT NOT NULL,
	reporter TEXT NOT NULL,
	jobid TEXT NOT NULL,
	gid BIGINT NOT NULL,
	PRIMARY KEY (received, reporter, jobid)
)%s;
CREATE TABLE IF NOT EXISTS group_days (
	day BIGINT NOT NULL,
	gid BIGINT NOT NULL,
	n BIGINT NOT NULL,
	last_received BIGINT NOT NULL,
	PRIMARY KEY (day, gid)
)%s;
CREATE TABLE IF NOT EXISTS store_meta (
	name TEXT PRIMARY KEY,
	value BIGINT NOT NULL
);
INSERT INTO store_meta (name, value) VALUES ('groups_generation', 0) ON CONFLICT (name) DO NOTHING;
CREATE TABLE IF NOT EXISTS deliveries (
	policy_domain TEXT NOT NULL,
	range_begin BIGINT NOT NULL,
	range_end BIGINT NOT NULL,
	uri TEXT NOT NULL,
	report_id TEXT NOT NULL,
	status TEXT NOT NULL,
	detail TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	updated BIGINT NOT NULL,
	PRIMARY KEY (policy_domain, range_begin, uri)
);
`

// advisoryLock is the PostgreSQL advisory lock key of the schema's
// creation and migration (a session lock); storeLock that of the data:
// import transactions take it shared, Expire exclusive.
const (
	advisoryLock = 7140390
	storeLock    = 7140391
)

// init creates the tables a database lacks, and converts one made by an
// older sidecar (migrate), in one transaction: several importers opening
// the same new or old database at once see it made once.
func (s *Store) init(ctx context.Context) error {
	gid, blob, end := "INTEGER PRIMARY KEY", "BLOB", " WITHOUT ROWID"
	if s.dialect == Postgres {
		gid, blob, end = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", "BYTEA", ""
	}
	stmts := fmt.Sprintf(schema, gid, blob, end, end)
	var tx *sql.Tx
	var err error
	if s.dialect == Postgres {
		// CREATE … IF NOT EXISTS is not safe against itself in
		// PostgreSQL: an advisory lock makes it so.
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+strconv.Itoa(advisoryLock)+")"); err != nil {
			return err
		}
		defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock("+strconv.Itoa(advisoryLock)+")")
		tx, err = conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
	} else if tx, err = s.db.BeginTx(ctx, nil); err != nil { // BEGIN IMMEDIATE
		return err
	}
	defer tx.Rollback()
	old, err := s.tableColumns(ctx, tx, "messages")
	if err != nil {
		return err
	}
	legacy := old["ip"] // the full row of the stores before the rollup
	if legacy {
		if err := s.renameLegacy(ctx, tx); err != nil {
			return err
		}
	}
	for _, st := range strings.Split(stmts, ";") {
		if strings.TrimSpace(st) == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, st); err != nil {
			return err
		}
	}
	if legacy {
		if err := s.migrate(ctx, tx, old); err != nil {
			return fmt.Errorf("converting the messages of an older store: %w", err)
		}
	}
	return tx.Commit()
}

// tableColumns returns the (lower-case) names of table's columns; none
// when there is no such table.
func (s *Store) tableColumns(ctx context.Context, tx *sql.Tx, table string) (map[string]bool, error) {
	q := "SELECT name FROM pragma_table_info(" + s.ph(1) + ")"
	if s.dialect == Postgres {
		q = "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = " + s.ph(1)
	}
	rows, err := tx.QueryContext(ctx, q, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		have[strings.ToLower(n)] = true
	}
	return have, rows.Err()
}

// ph returns the placeholder of the n-th argument (1-based).
func (s *Store) ph(n int) string {
	if s.dialect == Postgres {
		return fmt.Sprintf("$%d", n)
	}
	return "?" // positional: modernc binds "?NNN" by name, slowly
}

// Count returns the number of messages.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM messages").Scan(&n)
	return n, err
}
