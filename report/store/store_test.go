package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/historygen"
	"github.com/mailsidecar/sidecar/report"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func openSQLite(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "reports.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func history(t testing.TB, spec historygen.Spec) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := spec.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func importBytes(t testing.TB, s *Store, name string, b []byte) ImportResult {
	t.Helper()
	res, err := s.Import(context.Background(), bytes.NewReader(b), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func count(t testing.TB, s *Store) int64 {
	t.Helper()
	n, err := s.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Importing the same file twice, and a file and its rotated copy, adds
// each record once; a record cut short at the end is left and imported
// by the run after the writer finished it.
func TestImportIdempotent(t *testing.T) {
	s := openSQLite(t)
	spec := historygen.Spec{Records: 2500, Domains: 7, Sources: 3, Start: t0, Step: time.Second, Reporter: "mx1.example"}
	all := history(t, spec)
	res := importBytes(t, s, "dmarc.dat", all)
	if res.Records != 2500 || res.Added != 2500 || res.Corrupt != 0 || res.Incomplete != 0 {
		t.Fatalf("first import %+v", res)
	}
	res = importBytes(t, s, "dmarc.dat", all)
	if res.Records != 2500 || res.Added != 0 {
		t.Fatalf("second import %+v", res)
	}

	// Rotation: the old file holds the first records, the new one the
	// rest, and an importer that saw the old file whole earlier now sees
	// both: only the new records are added.
	more := history(t, historygen.Spec{Records: 3000, Domains: 7, Sources: 3, Start: t0, Step: time.Second, Reporter: "mx1.example"})
	rotatedNew := more[len(all):]
	cut := len(rotatedNew) - 7 // the writer is in the middle of its last record
	res = importBytes(t, s, "dmarc.dat", rotatedNew[:cut])
	if res.Records != 499 || res.Added != 499 || res.Incomplete != 1 || res.Corrupt != 0 {
		t.Fatalf("import of the new file with a cut record: %+v", res)
	}
	if p := res.Problems[0]; !p.Incomplete || !strings.HasPrefix(p.Error(), "dmarc.dat:") {
		t.Errorf("problem %v", p)
	}
	res = importBytes(t, s, "dmarc.dat.1", all)
	if res.Added != 0 {
		t.Fatalf("rotated copy added %d", res.Added)
	}
	res = importBytes(t, s, "dmarc.dat", rotatedNew)
	if res.Added != 1 || res.Incomplete != 0 {
		t.Fatalf("next run: %+v", res)
	}
	if n := count(t, s); n != 3000 {
		t.Errorf("%d messages stored, want 3000", n)
	}
	// The same job ID and time from another reporter is another message.
	res = importBytes(t, s, "mx2.dat", history(t, historygen.Spec{Records: 10, Domains: 1, Start: t0, Step: time.Second, Reporter: "mx2.example"}))
	if res.Added != 10 {
		t.Errorf("second reporter: %+v", res)
	}
}

// A corrupt record is counted with its file and line and not imported,
// not even in part; its neighbours are.
func TestImportCorrupt(t *testing.T) {
	s := openSQLite(t)
	spec := historygen.Spec{Records: 3, Domains: 1, Start: t0, Step: time.Second, Reporter: "mx1.example"}
	good := string(history(t, spec))
	bad := strings.Replace(good, "pct 100\n", "pct 1000\n", 2) // records 0 and 1
	res := importBytes(t, s, "/var/lib/sidecar/dmarc.dat", []byte(bad))
	if res.Records != 1 || res.Added != 1 || res.Corrupt != 2 || len(res.Problems) != 2 {
		t.Fatalf("%+v", res)
	}
	if got := res.Problems[1].Error(); !strings.HasPrefix(got, "/var/lib/sidecar/dmarc.dat:22: corrupt record: line 33: pct: ") {
		t.Errorf("problem %q", got)
	}
	var job string
	if err := s.DB().QueryRow("SELECT jobid FROM messages").Scan(&job); err != nil || job != "00000002" {
		t.Errorf("stored %q %v", job, err)
	}
}

// The stored rows hold the record's identity and every field of its
// group; the rollup counts it.
func TestImportRow(t *testing.T) {
	s := openSQLite(t)
	text := strings.Replace(string(history(t, historygen.Spec{Records: 1, Domains: 1, Start: t0, Step: time.Second, Reporter: "mx1.example"})),
		"arc_policy 2 json:[]", `arc_policy 0 json:[{ "i": 1, "d":"lists.example", "s":"arc1", "ip":"" }]`, 1)
	text = strings.Replace(text, "dkim d0.example s1 0\n", "dkim d0.example s1 0\ndkim other.example - 7\n", 1)
	importBytes(t, s, "f", []byte(text))
	const cols = "m.reporter, m.received, m.jobid, g.ip, g.header_from, g.envelope_from, g.policy_domain, g.policy, g.action, g.spf, g.dkim," +
		" g.align_dkim, g.align_spf, g.arc_policy, g.p, g.sp, g.pct, g.adkim, g.aspf, g.rua, d.day, d.n, d.last_received"
	want := []any{"mx1.example", t0.Unix(), "00000000", "192.0.2.1", "d0.example", "d0.example", "d0.example",
		int64(15), int64(2), int64(0), "d0.example s1 0\nother.example - 7", int64(4), int64(4), int64(0),
		int64('r'), int64(0), int64(100), int64('r'), int64('r'), "mailto:dmarc@d0.example", t0.Unix(), int64(1), t0.Unix()}
	got := make([]any, len(want))
	ptrs := make([]any, len(want))
	for i := range got {
		ptrs[i] = &got[i]
	}
	if err := s.DB().QueryRow("SELECT " + cols + " FROM messages m JOIN report_groups g ON g.gid = m.gid JOIN group_days d ON d.gid = m.gid").Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("column %s: %#v, want %#v", strings.Split(cols, ", ")[i], got[i], want[i])
		}
	}
}

func TestExpire(t *testing.T) {
	s := openSQLite(t)
	importBytes(t, s, "f", history(t, historygen.Spec{Records: 100, Domains: 2, Start: t0, Step: time.Hour, Reporter: "mx1.example"}))
	n, err := s.Expire(context.Background(), t0.Add(40*time.Hour))
	if err != nil || n != 40 {
		t.Fatalf("expired %d, %v", n, err)
	}
	if c := count(t, s); c != 60 {
		t.Errorf("%d left", c)
	}
}

// An unreadable database is a clear error.
func TestOpenError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "x.db"), []byte("this is not a database file, not at all, no......"), 0o600)
	if _, err := Open(context.Background(), filepath.Join(dir, "x.db")); err == nil || !strings.Contains(err.Error(), "x.db") {
		t.Errorf("err %v", err)
	}
	if _, err := Open(context.Background(), filepath.Join(dir, "no", "such", "dir", "x.db")); err == nil {
		t.Error("no error for a missing directory")
	}
}

