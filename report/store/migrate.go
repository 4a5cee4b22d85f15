package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// A store made before the rollup has one full row per message in
// "messages" (OpenDMARC's fields, and the sidecar format's since that
// format: nullable columns a store older still lacks). Opening it
// converts it, in the transaction that creates the new tables: its rows
// go, page by page in key order, through the import's writer — their
// groups into report_groups, their narrow rows into messages, their
// counts into group_days — and the old table is dropped. The columns
// nothing reads (arc, arc_seals: the ARC result and seals, which no
// report carries) are not kept.

// renameLegacy moves the old messages table aside, as messages_v1.
func (s *Store) renameLegacy(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, "ALTER TABLE messages RENAME TO messages_v1"); err != nil {
		return err
	}
	if s.dialect == Postgres {
		// The primary key's index keeps its name, which the new table's
		// wants.
		_, err := tx.ExecContext(ctx, "ALTER INDEX IF EXISTS messages_pkey RENAME TO messages_v1_pkey")
		return err
	}
	return nil
}

// legacyKinds are the types of groupColumns, in order: s a string, i an
// integer.
const legacyKinds = "ssiiiiissisiiiiis" + "sssiiisss"

// migrate converts messages_v1 (whose columns are have) and drops it.
func (s *Store) migrate(ctx context.Context, tx *sql.Tx, have map[string]bool) error {
	cols := make([]string, 0, nGroupColumns)
	for _, c := range strings.Split(groupColumns, ", ") {
		if !have[c] {
			c = "NULL" // a store from before the sidecar format
		}
		cols = append(cols, c)
	}
	sel := "SELECT received, reporter, jobid, " + strings.Join(cols, ", ") + " FROM messages_v1"
	w := s.newWriter(tx)
	var after []any
	for {
		q, args := sel, after
		if after != nil {
			q += " WHERE (received, reporter, jobid) > (" + s.ph(1) + ", " + s.ph(2) + ", " + s.ph(3) + ")"
		}
		b, last, err := s.legacyPage(ctx, tx, q+" ORDER BY received, reporter, jobid LIMIT "+strconv.Itoa(chunkRecord), args)
		if err != nil {
			return err
		}
		if len(b.rows) == 0 {
			break
		}
		if err := w.write(ctx, b); err != nil {
			return err
		}
		if w.rows >= txRecords {
			// The counts gathered so far go into group_days, so that
			// memory stays flat however many rows the store has.
			if err := w.flush(ctx); err != nil {
				return err
			}
			w.rows = 0
		}
		after = last
	}
	if err := w.flush(ctx); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "DROP TABLE messages_v1")
	return err
}

// legacyPage reads one page of old rows as a batch, and returns the key
// of its last row.
func (s *Store) legacyPage(ctx context.Context, tx *sql.Tx, q string, args []any) (*batch, []any, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		received        int64
		reporter, jobid string
		vals            [nGroupColumns]sql.NullString
		nums            [nGroupColumns]sql.NullInt64
	)
	dest := []any{&received, &reporter, &jobid}
	for k := range nGroupColumns {
		if legacyKinds[k] == 's' {
			dest = append(dest, &vals[k])
		} else {
			dest = append(dest, &nums[k])
		}
	}
	b := newBatch(chunkRecord)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, err
		}
		g := make([]any, nGroupColumns) // nil for NULL
		for k := range g {
			switch {
			case legacyKinds[k] == 's' && vals[k].Valid:
				g[k] = vals[k].String
			case legacyKinds[k] == 'i' && nums[k].Valid:
				g[k] = nums[k].Int64
			}
		}
		start := len(b.keys)
		b.keys = appendArgsKey(b.keys, g)
		b.add(received, reporter, jobid, start)
	}
	return b, []any{received, reporter, jobid}, rows.Err()
}
