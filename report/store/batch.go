package store

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"strings"
	"sync"
)

// batch is the messages one transaction stores: their identities and
// the keys of their groups.
// A chunk holds no records: a group's column values, needed only when
// the store does not know it yet, are decoded from its key.
type batch struct {
	rows []batchRow
	keys []byte // the rows' group keys, one after another
}

type batchRow struct {
	received         int64
	reporter, jobid  string
	keyStart, keyEnd int
	gid              int64 // set by writeBatch
}

// newBatch returns a batch with room for n messages.
func newBatch(n int) *batch {
	return &batch{rows: make([]batchRow, 0, n), keys: make([]byte, 0, n*128)}
}

// add adds a message whose group key the caller appended to b.keys
// from offset start on.
func (b *batch) add(received int64, reporter, jobid string, start int) {
	b.rows = append(b.rows, batchRow{received: received, reporter: reporter, jobid: jobid, keyStart: start, keyEnd: len(b.keys)})
}

func (b *batch) key(r *batchRow) []byte { return b.keys[r.keyStart:r.keyEnd] }

// groupCache maps group keys to their gid, for the groups of committed
// transactions. Expire may delete groups (and SQLite reuse their gids):
// it bumps store_meta's groups_generation, and a cache that finds another
// generation at the start of a transaction is emptied.
type groupCache struct {
	mu         sync.Mutex
	generation int64
	ids        map[string]int64
}

// maxCachedGroups bounds the cache; it starts again when full.
const maxCachedGroups = 1 << 20

// sync empties the cache unless it is of generation gen.
func (c *groupCache) sync(gen int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.generation != gen || c.ids == nil || len(c.ids) > maxCachedGroups {
		c.generation, c.ids = gen, map[string]int64{}
	}
}

// merge adds the groups a transaction of generation gen committed.
func (c *groupCache) merge(gen int64, fresh map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.generation != gen {
		return
	}
	for k, id := range fresh {
		c.ids[k] = id
	}
}

// Statement sizes: rows per multi-row statement, under SQLite's 32766
// and PostgreSQL's 65535 parameters.
const (
	messageRows = 1000 // 4 parameters each
	dayRows     = 1000 // 4 parameters each
	groupRows   = 500  // 27 parameters each
)

// txWriter writes batches into one transaction: each batch's groups
// (those the store lacks) and messages as it comes, and at the end
// (flush) the counts of the messages it actually inserted into
// group_days, summed over all its batches: a transaction of many batches
// updates each of its groups' day once.
//
// Concurrent importers into PostgreSQL, one batch per transaction, take
// their locks in one global order — report_groups by gkey, messages by
// key, group_days by (day, gid) — and so cannot deadlock; a message two
// of them insert at once is inserted, and counted, by one.
type txWriter struct {
	s     *Store
	tx    *sql.Tx
	stmts [nStmts]*sql.Stmt // the full statements, prepared in tx when first used
	known map[string]int64  // group ids valid in tx (added by it, or found)
	days  map[dayGroup]dayCount
	added int64 // messages inserted
	rows  int   // messages written
}

func (s *Store) newWriter(tx *sql.Tx) *txWriter {
	return &txWriter{s: s, tx: tx, known: map[string]int64{}, days: map[dayGroup]dayCount{}}
}

// write writes b's groups and messages (in key order).
func (w *txWriter) write(ctx context.Context, b *batch) error {
	if err := w.resolveGroups(ctx, b); err != nil {
		return err
	}
	// Stable: of two records with one key, the first in the file is
	// stored, as ever.
	slices.SortStableFunc(b.rows, func(x, y batchRow) int {
		if c := cmp.Compare(x.received, y.received); c != 0 {
			return c
		}
		if c := strings.Compare(x.reporter, y.reporter); c != 0 {
			return c
		}
		return strings.Compare(x.jobid, y.jobid)
	})
	for rows := b.rows; len(rows) > 0; {
		n := min(len(rows), messageRows)
		k, err := w.insertMessages(ctx, rows[:n])
		if err != nil {
			return err
		}
		w.added += k
		rows = rows[n:]
	}
	w.rows += len(b.rows)
	return nil
}

// flush adds the counts gathered to group_days.
func (w *txWriter) flush(ctx context.Context) error {
	err := w.addDays(ctx)
	clear(w.days)
	return err
}