// BenchmarkImport imports 1,000,000 and 2,000,000 records (10,000
// policy domains, 5 sources each, one message every 80 ms) into a new
// SQLite file per iteration, and reports records per CPU-second of the
// whole process (parsing, SQLite, garbage collector), records per
// second of wall time, and the peak heap and resident set during the
// import: with twice the records, the same.
func BenchmarkImport(b *testing.B) {
	for _, n := range []int{1000000, 2000000} {
		b.Run(fmt.Sprintf("%dM", n/1000000), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "dmarc.dat")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := (historygen.Spec{Records: n, Domains: 10000, Sources: 5, Start: t0, Step: 80 * time.Millisecond, Reporter: "mx1.example"}).Write(f); err != nil {
				b.Fatal(err)
			}
			f.Close()
			runtime.GC()
			b.ResetTimer()
			var total, cpu time.Duration
			var peak memPeak
			for i := 0; i < b.N; i++ {
				s, err := Open(context.Background(), filepath.Join(b.TempDir(), "reports.db"))
				if err != nil {
					b.Fatal(err)
				}
				in, _ := os.Open(path)
				stop := peak.sample()
				start, cpu0 := time.Now(), cpuTime()
				res, err := s.Import(context.Background(), in, path, nil)
				total += time.Since(start)
				cpu += cpuTime() - cpu0
				stop()
				in.Close()
				s.Close()
				if err != nil || res.Added != int64(n) {
					b.Fatalf("%+v %v", res, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/total.Seconds(), "records/s")
			b.ReportMetric(float64(n)*float64(b.N)/cpu.Seconds(), "records/cpu-s")
			b.ReportMetric(float64(peak.heap)/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(peak.rss)/(1<<20), "peak-rss-MB")
		})
	}
}

