package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

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

const (
	// columns are OpenDMARC's fields, extension those of the sidecar
	// format (NULL for a record in OpenDMARC's).
	columns     = "reporter, received, jobid, ip, header_from, envelope_from, policy_domain, policy, action, spf, dkim, align_dkim, align_spf, arc, arc_policy, arc_seals, p, sp, pct, adkim, aspf, rua"
	extension   = "spf_domain, spf_scope, rcpt_domains, np, psd, testing, fo, ruf, override"
	ncolumns    = 22 + 9
	batchRows   = 500   // rows per INSERT statement
	chunkRecord = 20000 // records per transaction
)

// Import reads history records from r (named file in problems) into the
// store, in transactions of chunkRecord records, each record once:
// records already stored are not added again. A corrupt record is
// counted and skipped whole; a record cut short at the end is left for
// the next run, which reads the file again. progress, when not nil, is
// called after each transaction with the counts so far.
//
// Reading and writing overlap: one goroutine parses the next chunk while
// the database stores the last one, so memory holds two chunks at most.
func (s *Store) Import(ctx context.Context, r io.Reader, file string, progress func(ImportResult)) (ImportResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []*report.HistoryRecord)
	var res ImportResult // the reader's counts, read after chunks is closed
	var readErr error
	go func() {
		defer close(chunks)
		readErr = readChunks(ctx, r, file, &res, chunks)
	}()
	var added int64
	args := make([]any, 0, batchRows*ncolumns)
	var dbErr error
	for chunk := range chunks {
		if dbErr != nil {
			continue // drain
		}
		n, err := s.insert(ctx, chunk, args)
		if err != nil {
			dbErr = s.fail("import "+file, err)
			cancel()
			continue
		}
		added += n
		if progress != nil {
			progress(ImportResult{Records: added, Added: added})
		}
	}
	res.Added = added
	if dbErr != nil {
		return res, dbErr
	}
	if readErr == nil {
		readErr = ctx.Err()
	}
	return res, readErr
}

// readChunks parses r into chunks of chunkRecord records, counting
// records and problems in res.
func readChunks(ctx context.Context, r io.Reader, file string, res *ImportResult, out chan<- []*report.HistoryRecord) error {
	hr := report.NewHistoryReader(r, file)
	chunk := make([]*report.HistoryRecord, 0, chunkRecord)
	send := func() bool {
		select {
		case out <- chunk:
			chunk = make([]*report.HistoryRecord, 0, chunkRecord)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		rec, err := hr.Next()
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
		chunk = append(chunk, rec)
		if len(chunk) == chunkRecord && !send() {
			return ctx.Err()
		}
	}
	if len(chunk) > 0 && !send() {
		return ctx.Err()
	}
	return nil
}

// insert writes one transaction of records and returns how many were new.
// The records go in key order: concurrent importers into PostgreSQL then
// take the unique index's locks in the same order and cannot deadlock.
func (s *Store) insert(ctx context.Context, recs []*report.HistoryRecord, args []any) (int64, error) {
	sort.Slice(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if !a.Received.Equal(b.Received) {
			return a.Received.Before(b.Received)
		}
		if a.Reporter != b.Reporter {
			return a.Reporter < b.Reporter
		}
		return a.JobID < b.JobID
	})
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var full *sql.Stmt
	var added int64
	for len(recs) > 0 {
		n := min(len(recs), batchRows)
		args = args[:0]
		for _, r := range recs[:n] {
			args = appendRow(args, r)
		}
		var res sql.Result
		if n == batchRows {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, s.insertSQL(batchRows)); err != nil {
					return 0, err
				}
			}
			res, err = full.ExecContext(ctx, args...)
		} else {
			res, err = tx.ExecContext(ctx, s.insertSQL(n), args...)
		}
		if err != nil {
			return 0, err
		}
		k, _ := res.RowsAffected()
		added += k
		recs = recs[n:]
	}
	return added, tx.Commit()
}

// insertSQL is the INSERT of n rows that skips rows already stored.
func (s *Store) insertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO messages (" + columns + ", " + extension + ") VALUES ")
	k := 1
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := 0; c < ncolumns; c++ {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteString(s.ph(k))
			k++
		}
		b.WriteByte(')')
	}
	b.WriteString(" ON CONFLICT (received, reporter, jobid) DO NOTHING")
	return b.String()
}

func appendRow(args []any, r *report.HistoryRecord) []any {
	args = append(args, r.Reporter, r.Received.Unix(), r.JobID, r.IPAddr, r.From, r.MailFrom, r.PolicyDomain,
		r.Policy, r.Action, int(r.SPF), FormatDKIM(r.DKIM), r.AlignDKIM, r.AlignSPF, int(r.ARC), r.ARCPolicy,
		formatSeals(r.ARCSeals), r.P, r.SP, r.Pct, r.ADKIM, r.ASPF, strings.Join(r.RUA, " "))
	x := r.Ext
	if x == nil {
		return append(args, nil, nil, nil, nil, nil, nil, nil, nil, nil)
	}
	return append(args, x.SPFDomain, x.SPFScope, strings.Join(x.RcptDomains, " "), x.NP, x.PSD, x.Testing, x.FO,
		strings.Join(x.RUF, " "), strings.Join(x.Reasons(), " "))
}

// FormatDKIM is the dkim column: one "domain selector result-code" per
// signature, newline-separated, in the record's order.
func FormatDKIM(sigs []report.HistoryDKIM) string {
	if len(sigs) == 0 {
		return ""
	}
	var b []byte
	for i, d := range sigs {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, d.Domain...)
		b = append(b, ' ')
		b = append(b, d.Selector...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(d.Result), 10)
	}
	return string(b)
}

// ParseDKIM reads the dkim column back.
func ParseDKIM(col string) []report.HistoryDKIM {
	if col == "" {
		return nil
	}
	var out []report.HistoryDKIM
	for _, line := range strings.Split(col, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		n, _ := strconv.Atoi(f[2])
		out = append(out, report.HistoryDKIM{Domain: f[0], Selector: f[1], Result: report.ARES(n)})
	}
	return out
}

// formatSeals is the arc_seals column: "i d s" per seal, newline-separated.
func formatSeals(seals []report.ARCSeal) string {
	var b strings.Builder
	for i, s := range seals {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%d %s %s", s.Instance, s.Domain, s.Selector)
	}
	return b.String()
}
