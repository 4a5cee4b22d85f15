package store

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/historygen"
	"github.com/mailsidecar/sidecar/report"
)

// The oracle: the store as it was before the rollup — one full row per
// message in "messages", and reports and summaries counted by GROUP BY
// over those rows. Its table is also what the migration converts.

// legacySchema is the messages table of the stores made before the
// rollup (31 columns); oldSchema (store_test.go) that of the stores made
// before the sidecar history format (22).
const legacySchema = `CREATE TABLE messages (reporter TEXT NOT NULL, received BIGINT NOT NULL, jobid TEXT NOT NULL, ip TEXT NOT NULL,
	header_from TEXT NOT NULL, envelope_from TEXT NOT NULL, policy_domain TEXT NOT NULL, policy INTEGER NOT NULL, action INTEGER NOT NULL,
	spf INTEGER NOT NULL, dkim TEXT NOT NULL, align_dkim INTEGER NOT NULL, align_spf INTEGER NOT NULL, arc INTEGER NOT NULL,
	arc_policy INTEGER NOT NULL, arc_seals TEXT NOT NULL, p INTEGER NOT NULL, sp INTEGER NOT NULL, pct INTEGER NOT NULL,
	adkim INTEGER NOT NULL, aspf INTEGER NOT NULL, rua TEXT NOT NULL, spf_domain TEXT, spf_scope TEXT, rcpt_domains TEXT, np INTEGER,
	psd INTEGER, testing INTEGER, fo TEXT, ruf TEXT, override TEXT, PRIMARY KEY (received, reporter, jobid))`

const legacyColumns = "reporter, received, jobid, ip, header_from, envelope_from, policy_domain, policy, action, spf, dkim, align_dkim," +
	" align_spf, arc, arc_policy, arc_seals, p, sp, pct, adkim, aspf, rua"

// groupArgs returns r's values of groupColumns as the store keeps them:
// strings, int64s, and nil for the extension of an OpenDMARC record.
func groupArgs(r *report.HistoryRecord) []any {
	args := []any{r.PolicyDomain, r.IPAddr, int64(r.Action), int64(r.Policy), int64(r.AlignDKIM), int64(r.AlignSPF),
		int64(r.ARCPolicy), r.From, r.MailFrom, int64(r.SPF), FormatDKIM(r.DKIM), int64(r.P), int64(r.SP), int64(r.Pct),
		int64(r.ADKIM), int64(r.ASPF), strings.Join(r.RUA, " ")}
	x := r.Ext
	if x == nil {
		return append(args, nil, nil, nil, nil, nil, nil, nil, nil, nil)
	}
	return append(args, x.SPFDomain, x.SPFScope, strings.Join(x.RcptDomains, " "), int64(x.NP), int64(x.PSD),
		int64(x.Testing), x.FO, strings.Join(x.RUF, " "), strings.Join(x.Reasons(), " "))
}

// legacyRow is r's row in the legacy table (ext: with the sidecar
// format's columns).
func legacyRow(r *report.HistoryRecord, ext bool) []any {
	var seals []string
	for _, s := range r.ARCSeals {
		seals = append(seals, fmt.Sprintf("%d %s %s", s.Instance, s.Domain, s.Selector))
	}
	g := groupArgs(r)
	row := []any{r.Reporter, r.Received.Unix(), r.JobID, g[1], g[7], g[8], g[0], g[3], g[2], g[9], g[10], g[4], g[5],
		int64(r.ARC), g[6], strings.Join(seals, "\n"), g[11], g[12], g[13], g[14], g[15], g[16]}
	if ext {
		row = append(row, g[17:]...)
	}
	return row
}

// legacyDB is a database holding the legacy table.
type legacyDB struct {
	db      *sql.DB
	dialect Dialect
	ext     bool // the table has the sidecar format's columns
}