// memPeak is the largest heap in use and resident set seen while it
// samples (every 20 ms).
type memPeak struct{ heap, rss uint64 }

func (p *memPeak) sample() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			p.heap = max(p.heap, m.HeapInuse)
			if statm, err := os.ReadFile("/proc/self/statm"); err == nil {
				var size, resident uint64
				fmt.Sscan(string(statm), &size, &resident)
				p.rss = max(p.rss, resident*uint64(os.Getpagesize()))
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// cpuTime is the process's CPU time (user and system): on a shared,
// busy machine it measures the work where wall time measures the queue.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// mixed is spec's history with every other record in the sidecar format.
func mixed(spec historygen.Spec) []byte {
	var b []byte
	for i := 0; i < spec.Records; i++ {
		r := spec.Record(i)
		if i%2 == 1 {
			r.Ext = &report.HistoryExt{SPFDomain: r.MailFrom, SPFScope: report.SPFScopeMailFrom, RcptDomains: []string{"example.org", "example.net"},
				NP: 'q', PSD: 'u', Testing: 'n', FO: "1:d", RUF: []string{"mailto:f@" + r.PolicyDomain},
				Override: []report.OverrideReason{report.OverrideSampledOut, report.OverrideLocalPolicy}}
		}
		b = r.AppendFormat(b)
	}
	return b
}

// A file mixing both formats: the sidecar format's fields are stored,
// NULL for the OpenDMARC records, and come back in the groups.
func TestImportMixed(t *testing.T) {
	s := openSQLite(t)
	spec := historygen.Spec{Records: 4, Domains: 1, Start: t0, Step: time.Second, Reporter: "mx1.example"}
	if res := importBytes(t, s, "f", mixed(spec)); res.Added != 4 || res.Corrupt != 0 {
		t.Fatalf("%+v", res)
	}
	rows, err := s.DB().Query("SELECT jobid, " + extension + " FROM messages JOIN report_groups USING (gid) ORDER BY jobid")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		v := make([]any, 10)
		ptrs := make([]any, 10)
		for i := range v {
			ptrs[i] = &v[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		cells := make([]string, len(v))
		for i, c := range v {
			cells[i] = fmt.Sprint(c)
		}
		got = append(got, strings.Join(cells, "|"))
	}
	want := []string{
		"00000000|<nil>|<nil>|<nil>|<nil>|<nil>|<nil>|<nil>|<nil>|<nil>",
		"00000001|d0.example|mfrom|example.org example.net|113|117|110|1:d|mailto:f@d0.example|sampled_out local_policy",
	}
	if got[0] != want[0] || got[1] != want[1] || len(got) != 4 {
		t.Errorf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var withExt, without int64
	err = s.Groups(context.Background(), t0, t0.Add(time.Hour), "", func(g *Group) error {
		if g.Ext == nil {
			without += g.Count
			return nil
		}
		withExt += g.Count
		if g.Ext.SPFDomain != "d0.example" || strings.Join(g.Ext.RcptDomains, ",") != "example.org,example.net" || g.Ext.NP != 'q' ||
			g.Ext.FO != "1:d" || len(g.Ext.Override) != 2 || g.Ext.Override[1] != report.OverrideLocalPolicy {
			t.Errorf("group extension %+v", g.Ext)
		}
		return nil
	})
	if err != nil || withExt != 2 || without != 2 {
		t.Errorf("groups: %d with the extension, %d without, %v", withExt, without, err)
	}
}

// oldSchema is the messages table of the stores made before the sidecar
// history format.
const oldSchema = `CREATE TABLE messages (reporter TEXT NOT NULL, received BIGINT NOT NULL, jobid TEXT NOT NULL, ip TEXT NOT NULL,
	header_from TEXT NOT NULL, envelope_from TEXT NOT NULL, policy_domain TEXT NOT NULL, policy INTEGER NOT NULL, action INTEGER NOT NULL,
	spf INTEGER NOT NULL, dkim TEXT NOT NULL, align_dkim INTEGER NOT NULL, align_spf INTEGER NOT NULL, arc INTEGER NOT NULL,
	arc_policy INTEGER NOT NULL, arc_seals TEXT NOT NULL, p INTEGER NOT NULL, sp INTEGER NOT NULL, pct INTEGER NOT NULL,
	adkim INTEGER NOT NULL, aspf INTEGER NOT NULL, rua TEXT NOT NULL, PRIMARY KEY (received, reporter, jobid))`