// resolveGroups sets the gid of b's rows, adding the groups the store
// lacks.
func (w *txWriter) resolveGroups(ctx context.Context, b *batch) error {
	s, known := w.s, w.known
	var missing []int // a row of each group not known
	seen := map[string]bool{}
	s.groups.mu.Lock()
	for i := range b.rows {
		r := &b.rows[i]
		k := b.key(r)
		if id, ok := s.groups.ids[string(k)]; ok {
			r.gid = id
		} else if id, ok := known[string(k)]; ok {
			r.gid = id
		} else if !seen[string(k)] {
			seen[string(k)] = true
			missing = append(missing, i)
		}
	}
	s.groups.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	if err := w.addGroups(ctx, b, missing); err != nil {
		return err
	}
	for i := range b.rows {
		if r := &b.rows[i]; r.gid == 0 {
			r.gid = known[string(b.key(r))]
		}
	}
	return nil
}

// addGroups inserts the groups of b's rows missing, in gkey order, and
// puts their ids into known: those it inserted, and those another
// importer did.
func (w *txWriter) addGroups(ctx context.Context, b *batch, missing []int) error {
	groups := make([]hashedKey, len(missing))
	byHash := make(map[string]string, len(missing))
	for i, row := range missing {
		k := string(b.key(&b.rows[row]))
		groups[i] = hashedKey{keyHash(k), k}
		byHash[groups[i].hash] = k
	}
	slices.SortFunc(groups, func(x, y hashedKey) int { return strings.Compare(x.hash, y.hash) })
	for rest := groups; len(rest) > 0; {
		n := min(len(rest), groupRows)
		args := make([]any, 0, n*(1+nGroupColumns))
		for _, g := range rest[:n] {
			vals, err := decodeKey([]byte(g.key))
			if err != nil {
				return err
			}
			args = append(append(args, []byte(g.hash)), vals...)
		}
		if err := w.scanIDs(ctx, stmtGroups, n, args, byHash); err != nil {
			return err
		}
		rest = rest[n:]
	}
	// The groups another importer inserted first.
	var others []any
	for _, g := range groups {
		if _, ok := w.known[g.key]; !ok {
			others = append(others, []byte(g.hash))
		}
	}
	for len(others) > 0 {
		n := min(len(others), groupRows)
		if err := w.scanIDs(ctx, stmtGroupIDs, n, others[:n], byHash); err != nil {
			return err
		}
		others = others[n:]
	}
	return nil
}

// hashedKey is a group key and its hash (keyHash's bytes).
type hashedKey struct{ hash, key string }

// scanIDs runs a statement returning (gid, gkey) rows and puts the ids
// into known, by the keys of the hashes.
func (w *txWriter) scanIDs(ctx context.Context, kind, n int, args []any, byHash map[string]string) error {
	rows, err := w.query(ctx, kind, n, args)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var h []byte
		if err := rows.Scan(&id, &h); err != nil {
			return err
		}
		w.known[byHash[string(h)]] = id
	}
	return rows.Err()
}

// dayGroup is a row of group_days: the start of a UTC day (Unix seconds)
// and a group.
type dayGroup struct{ day, gid int64 }

type dayCount struct{ n, last int64 }

// dayOf is the start of the UTC day of the Unix time t.
func dayOf(t int64) int64 {
	d := t % 86400
	if d < 0 {
		d += 86400
	}
	return t - d
}

// insertMessages inserts rows (at most messageRows) and counts those it
// inserted into days. The statement tells how many it inserted, not
// which: when that is some but not all (a file imported again after it
// grew, another importer at the same place), it is undone to a savepoint
// and run again returning the rows it inserts.
func (w *txWriter) insertMessages(ctx context.Context, rows []batchRow) (int64, error) {
	tx, days := w.tx, w.days
	args := make([]any, 0, 4*len(rows))
	for i := range rows {
		r := &rows[i]
		args = append(args, r.received, r.reporter, r.jobid, r.gid)
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT messages"); err != nil {
		return 0, err
	}
	res, err := w.exec(ctx, stmtMessages, len(rows), args)
	if err != nil {
		return 0, err
	}
	k, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	switch k {
	case int64(len(rows)):
		for i := range rows {
			countDay(days, rows[i].received, rows[i].gid)
		}
	case 0:
	default:
		if k, err = w.insertReturning(ctx, len(rows), args); err != nil {
			return 0, err
		}
	}
	_, err = tx.ExecContext(ctx, "RELEASE messages")
	return k, err
}