func (l *legacyDB) create(t testing.TB) {
	t.Helper()
	ddl := legacySchema
	if !l.ext {
		ddl = oldSchema
	}
	if _, err := l.db.Exec(ddl); err != nil {
		t.Fatal(err)
	}
}

// insert adds the records as the store before the rollup did: the
// first of a key wins.
func (l *legacyDB) insert(t testing.TB, recs []*report.HistoryRecord) {
	t.Helper()
	s := &Store{dialect: l.dialect}
	cols := legacyColumns
	n := 22
	if l.ext {
		cols, n = cols+", "+extension, 31
	}
	tx, err := l.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if _, err := tx.Exec("INSERT INTO messages ("+cols+") VALUES "+s.values(1, n)+" ON CONFLICT DO NOTHING", legacyRow(r, l.ext)...); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// groups returns the groups of [begin, end) by the GROUP BY of the
// store before the rollup, one line each, sorted.
func (l *legacyDB) groups(t testing.TB, begin, end time.Time, domain string) []string {
	t.Helper()
	s := &Store{dialect: l.dialect}
	ext := extension
	if !l.ext {
		ext = "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
	}
	cols := "policy_domain, ip, action, policy, align_dkim, align_spf, arc_policy, header_from, envelope_from, spf, dkim, p, sp, pct, adkim, aspf, rua"
	q := "SELECT " + cols + ", " + ext + ", COUNT(*), MAX(received) FROM messages WHERE received >= " + s.ph(1) + " AND received < " + s.ph(2) +
		" AND policy NOT IN (13, 14)"
	args := []any{begin.Unix(), end.Unix()}
	if domain != "" {
		q += " AND policy_domain = " + s.ph(3)
		args = append(args, domain)
	}
	if l.ext {
		cols += ", " + ext
	}
	rows, err := l.db.Query(q+" GROUP BY "+cols+" ORDER BY policy_domain", args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, groupLine(g))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// summary is the summary by the queries of the store before the rollup.
func (l *legacyDB) summary(t testing.TB, since time.Time, domain string, top int) []DomainSummary {
	t.Helper()
	s := &Store{dialect: l.dialect}
	where := " WHERE received >= " + s.ph(1) + " AND policy NOT IN (13, 14)"
	args := []any{since.Unix()}
	if domain != "" {
		where += " AND policy_domain = " + s.ph(2)
		args = append(args, domain)
	}
	const pass = "(align_dkim = 4 OR align_spf = 4)"
	rows, err := l.db.Query("SELECT policy_domain, COUNT(*), SUM(CASE WHEN "+pass+" THEN 1 ELSE 0 END),"+
		" SUM(CASE WHEN align_spf = 4 THEN 1 ELSE 0 END), SUM(CASE WHEN align_dkim = 4 THEN 1 ELSE 0 END),"+
		" SUM(CASE WHEN action IN (0, 1) THEN 1 ELSE 0 END), SUM(CASE WHEN action = 4 THEN 1 ELSE 0 END)"+
		" FROM messages"+where+" GROUP BY policy_domain ORDER BY COUNT(*) DESC, policy_domain", args...)
	if err != nil {
		t.Fatal(err)
	}
	var out []DomainSummary
	index := map[string]int{}
	for rows.Next() {
		var d DomainSummary
		if err := rows.Scan(&d.Domain, &d.Messages, &d.DMARCPass, &d.SPFAligned, &d.DKIMAligned, &d.Rejected, &d.Quarantined); err != nil {
			t.Fatal(err)
		}
		d.DMARCFail = d.Messages - d.DMARCPass
		d.Delivered = d.Messages - d.Rejected - d.Quarantined
		index[d.Domain] = len(out)
		out = append(out, d)
	}
	rows.Close()
	rows, err = l.db.Query("SELECT policy_domain, ip, COUNT(*) FROM messages"+where+" AND NOT "+pass+
		" GROUP BY policy_domain, ip ORDER BY policy_domain, COUNT(*) DESC, ip", args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var dom string
		var src Source
		if err := rows.Scan(&dom, &src.IP, &src.Count); err != nil {
			t.Fatal(err)
		}
		if i, ok := index[dom]; ok && len(out[i].TopFailing) < top {
			out[i].TopFailing = append(out[i].TopFailing, src)
		}
	}
	return out
}

func groupLine(g *Group) string {
	ext := g.Ext
	c := *g
	c.Ext = nil
	return fmt.Sprintf("%+v %+v", c, ext)
}

// storeGroups returns the store's groups of [begin, end), one line each,
// sorted, and checks they come ordered by policy domain.
func storeGroups(t testing.TB, s *Store, begin, end time.Time, domain string) []string {
	t.Helper()
	var out []string
	prev := ""
	err := s.Groups(context.Background(), begin, end, domain, func(g *Group) error {
		if g.PolicyDomain < prev {
			t.Errorf("group of %s after %s", g.PolicyDomain, prev)
		}
		prev = g.PolicyDomain
		out = append(out, groupLine(g))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// randomHistory returns n records over three days from t0 − 2h, in
// arrival order but for a few out of place, each a copy of one of 300
// random group templates (every field the groups count by drawn from
// small sets, both history formats) with its own identity and ARC seals
// — the first third of the records from the first 100 templates, the
// rest from the others, so that some groups end a day and a half before
// the last record; a few repeat a key: the same record again, or another
// record under a key already used.
func randomHistory(rng *rand.Rand, n int, ext bool) []*report.HistoryRecord {
	pick := func(v ...string) string { return v[rng.IntN(len(v))] }
	code := func(v ...int) int { return v[rng.IntN(len(v))] }
	templates := make([]*report.HistoryRecord, 300)
	for i := range templates {
		dom := pick("a.example", "b.example", "c.example", "d.example", "e.example")
		r := &report.HistoryRecord{IPAddr: pick("192.0.2.1", "192.0.2.2", "203.0.113.9", "2001:db8::1"), From: dom,
			MailFrom: pick(dom, "", "bounce.example"), PolicyDomain: dom, Policy: code(15, 15, 15, 16, 17, 18, 13, 14),
			Action: code(0, 1, 2, 2, 2, 4), SPF: report.ARES(code(-1, 0, 0, 7, 4)), AlignDKIM: code(4, 4, 5), AlignSPF: code(4, 5, 5),
			ARC: report.ARES(code(0, 7)), ARCPolicy: code(0, 2, 2), P: code('n', 'q', 'r'), SP: code(0, 'r'), Pct: code(100, 100, 50),
			ADKIM: code('r', 's'), ASPF: code('r', 'r', 's')}
		for range rng.IntN(3) {
			r.DKIM = append(r.DKIM, report.HistoryDKIM{Domain: pick(dom, "esp.example"), Selector: pick("s1", "k2"), Result: report.ARES(code(0, 7))})
		}
		for range rng.IntN(3) {
			r.RUA = append(r.RUA, pick("mailto:agg@"+dom, "mailto:rua@reports.example"))
		}
		if ext && rng.IntN(2) == 0 {
			x := &report.HistoryExt{SPFDomain: pick(dom, "helo.example"), SPFScope: pick(report.SPFScopeMailFrom, report.SPFScopeHelo),
				NP: code(0, 'q'), PSD: code('n', 'u'), Testing: code('n', 'y'), FO: pick("0", "1:d")}
			for range rng.IntN(3) {
				x.RcptDomains = append(x.RcptDomains, pick("example.org", "example.net"))
			}
			for range rng.IntN(2) {
				x.RUF = append(x.RUF, "mailto:ruf@"+dom)
			}
			for range rng.IntN(3) {
				x.Override = append(x.Override, []report.OverrideReason{report.OverrideLocalPolicy, report.OverrideSampledOut,
					report.OverrideTrustedForwarder}[rng.IntN(3)])
			}
			r.Ext = x
		}
		templates[i] = r
	}
	var recs []*report.HistoryRecord
	at := t0.Add(-2 * time.Hour).Unix()
	for i := 0; i < n; i++ {
		at += int64(rng.IntN(22))
		c := *templates[rng.IntN(100)]
		if i >= n/3 {
			c = *templates[100+rng.IntN(len(templates)-100)]
		}
		r := &c
		r.JobID, r.Reporter = fmt.Sprintf("J%06X", i), pick("mx1.example", "mx2.example")
		r.Received = time.Unix(at-int64(rng.IntN(3))*int64(rng.IntN(2)*90), 0)
		if rng.IntN(4) == 0 {
			r.ARCSeals = []report.ARCSeal{{Instance: 1, Domain: "lists.example", Selector: pick("a", "b")}}
		}
		switch {
		case i > 0 && rng.IntN(50) == 0: // the same record again
			r = recs[rng.IntN(len(recs))]
		case i > 0 && rng.IntN(200) == 0: // another record under a key used
			o := recs[rng.IntN(len(recs))]
			r.Reporter, r.Received, r.JobID = o.Reporter, o.Received, o.JobID
		}
		recs = append(recs, r)
	}
	return recs
}

// reread is the records as the history file gives them back (domains in
// lower case, addresses canonical), and the file.
func reread(t testing.TB, recs []*report.HistoryRecord) ([]*report.HistoryRecord, []byte) {
	t.Helper()
	var b []byte
	for _, r := range recs {
		b = r.AppendFormat(b)
	}
	hr := report.NewHistoryReader(bytes.NewReader(b), "h")
	var out []*report.HistoryRecord
	for {
		r, err := hr.Next()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatal(err)
			}
			return out, b
		}
		out = append(out, r)
	}
}

// periods are the periods the identity tests compare: whole UTC days,
// parts of days at either end, inside one day, everything.
var periods = [][2]time.Time{
	{t0, t0.Add(24 * time.Hour)},
	{t0.Add(24 * time.Hour), t0.Add(48 * time.Hour)},
	{t0.Add(5 * time.Hour), t0.Add(53*time.Hour + 17*time.Second)},
	{t0.Add(-90 * time.Minute), t0.Add(24 * time.Hour)},
	{t0.Add(30 * time.Minute), t0.Add(50 * time.Minute)},
	{t0.Add(24 * time.Hour), t0.Add(24*time.Hour + 1)},
	{t0.Add(-24 * time.Hour), t0.Add(96 * time.Hour)},
}

// sameAsOracle compares the store's groups and summaries with the
// oracle's, for every period and for one domain, and checks the rollup.
func sameAsOracle(t *testing.T, s *Store, l *legacyDB, when string) {
	t.Helper()
	for i, p := range periods {
		for _, dom := range []string{"", "c.example"}[:1+i%2] {
			got, want := storeGroups(t, s, p[0], p[1], dom), l.groups(t, p[0], p[1], dom)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: groups of [%v, %v) %q: %d, oracle %d\n%s", when, p[0], p[1], dom, len(got), len(want), diff(got, want))
			}
		}
	}
	// Since: in the second half of a day (its part counted from the
	// messages), in the first half (the day's count less the messages
	// before), at a day's start.
	for _, since := range []time.Time{t0.Add(-3 * time.Hour), t0.Add(7*time.Hour + 3*time.Second), t0.Add(24 * time.Hour), t0.Add(44 * time.Hour)} {
		for _, dom := range []string{"", "a.example"} {
			got, err := s.Summary(context.Background(), since, dom, 3)
			if err != nil {
				t.Fatal(err)
			}
			if want := l.summary(t, since, dom, 3); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s: summary since %v %q:\n%+v\noracle:\n%+v", when, since, dom, got, want)
			}
		}
	}
	checkRollup(t, s)
}

func diff(got, want []string) string {
	in := func(list []string) map[string]bool {
		m := map[string]bool{}
		for _, s := range list {
			m[s] = true
		}
		return m
	}
	g, w := in(got), in(want)
	var b strings.Builder
	for _, s := range got {
		if !w[s] {
			fmt.Fprintf(&b, "+ %s\n", s)
		}
	}
	for _, s := range want {
		if !g[s] {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	return b.String()
}

// checkRollup checks the rollup against the messages: each (day, group)
// row counts exactly its messages, with their latest arrival; every
// message's group exists; no group is left without a count.
func checkRollup(t testing.TB, s *Store) {
	t.Helper()
	q := func(query string) []string {
		rows, err := s.DB().Query(query)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var a, b, c, d int64
			if err := rows.Scan(&a, &b, &c, &d); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(a, b, c, d))
		}
		return out
	}
	day := "received - received % 86400"
	got := q("SELECT day, gid, n, last_received FROM group_days ORDER BY day, gid")
	want := q("SELECT " + day + ", gid, COUNT(*), MAX(received) FROM messages GROUP BY " + day + ", gid ORDER BY 1, 2")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("group_days differs from the messages (%d rows, %d from the messages):\n%s", len(got), len(want), diff(got, want))
	}
	var orphans, unused int64
	if err := s.DB().QueryRow("SELECT COUNT(*) FROM messages WHERE gid NOT IN (SELECT gid FROM report_groups)").Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d messages without their group (%v)", orphans, err)
	}
	if err := s.DB().QueryRow("SELECT COUNT(*) FROM report_groups WHERE gid NOT IN (SELECT gid FROM group_days)").Scan(&unused); err != nil {
		t.Error(err)
	}
	if unused != 0 {
		// A group whose only record was a duplicate key is kept until
		// the next Expire.
		t.Logf("%d groups without a count", unused)
	}
}

