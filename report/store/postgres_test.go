package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/historygen"
	"github.com/mailsidecar/sidecar/internal/testkit/pgtest"
)

// Several hosts import into one PostgreSQL at once, each its own history
// and copies of the others' (a shared spool, a retried run): every record
// is stored once, none is lost, and the "added" counts of all importers
// sum to the number of distinct records.
func TestPostgresConcurrentImport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pg := pgtest.Start(t)
	url := pg.CreateDB(t, "reports")
	const hosts, each = 4, 3000
	files := make([][]byte, hosts)
	for h := range files {
		var b bytes.Buffer
		spec := historygen.Spec{Records: each, Domains: 13, Sources: 4, Start: t0, Step: time.Second, Reporter: fmt.Sprintf("mx%d.example", h)}
		if err := spec.Write(&b); err != nil {
			t.Fatal(err)
		}
		files[h] = b.Bytes()
	}
	// Importer i imports host i's file, then host (i+1)'s, both in
	// parallel with the others: every file is imported twice at once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var added int64
	errs := make(chan error, 2*hosts)
	for i := 0; i < hosts; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), url) // each its own schema creation race
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			for _, f := range []int{i, (i + 1) % hosts} {
				res, err := s.Import(context.Background(), bytes.NewReader(files[f]), fmt.Sprintf("mx%d.dat", f), nil)
				if err != nil {
					errs <- err
					return
				}
				if res.Records != each || res.Corrupt != 0 {
					errs <- fmt.Errorf("importer %d file %d: %+v", i, f, res)
				}
				mu.Lock()
				added += res.Added
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n, distinct int64
	if err := s.DB().QueryRow("SELECT COUNT(*), COUNT(DISTINCT (reporter, received, jobid)) FROM messages").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != hosts*each || distinct != n || added != n {
		t.Errorf("%d rows, %d distinct, %d added by the importers; want %d each", n, distinct, added, hosts*each)
	}
	// The store works the same way as SQLite: expire, and a record's row.
	exp, err := s.Expire(context.Background(), t0.Add(1000*time.Second))
	if err != nil || exp != hosts*1000 {
		t.Errorf("expire: %d %v", exp, err)
	}
	var dkim string
	if err := s.DB().QueryRow("SELECT dkim FROM messages WHERE reporter = 'mx0.example' AND jobid = '00000BB8'").Scan(&dkim); err == nil {
		t.Errorf("job 3000 exists")
	}
	if err := s.DB().QueryRow("SELECT dkim FROM messages WHERE reporter = 'mx0.example' AND jobid = '000003E8'").Scan(&dkim); err != nil || dkim != "d12.example s1 0" {
		t.Errorf("dkim %q %v", dkim, err)
	}
}

// An unreachable server is a clear error at Open.
func TestPostgresUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, "postgres://nobody:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=3")
	if err == nil || !strings.Contains(err.Error(), "report database postgres://nobody:xxxxx@127.0.0.1:1/") || strings.Contains(err.Error(), "secret") {
		t.Errorf("err %v", err)
	}
}

// The report queries and the delivery records work on PostgreSQL as on
// SQLite: the same groups, summary and delivery history from the same
// records.
func TestPostgresQueriesMatchSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pg := pgtest.Start(t)
	p, err := Open(context.Background(), pg.CreateDB(t, "queries"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	l := openSQLite(t)
	spec := historygen.Spec{Records: 500, Domains: 7, Sources: 3, Start: t0, Step: time.Minute, Reporter: "mx1.example"}
	b := mixed(spec)
	for _, s := range []*Store{p, l} {
		importBytes(t, s, "f", b)
	}
	dump := func(s *Store) string {
		var out strings.Builder
		err := s.Groups(context.Background(), t0, t0.Add(24*time.Hour), "", func(g *Group) error {
			ext := g.Ext
			g.Ext = nil
			fmt.Fprintf(&out, "%+v %+v\n", *g, ext)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := s.Summary(context.Background(), t0, "", 2)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "%+v\n", sum)
		d := Delivery{PolicyDomain: "d1.example", Begin: t0, End: t0.Add(24 * time.Hour), URI: "mailto:x@d1.example", ReportID: "r1",
			Status: DeliveryTemporary, Detail: "450", Updated: t0}
		s.RecordDelivery(context.Background(), d)
		d.Status, d.Detail = DeliverySent, ""
		if err := s.RecordDelivery(context.Background(), d); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.LookupDelivery(context.Background(), "d1.example", t0, "mailto:x@d1.example")
		fmt.Fprintf(&out, "%v %v %+v\n", ok, err, got)
		return out.String()
	}
	// Groups come ordered by domain only: compare them as sets.
	sorted := func(s string) string {
		lines := strings.Split(s, "\n")
		sort.Strings(lines)
		return strings.Join(lines, "\n")
	}
	pd, ld := sorted(dump(p)), sorted(dump(l))
	if pd != ld {
		t.Errorf("PostgreSQL:\n%s\nSQLite:\n%s", pd, ld)
	}
	if !strings.Contains(ld, "Status:sent Detail: Attempts:2") || strings.Count(ld, "PolicyDomain:") < 14 ||
		!strings.Contains(ld, "&{SPFDomain:") {
		t.Errorf("SQLite:\n%s", ld)
	}
	// A database made before the sidecar history format gets its columns.
	old := pg.CreateDB(t, "old")
	raw, err := sql.Open("pgx", old)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	checkMigration(t, old, raw)
}
