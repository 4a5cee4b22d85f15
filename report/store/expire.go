package store

import (
	"context"
	"database/sql"
	"strconv"
	"time"
)

// Expire deletes the messages received before t, their counts in the
// rollup (the days before t's, and in t's day those of the messages
// deleted), the groups no count refers to any more, and the delivery
// records of periods that ended before t; it returns how many messages
// went. In PostgreSQL it holds the store lock alone, so no import
// transaction runs beside it.
func (s *Store) Expire(ctx context.Context, before time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, s.fail("expire", err)
	}
	defer tx.Rollback()
	n, err := s.expire(ctx, tx, before.Unix())
	if err != nil {
		return 0, s.fail("expire", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, s.fail("expire", err)
	}
	return n, nil
}

func (s *Store) expire(ctx context.Context, tx *sql.Tx, t int64) (int64, error) {
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock("+strconv.Itoa(storeLock)+")"); err != nil {
			return 0, err
		}
	}
	day := dayOf(t)
	if day < t {
		// The messages of t's day that go: the rest of their groups' day
		// stays, with the same latest arrival (at t or after).
		q := &query{s: s}
		if _, err := tx.ExecContext(ctx, "UPDATE group_days SET n = group_days.n - d.k FROM (SELECT gid, COUNT(*) AS k FROM messages"+
			" WHERE received >= "+q.arg(day)+" AND received < "+q.arg(t)+" GROUP BY gid) d WHERE group_days.day = "+q.arg(day)+
			" AND group_days.gid = d.gid", q.args...); err != nil {
			return 0, err
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM group_days WHERE day < "+s.ph(1), day); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM group_days WHERE day = "+s.ph(1)+" AND n <= 0", day); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM messages WHERE received < "+s.ph(1), t)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	unused := "gid NOT IN (SELECT gid FROM group_days)" // SQLite: one pass over group_days into a temporary index
	if s.dialect == Postgres {
		unused = "NOT EXISTS (SELECT 1 FROM group_days d WHERE d.gid = report_groups.gid)" // a hash anti-join
	}
	res, err = tx.ExecContext(ctx, "DELETE FROM report_groups WHERE "+unused)
	if err != nil {
		return 0, err
	}
	if gone, _ := res.RowsAffected(); gone > 0 {
		// Importers forget the ids they cached: SQLite may give a
		// deleted group's gid to the next new one.
		if _, err := tx.ExecContext(ctx, "UPDATE store_meta SET value = value + 1 WHERE name = 'groups_generation'"); err != nil {
			return 0, err
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM deliveries WHERE range_end < "+s.ph(1), t); err != nil {
		return 0, err
	}
	return n, nil
}