func openLegacy(t testing.TB, ext bool) *legacyDB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "oracle.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l := &legacyDB{db: db, ext: ext}
	l.create(t)
	return l
}

// The groups and summaries from the rollup are those the GROUP BY over
// every message gave, for whole days, parts of days and one domain;
// after importing a file in parts, again, and a rotated copy; after
// Expire at a time inside a day; and after importing again what Expire
// deleted (whose groups it deleted too: SQLite may give their ids to
// other groups, so the importer must forget the ones it cached).
func TestGroupsMatchOracle(t *testing.T) {
	smallTransactions(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	recs, file := reread(t, randomHistory(rand.New(rand.NewPCG(seed, 14)), 25000, true))
	s := openSQLite(t)
	l := openLegacy(t, true)
	half := bytes.Index(file[len(file)/2:], []byte("\njob ")) + len(file)/2 + 1
	for _, part := range [][]byte{file[:half], file, file[half/3:]} {
		if _, err := s.Import(context.Background(), bytes.NewReader(part), "h", nil); err != nil {
			t.Fatal(err)
		}
	}
	l.insert(t, recs)
	if got, want := count(t, s), int64(len(distinctKeys(recs))); got != want {
		t.Errorf("%d messages, want %d", got, want)
	}
	sameAsOracle(t, s, l, "imported")

	cut := t0.Add(30*time.Hour + 7*time.Minute + 3*time.Second)
	n, err := s.Expire(context.Background(), cut)
	if err != nil {
		t.Fatal(err)
	}
	res, err := l.db.Exec("DELETE FROM messages WHERE received < ?", cut.Unix())
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := res.RowsAffected(); n != want || n == 0 {
		t.Errorf("expired %d, oracle %d", n, want)
	}
	sameAsOracle(t, s, l, "expired")
	var unused int64
	if err := s.DB().QueryRow("SELECT COUNT(*) FROM report_groups WHERE gid NOT IN (SELECT gid FROM group_days)").Scan(&unused); err != nil || unused != 0 {
		t.Errorf("%d groups left without a count by Expire (%v)", unused, err)
	}

	res2, err := s.Import(context.Background(), bytes.NewReader(file), "h", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Added != n {
		t.Errorf("import after expire added %d, want the %d expired", res2.Added, n)
	}
	l.insert(t, recs)
	sameAsOracle(t, s, l, "imported again after expire")
}

// smallTransactions makes the chunks and the transactions of the test
// small, so that a few thousand records cross many of their boundaries.
func smallTransactions(t *testing.T) {
	chunk, tx := chunkRecord, txRecords
	chunkRecord, txRecords = 3000, 7000 // three chunks per SQLite transaction
	t.Cleanup(func() { chunkRecord, txRecords = chunk, tx })
}

func distinctKeys(recs []*report.HistoryRecord) map[string]bool {
	keys := map[string]bool{}
	for _, r := range recs {
		keys[fmt.Sprint(r.Received.Unix(), r.Reporter, r.JobID)] = true
	}
	return keys
}

// checkMigration fills the legacy table of a store made before the
// rollup (through raw; ext: the layout with the sidecar format's
// columns) with a random history, then opens it: the groups and
// summaries are the old GROUP BY's, the rollup counts every message,
// the old table is gone; opening again changes nothing, and imports go
// on.
func checkMigration(t *testing.T, dsn string, raw *sql.DB, dialect Dialect, ext bool) {
	t.Helper()
	smallTransactions(t)
	recs, _ := reread(t, randomHistory(rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7)), 25000, ext))
	l := &legacyDB{db: raw, dialect: dialect, ext: ext}
	l.create(t)
	l.insert(t, recs)
	want := map[[2]time.Time][]string{}
	for _, p := range periods {
		want[p] = l.groups(t, p[0], p[1], "")
	}
	wantSum := l.summary(t, t0.Add(7*time.Hour+3*time.Second), "", 3)
	var rows int64
	raw.QueryRow("SELECT COUNT(*) FROM messages").Scan(&rows)
	for run := range 2 {
		s, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range periods {
			if got := storeGroups(t, s, p[0], p[1], ""); !reflect.DeepEqual(got, want[p]) {
				t.Errorf("open %d: groups of [%v, %v): %d, before %d\n%s", run, p[0], p[1], len(got), len(want[p]), diff(got, want[p]))
			}
		}
		if got, _ := s.Summary(context.Background(), t0.Add(7*time.Hour+3*time.Second), "", 3); fmt.Sprint(got) != fmt.Sprint(wantSum) {
			t.Errorf("open %d: summary\n%+v\nbefore\n%+v", run, got, wantSum)
		}
		if n := count(t, s); n != rows {
			t.Errorf("open %d: %d messages, %d before", run, n, rows)
		}
		checkRollup(t, s)
		s.Close()
	}
	if _, err := raw.Exec("SELECT 1 FROM messages_v1"); err == nil {
		t.Error("messages_v1 left")
	}
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	more := mixed(historygen.Spec{Records: 4, Domains: 1, Start: t0, Step: time.Second, Reporter: "mx9.example"})
	if res := importBytes(t, s, "f", more); res.Added != 4 {
		t.Errorf("import after the migration: %+v", res)
	}
	checkRollup(t, s)
}

