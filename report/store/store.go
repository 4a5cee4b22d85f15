package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

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

// schema is the tables, in the common subset of SQLite and PostgreSQL;
// %s ends the messages table (SQLite: WITHOUT ROWID). The nullable
// columns from spf_domain on are those of the sidecar history format
// (extColumns), NULL for a record in OpenDMARC's. The primary key
// is the record's identity and, starting with the arrival time, the
// index of the period queries: one B-tree per message, appended to in
// arrival order.
const schema = `
CREATE TABLE IF NOT EXISTS messages (
	reporter TEXT NOT NULL,
	received BIGINT NOT NULL,
	jobid TEXT NOT NULL,
	ip TEXT NOT NULL,
	header_from TEXT NOT NULL,
	envelope_from TEXT NOT NULL,
	policy_domain TEXT NOT NULL,
	policy INTEGER NOT NULL,
	action INTEGER NOT NULL,
	spf INTEGER NOT NULL,
	dkim TEXT NOT NULL,
	align_dkim INTEGER NOT NULL,
	align_spf INTEGER NOT NULL,
	arc INTEGER NOT NULL,
	arc_policy INTEGER NOT NULL,
	arc_seals TEXT NOT NULL,
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
	override TEXT,
	PRIMARY KEY (received, reporter, jobid)
)%s;
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

func (s *Store) init(ctx context.Context) error {
	end := " WITHOUT ROWID"
	if s.dialect == Postgres {
		end = ""
	}
	stmts := fmt.Sprintf(schema, end)
	if s.dialect == Postgres {
		// Several importers may start at once on an empty database:
		// CREATE … IF NOT EXISTS is not safe against itself in
		// PostgreSQL, an advisory lock makes it so.
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(7140390)"); err != nil {
			return err
		}
		defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock(7140390)")
		if _, err = conn.ExecContext(ctx, stmts); err != nil {
			return err
		}
		return migrate(ctx, conn)
	}
	for _, st := range strings.Split(stmts, ";") {
		if strings.TrimSpace(st) == "" {
			continue
		}
		if _, err := s.db.ExecContext(ctx, st); err != nil {
			return err
		}
	}
	return migrate(ctx, s.db)
}

// extColumns are the columns of the sidecar history format with their
// types: what a database created before them lacks.
var extColumns = [][2]string{
	{"spf_domain", "TEXT"}, {"spf_scope", "TEXT"}, {"rcpt_domains", "TEXT"}, {"np", "INTEGER"}, {"psd", "INTEGER"},
	{"testing", "INTEGER"}, {"fo", "TEXT"}, {"ruf", "TEXT"}, {"override", "TEXT"},
}

// execQueryer is a *sql.DB or a *sql.Conn.
type execQueryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// migrate adds the columns a database made by an older sidecar lacks
// (nullable: its rows are OpenDMARC-format records). Two SQLite
// importers may race here; the loser finds the column made.
func migrate(ctx context.Context, db execQueryer) error {
	have, err := messageColumns(ctx, db)
	if err != nil {
		return err
	}
	for _, c := range extColumns {
		if have[c[0]] {
			continue
		}
		if _, err := db.ExecContext(ctx, "ALTER TABLE messages ADD COLUMN "+c[0]+" "+c[1]); err != nil {
			if again, _ := messageColumns(ctx, db); !again[c[0]] {
				return fmt.Errorf("adding column %s: %w", c[0], err)
			}
		}
	}
	return nil
}

func messageColumns(ctx context.Context, db execQueryer) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, "SELECT * FROM messages WHERE 1 = 0")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, n := range names {
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

// Expire deletes the messages received before t and the delivery records
// of periods that ended before it, and returns how many messages went.
func (s *Store) Expire(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM messages WHERE received < "+s.ph(1), before.Unix())
	if err != nil {
		return 0, s.fail("expire", err)
	}
	n, _ := res.RowsAffected()
	if _, err := s.db.ExecContext(ctx, "DELETE FROM deliveries WHERE range_end < "+s.ph(1), before.Unix()); err != nil {
		return n, s.fail("expire", err)
	}
	return n, nil
}

// Count returns the number of messages.
func (s *Store) Count(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM messages").Scan(&n)
	return n, err
}
