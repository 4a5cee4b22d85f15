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
// is stored once, none is lost, the "added" counts of all importers sum
// to the number of distinct records, and the rollup counts exactly the
// stored messages (no count twice, none lost, no deadlock). Then an
// Expire runs while importers import again.
func TestPostgresConcurrentImport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	pg := pgtest.Start(t)
	url := pg.CreateDB(t, "reports")
	const hosts, each = 4, 30000
	start := t0.Add(20 * time.Hour) // the records span a day's end
	files := make([][]byte, hosts)
	for h := range files {
		var b bytes.Buffer
		spec := historygen.Spec{Records: each, Domains: 13, Sources: 4, Start: start, Step: time.Second, Reporter: fmt.Sprintf("mx%d.example", h)}
		if err := spec.Write(&b); err != nil {
			t.Fatal(err)
		}
		files[h] = b.Bytes()
	}
	added := importAll(t, url, files, each, nil)
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n, distinct, counted int64
	if err := s.DB().QueryRow("SELECT COUNT(*), COUNT(DISTINCT (reporter, received, jobid)) FROM messages").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if err := s.DB().QueryRow("SELECT SUM(n) FROM group_days").Scan(&counted); err != nil {
		t.Fatal(err)
	}
	if n != hosts*each || distinct != n || added != n || counted != n {
		t.Errorf("%d rows, %d distinct, %d added by the importers, %d counted in the rollup; want %d each", n, distinct, added, counted, hosts*each)
	}
	checkRollup(t, s)
	// The groups are those of the records, counted in Go.
	want := map[string]int64{}
	for range hosts {
		spec := historygen.Spec{Records: each, Domains: 13, Sources: 4, Start: start, Step: time.Second}
		for i := range each {
			r := spec.Record(i)
			want[fmt.Sprintf("%s %s %d", r.PolicyDomain, r.IPAddr, r.Action)]++
		}
	}
	got := map[string]int64{}
	if err := s.Groups(context.Background(), t0, t0.Add(48*time.Hour), "", func(g *Group) error {
		got[fmt.Sprintf("%s %s %d", g.PolicyDomain, g.IP, g.Action)] += g.Count
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("group %s: %d, want %d", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d groups, want %d", len(got), len(want))
	}

	// Expire the first 1000 seconds, and import everything again while
	// another Expire (at a time inside the files, in the day after their
	// start) runs: whatever the order, the rollup counts what is stored,
	// and every message keeps its group.
	exp, err := s.Expire(context.Background(), start.Add(1000*time.Second))
	if err != nil || exp != hosts*1000 {
		t.Errorf("expire: %d %v", exp, err)
	}
	checkRollup(t, s)
	importAll(t, url, files, each, func() {
		if _, err := s.Expire(context.Background(), start.Add(5*time.Hour)); err != nil {
			t.Error(err)
		}
	})
	checkRollup(t, s)
	var key string
	if err := s.DB().QueryRow("SELECT jobid FROM messages WHERE reporter = 'mx0.example' AND jobid = '00004E20'").Scan(&key); err != nil {
		t.Errorf("job 20000: %v", err)
	}
}

// importAll runs one importer per file at once: importer i imports file
// i, then file i+1 from its (777·i+1)-th record on, so that every file is
// imported twice at once, in chunks that start at other records (some
// statements find part of their rows stored). extra runs meanwhile. It
// returns the sum of what the importers added.
func importAll(t *testing.T, url string, files [][]byte, each int, extra func()) int64 {
	hosts := len(files)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var added int64
	errs := make(chan error, 2*hosts+1)
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
			for k, f := range []int{i, (i + 1) % hosts} {
				skip := k * 777 * (i + 1)
				res, err := s.Import(context.Background(), bytes.NewReader(skipRecords(files[f], skip)), fmt.Sprintf("mx%d.dat", f), nil)
				if err != nil {
					errs <- err
					return
				}
				if res.Records != int64(each-skip) || res.Corrupt != 0 {
					errs <- fmt.Errorf("importer %d file %d: %+v", i, f, res)
				}
				mu.Lock()
				added += res.Added
				mu.Unlock()
			}
		}()
	}
	if extra != nil {
		extra()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return added
}

// skipRecords returns the history b from its (n+1)-th record on.
func skipRecords(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = b[bytes.Index(b[1:], []byte("\njob "))+2:]
	}
	return b
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
	// Stores made before the rollup, and before the sidecar history
	// format, are converted.
	for _, ext := range []bool{false, true} {
		old := pg.CreateDB(t, fmt.Sprintf("old%v", ext))
		raw, err := sql.Open("pgx", old)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		checkMigration(t, old, raw, Postgres, ext)
	}
}