func TestMigrateSQLite(t *testing.T) {
	for _, ext := range []bool{false, true} {
		t.Run(fmt.Sprintf("ext=%v", ext), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "old.db")
			raw, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			checkMigration(t, path, raw, SQLite, ext)
		})
	}
}

// The group key is the same from a record and from its column values,
// gives the values back, and tells groups apart exactly when their
// values differ.
func TestGroupKey(t *testing.T) {
	recs, _ := reread(t, randomHistory(rand.New(rand.NewPCG(1, 2)), 3000, true))
	byKey := map[string]string{}
	for _, r := range recs {
		args := groupArgs(r)
		k := appendRecordKey(nil, r)
		if !bytes.Equal(k, appendArgsKey(nil, args)) {
			t.Fatalf("record key %q, from its values %q", k, appendArgsKey(nil, args))
		}
		back, err := decodeKey(k)
		if err != nil || !reflect.DeepEqual(back, args) {
			t.Fatalf("decoded %#v, %v; want %#v", back, err, args)
		}
		vals := fmt.Sprintf("%#v", args)
		if prev, ok := byKey[string(k)]; ok && prev != vals {
			t.Fatalf("one key for %s and %s", prev, vals)
		}
		byKey[string(k)] = vals
	}
	seen := map[string]bool{}
	for _, v := range byKey {
		if seen[v] {
			t.Fatalf("two keys for %s", v)
		}
		seen[v] = true
	}
	if len(byKey) < 50 {
		t.Errorf("only %d groups", len(byKey))
	}
	for _, bad := range []string{"", "x", "n", strings.Repeat("n", 27), "\x05\x00\x00\x00s", "\x01\x00\x00\x00\x00\x00\x00\x00i" + strings.Repeat("n", 25)} {
		if _, err := decodeKey([]byte(bad)); err == nil {
			t.Errorf("decodeKey(%q) took it", bad)
		}
	}
}