// insertReturning undoes insertMessages' statement and runs it again,
// counting the rows it returns.
func (w *txWriter) insertReturning(ctx context.Context, n int, args []any) (int64, error) {
	if _, err := w.tx.ExecContext(ctx, "ROLLBACK TO messages"); err != nil {
		return 0, err
	}
	res, err := w.query(ctx, stmtMessagesReturning, n, args)
	if err != nil {
		return 0, err
	}
	defer res.Close()
	var added int64
	for res.Next() {
		var received, gid int64
		if err := res.Scan(&received, &gid); err != nil {
			return 0, err
		}
		added++
		countDay(w.days, received, gid)
	}
	return added, res.Err()
}

// countDay counts a message into days.
func countDay(days map[dayGroup]dayCount, received, gid int64) {
	k := dayGroup{dayOf(received), gid}
	c := days[k]
	days[k] = dayCount{c.n + 1, max(c.last, received)}
}

// addDays adds the counts to group_days, in key order.
func (w *txWriter) addDays(ctx context.Context) error {
	days := w.days
	keys := make([]dayGroup, 0, len(days))
	for k := range days {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y dayGroup) int {
		if c := cmp.Compare(x.day, y.day); c != 0 {
			return c
		}
		return cmp.Compare(x.gid, y.gid)
	})
	for len(keys) > 0 {
		n := min(len(keys), dayRows)
		args := make([]any, 0, 4*n)
		for _, k := range keys[:n] {
			c := days[k]
			args = append(args, k.day, k.gid, c.n, c.last)
		}
		if _, err := w.exec(ctx, stmtDays, n, args); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// The multi-row statements of writeBatch, for n rows.
const (
	stmtGroups            = iota // new groups, returning their ids
	stmtGroupIDs                 // the ids of n groups
	stmtMessages                 // new messages
	stmtMessagesReturning        // new messages, returning those inserted
	stmtDays                     // counts added to group_days
	nStmts
)

func (s *Store) stmtSQL(kind, n int) string {
	switch kind {
	case stmtGroups:
		return "INSERT INTO report_groups (gkey, " + groupColumns + ") VALUES " + s.values(n, 1+nGroupColumns) +
			" ON CONFLICT (gkey) DO NOTHING RETURNING gid, gkey"
	case stmtGroupIDs:
		return "SELECT gid, gkey FROM report_groups WHERE gkey IN " + s.values(1, n)
	case stmtMessages, stmtMessagesReturning:
		q := "INSERT INTO messages (received, reporter, jobid, gid) VALUES " + s.values(n, 4) + " ON CONFLICT (received, reporter, jobid) DO NOTHING"
		if kind == stmtMessagesReturning {
			q += " RETURNING received, gid"
		}
		return q
	}
	return "INSERT INTO group_days (day, gid, n, last_received) VALUES " + s.values(n, 4) +
		" ON CONFLICT (day, gid) DO UPDATE SET n = group_days.n + excluded.n, last_received =" +
		" CASE WHEN excluded.last_received > group_days.last_received THEN excluded.last_received ELSE group_days.last_received END"
}

// fullRows is the size of a full statement of each kind.
var fullRows = [nStmts]int{stmtGroups: groupRows, stmtGroupIDs: groupRows, stmtMessages: messageRows,
	stmtMessagesReturning: messageRows, stmtDays: dayRows}

// query runs the statement of kind for n rows; exec the same without
// rows. Full statements are prepared once per transaction: parsing a
// statement of a thousand rows costs about what running it does. A
// shorter one, at the end of a batch, is prepared for the one call.
func (w *txWriter) query(ctx context.Context, kind, n int, args []any) (*sql.Rows, error) {
	if n != fullRows[kind] {
		return w.tx.QueryContext(ctx, w.s.stmtSQL(kind, n), args...)
	}
	st, err := w.prepared(ctx, kind)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (w *txWriter) exec(ctx context.Context, kind, n int, args []any) (sql.Result, error) {
	if n != fullRows[kind] {
		return w.tx.ExecContext(ctx, w.s.stmtSQL(kind, n), args...)
	}
	st, err := w.prepared(ctx, kind)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (w *txWriter) prepared(ctx context.Context, kind int) (*sql.Stmt, error) {
	if w.stmts[kind] == nil {
		st, err := w.tx.PrepareContext(ctx, w.s.stmtSQL(kind, fullRows[kind]))
		if err != nil {
			return nil, err
		}
		w.stmts[kind] = st
	}
	return w.stmts[kind], nil
}

// values is the VALUES list of n rows of k parameters each, or, for
// n = 1, the parenthesised list of k.
func (s *Store) values(n, k int) string {
	var b strings.Builder
	p := 1
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := 0; c < k; c++ {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteString(s.ph(p))
			p++
		}
		b.WriteByte(')')
	}
	return b.String()
}
