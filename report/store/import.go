package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/mailsidecar/sidecar/report"
)

// ImportResult counts what an import read and added.
type ImportResult struct {
	Records    int64 // complete records read
	Added      int64 // of those, new to the store
	Corrupt    int64 // records not imported: corrupt
	Incomplete int64 // records cut short at the end of a file, left for the next run
	// Problems are the corrupt and cut-short records, with file and
	// line, at most MaxProblems of them (the counts count them all).
	Problems []*report.HistoryError
}

// MaxProblems bounds ImportResult.Problems.
const MaxProblems = 1000

// Add adds another import's counts and problems to r.
func (r *ImportResult) Add(o ImportResult) {
	r.Records += o.Records
	r.Added += o.Added
	r.Corrupt += o.Corrupt
	r.Incomplete += o.Incomplete
	for _, p := range o.Problems {
		if len(r.Problems) < MaxProblems {
			r.Problems = append(r.Problems, p)
		}
	}
}

// chunkRecord is the number of records the reader hands over at once;
// memory holds two chunks at most. (Variables: tests make them small.)
var chunkRecord = 20000

// txRecords is the number of records an SQLite import transaction takes
// (chunk after chunk) before it commits: the rollup rows of its groups
// are updated once per transaction, so the fewer transactions the less
// work, and the write lock is held a second or two at most (another
// writer waits for it; readers never do). A PostgreSQL transaction is
// one chunk, so that concurrent importers take their locks in one
// order.
var txRecords = 250000

// Import reads history records from r (named file in problems) into the
// store, each record once: records already stored are not added again,
// nor counted again in the rollup. A corrupt record is counted and
// skipped whole; a record cut short at the end is left for the next run,
// which reads the file again. progress, when not nil, is called after
// each transaction with the counts so far.
//
// Reading and writing overlap: one goroutine parses the next chunk (and
// encodes its group keys) while the database stores the last one.
func (s *Store) Import(ctx context.Context, r io.Reader, file string, progress func(ImportResult)) (ImportResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan *batch)
	var res ImportResult // the reader's counts, read after chunks is closed
	var readErr error
	go func() {
		defer close(chunks)
		readErr = readChunks(ctx, r, file, &res, chunks)
	}()
	added, dbErr := s.store(ctx, chunks, progress)
	if dbErr != nil {
		cancel()
		for range chunks { // drain
		}
	}
	res.Added = added
	if dbErr != nil {
		return res, s.fail("import "+file, dbErr)
	}
	if readErr == nil {
		readErr = ctx.Err()
	}
	return res, readErr
}

// store writes the chunks in transactions and returns how many messages
// they added.
func (s *Store) store(ctx context.Context, chunks <-chan *batch, progress func(ImportResult)) (int64, error) {
	var added int64
	var t *importTx
	commit := func() error {
		n, err := t.commit(ctx)
		t = nil
		if err != nil {
			return err
		}
		added += n
		if progress != nil {
			progress(ImportResult{Records: added, Added: added})
		}
		return nil
	}
	for b := range chunks {
		if t == nil {
			var err error
			if t, err = s.beginImport(ctx); err != nil {
				return added, err
			}
		}
		if err := t.w.write(ctx, b); err != nil {
			t.w.tx.Rollback()
			return added, err
		}
		if s.dialect == Postgres || t.w.rows >= txRecords {
			if err := commit(); err != nil {
				return added, err
			}
		}
	}
	if t != nil {
		return added, commit()
	}
	return added, nil
}

// readChunks parses r into batches of chunkRecord records, counting
// records and problems in res.
func readChunks(ctx context.Context, r io.Reader, file string, res *ImportResult, out chan<- *batch) error {
	hr := report.NewHistoryReader(r, file)
	b := newBatch(chunkRecord)
	send := func() bool {
		select {
		case out <- b:
			b = newBatch(chunkRecord)
			return true
		case <-ctx.Done():
			return false
		}
	}
	rec := &report.HistoryRecord{} // one for all: the batch keeps its key, not the record
	for {
		err := hr.NextInto(rec)
		if err == io.EOF {
			break
		}
		var he *report.HistoryError
		if errors.As(err, &he) {
			if he.Incomplete {
				res.Incomplete++
			} else {
				res.Corrupt++
			}
			if len(res.Problems) < MaxProblems {
				res.Problems = append(res.Problems, he)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		res.Records++
		start := len(b.keys)
		b.keys = appendRecordKey(b.keys, rec)
		b.add(rec.Received.Unix(), rec.Reporter, rec.JobID, start)
		if len(b.rows) == chunkRecord && !send() {
			return ctx.Err()
		}
	}
	if len(b.rows) > 0 && !send() {
		return ctx.Err()
	}
	return nil
}

// importTx is an import transaction. In PostgreSQL it holds the store
// lock shared, so that Expire (which takes it alone) never runs beside
// it.
type importTx struct {
	w   *txWriter
	gen int64 // of the group cache
}

func (s *Store) beginImport(ctx context.Context) (*importTx, error) {
	tx, err := s.db.BeginTx(ctx, nil) // SQLite: BEGIN IMMEDIATE, one writer at a time
	if err != nil {
		return nil, err
	}
	if s.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock_shared("+strconv.Itoa(storeLock)+")"); err != nil {
			tx.Rollback()
			return nil, err
		}
	}
	var gen int64
	if err := tx.QueryRowContext(ctx, "SELECT value FROM store_meta WHERE name = 'groups_generation'").Scan(&gen); err != nil {
		tx.Rollback()
		return nil, err
	}
	s.groups.sync(gen)
	return &importTx{w: s.newWriter(tx), gen: gen}, nil
}

// commit adds the transaction's counts to the rollup, commits, and
// returns how many messages it added.
func (t *importTx) commit(ctx context.Context) (int64, error) {
	if err := t.w.flush(ctx); err != nil {
		t.w.tx.Rollback()
		return 0, err
	}
	if err := t.w.tx.Commit(); err != nil {
		return 0, err
	}
	t.w.s.groups.merge(t.gen, t.w.known)
	return t.w.added, nil
}