// FuzzGroupKey: whatever decodeKey takes, it takes in its one encoding.
func FuzzGroupKey(f *testing.F) {
	for _, r := range randomHistory(rand.New(rand.NewPCG(3, 4)), 20, true) {
		f.Add(appendRecordKey(nil, r))
	}
	f.Add([]byte(strings.Repeat("n", 26)))
	f.Fuzz(func(t *testing.T, k []byte) {
		vals, err := decodeKey(k)
		if err != nil {
			return
		}
		if again := appendArgsKey(nil, vals); !bytes.Equal(again, k) {
			t.Fatalf("decodeKey(%q) = %#v, which encodes as %q", k, vals, again)
		}
	})
}

// A summary since a time early in a day counts that day as the day's
// count less the messages before: a domain, or a source, whose messages
// of the day all came before is not listed, not even with zero.
func TestSummarySinceEarly(t *testing.T) {
	s := openSQLite(t)
	spec := historygen.Spec{Records: 3, Domains: 1, Sources: 1, Start: t0, Step: time.Hour, Reporter: "mx1.example"}
	early, late, failing := spec.Record(0), spec.Record(1), spec.Record(2) // d0.example: pass at 00:00 and 01:00, fail at 02:00
	early.PolicyDomain, early.From, early.JobID = "early.example", "early.example", "E"
	failing.Received = t0.Add(2 * time.Hour)
	importRecords(t, s, early, late, failing)
	for _, c := range []struct {
		since time.Time
		want  string
	}{
		{t0, "[{d0.example 2 1 1 1 1 1 0 1 [{203.0.113.1 1}]} {early.example 1 1 0 1 1 0 0 1 []}]"},
		{t0.Add(30 * time.Minute), "[{d0.example 2 1 1 1 1 1 0 1 [{203.0.113.1 1}]}]"},
		{t0.Add(90 * time.Minute), "[{d0.example 1 0 1 0 0 1 0 0 [{203.0.113.1 1}]}]"},
		{t0.Add(150 * time.Minute), "[]"},
	} {
		got, err := s.Summary(context.Background(), c.since, "", 3)
		if err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("since %v: %v %v, want %s", c.since, got, err, c.want)
		}
	}
}

func importRecords(t testing.TB, s *Store, recs ...*report.HistoryRecord) {
	t.Helper()
	var b []byte
	for _, r := range recs {
		b = r.AppendFormat(b)
	}
	if res := importBytes(t, s, "h", b); res.Added != int64(len(recs)) {
		t.Fatalf("import: %+v", res)
	}
}
