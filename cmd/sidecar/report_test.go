package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/historygen"
	"github.com/mailsidecar/sidecar/internal/testkit/xmlschema"
	"github.com/mailsidecar/sidecar/report/store"
)

// reportSetup writes a configuration naming a new SQLite report database
// and the history file, and the history of spec.
func reportSetup(t *testing.T, spec historygen.Spec, extra string) (conf, hist, db string) {
	t.Helper()
	dir := t.TempDir()
	hist, db, conf = filepath.Join(dir, "dmarc.dat"), filepath.Join(dir, "reports.db"), filepath.Join(dir, "sidecar.conf")
	var b bytes.Buffer
	if err := spec.Write(&b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hist, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	text := "primary_hostname = mx.example.net\ndmarc_history_file = " + hist + "\nreport_database = " + db + "\n" + extra
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf, hist, db
}

func TestReportImportCommand(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	// Half a day off the day boundaries, so that "expire -days 10", run a
	// few seconds later, finds no record at its cutoff.
	spec := historygen.Spec{Records: 40, Domains: 2, Start: now.Add(-40*24*time.Hour + 12*time.Hour), Step: 24 * time.Hour, Reporter: "mx1.example"}
	conf, hist, _ := reportSetup(t, spec, "")
	code, out, errs := runCmd("report", "import", "-config", conf)
	if code != 0 || out != hist+": 40 records, 40 added, 0 already stored, 0 corrupt, 0 cut short\n" || errs != "" {
		t.Fatalf("first import: %d\n%s\n%s", code, out, errs)
	}
	// The file again and its rotated copy with one more, corrupt, record:
	// nothing twice, the corrupt one named with its line, exit status 1.
	b, _ := os.ReadFile(hist)
	rotated := hist + ".1"
	os.WriteFile(rotated, append(b, strings.Replace(string(b[:bytes.Index(b[1:], []byte("\njob "))+2]), "ipaddr 192.0.2.1", "ipaddr x", 1)...), 0o600)
	code, out, errs = runCmd("report", "import", "-config", conf, hist, rotated)
	if code != 1 || !strings.Contains(out, rotated+": 40 records, 0 added, 40 already stored, 1 corrupt, 0 cut short\n") ||
		!strings.Contains(out, "total: 80 records, 0 added, 80 already stored, 1 corrupt, 0 cut short") ||
		!strings.HasPrefix(errs, rotated+":828: corrupt record: line 831: ipaddr: ") {
		t.Fatalf("second import: %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runCmd("report", "expire", "-config", conf, "-days", "10")
	if code != 0 || !strings.HasPrefix(out, "30 records before ") {
		t.Fatalf("expire: %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs = runCmd("report", "expire", "-config", conf); code != 2 || !strings.Contains(errs, "-days N") {
		t.Errorf("expire without -days: %d %s", code, errs)
	}
	// Faults: a missing file, an unusable database.
	if code, _, errs = runCmd("report", "import", "-config", conf, filepath.Join(t.TempDir(), "nosuch")); code != 1 || !strings.Contains(errs, "no such file") {
		t.Errorf("missing file: %d %s", code, errs)
	}
	if code, _, errs = runCmd("report", "import", "-config", conf, "-database", filepath.Join(t.TempDir(), "no", "dir.db"), hist); code != 1 || !strings.Contains(errs, "report database ") {
		t.Errorf("bad database: %d %s", code, errs)
	}
	if code, _, errs = runCmd("report", "import", "-config", conf, "-database", "relative.db", hist); code != 2 || !strings.Contains(errs, "neither an absolute path") {
		t.Errorf("relative database: %d %s", code, errs)
	}
	if code, _, _ = runCmd("report", "nosuch"); code != 2 {
		t.Errorf("unknown report command: %d", code)
	}
}

func TestReportAggregateCommand(t *testing.T) {
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	spec := historygen.Spec{Records: 300, Domains: 3, Sources: 2, Start: day, Step: 5 * time.Minute, Reporter: "mx1.example"} // 25 hours
	conf, _, _ := reportSetup(t, spec, "report_org_name = Example Mail\nreport_email = dmarc@mx.example.net\n")
	if code, _, errs := runCmd("report", "import", "-q", "-config", conf); code != 0 {
		t.Fatalf("import: %s", errs)
	}
	dir := t.TempDir()
	code, out, errs := runCmd("report", "aggregate", "-config", conf, "-begin", "2026-03-01", "-out", dir)
	if code != 0 || !strings.HasSuffix(out, "3 reports for 2026-03-01T00:00:00Z to 2026-03-02T00:00:00Z\n") {
		t.Fatalf("aggregate: %d\n%s\n%s", code, out, errs)
	}
	for d := 0; d < 3; d++ {
		gz, err := os.ReadFile(filepath.Join(dir, "mx.example.net!d"+string(rune('0'+d))+".example!1772323200!1772409599.xml.gz"))
		if err != nil {
			t.Fatal(err)
		}
		xmlschema.Validate(t, gz)
		// 288 messages in the day, 96 per domain from two sources; the
		// third domain's all fail and were rejected.
		x := gunzip(t, gz)
		if !strings.Contains(x, "<org_name>Example Mail</org_name>") || !strings.Contains(x, "<email>dmarc@mx.example.net</email>") ||
			strings.Count(x, "<record>") != 2 || strings.Count(x, "<count>48</count>") != 2 ||
			strings.Count(x, "<disposition>reject</disposition>") != map[int]int{0: 0, 1: 0, 2: 2}[d] {
			t.Errorf("report:\n%s", x)
		}
	}
	code, out, _ = runCmd("report", "aggregate", "-config", conf, "-begin", "2026-03-01", "-domain", "d1.example", "-out", t.TempDir())
	if code != 0 || !strings.HasSuffix(out, "1 reports for 2026-03-01T00:00:00Z to 2026-03-02T00:00:00Z\n") {
		t.Errorf("-domain: %s", out)
	}
	if code, _, errs = runCmd("report", "aggregate", "-config", conf, "-begin", "yesterday", "-out", dir); code != 2 || !strings.Contains(errs, "YYYY-MM-DD") {
		t.Errorf("bad -begin: %d %s", code, errs)
	}
	if code, _, errs = runCmd("report", "aggregate", "-config", conf, "-out", filepath.Join(dir, "nosuch"), "-begin", "2026-03-01"); code != 1 || !strings.Contains(errs, "nosuch") {
		t.Errorf("missing directory: %d %s", code, errs)
	}
}

func gunzip(t *testing.T, gz []byte) string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReportSummaryCommand(t *testing.T) {
	now := time.Now().UTC()
	// 60 messages of two domains in the last hours; every third fails
	// and was rejected.
	spec := historygen.Spec{Records: 60, Domains: 2, Sources: 2, Start: now.Add(-2 * time.Hour), Step: time.Minute, Reporter: "mx1.example"}
	conf, _, _ := reportSetup(t, spec, "")
	if code, _, errs := runCmd("report", "import", "-q", "-config", conf); code != 0 {
		t.Fatalf("import: %s", errs)
	}
	code, out, errs := runCmd("report", "summary", "-config", conf)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("summary: %d\n%s\n%s", code, out, errs)
	}
	for i, want := range []string{"d0.example  30  20 (67%)  10  20 (67%)  20 (67%)  10  0  20    203.0.113.1 (5), 203.0.113.2 (5)",
		"d1.example  30  20 (67%)  10  20 (67%)  20 (67%)  10  0  20    203.0.113.1 (5), 203.0.113.2 (5)"} {
		if got := strings.Join(strings.Fields(lines[i+1]), "  "); got != strings.Join(strings.Fields(want), "  ") {
			t.Errorf("line %d: %q\nwant %q", i+1, got, want)
		}
	}
	code, out, _ = runCmd("report", "summary", "-config", conf, "-json", "-domain", "d1.example", "-top", "1")
	var got []store.DomainSummary
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 0 {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(got) != 1 || got[0].Domain != "d1.example" || got[0].Messages != 30 || got[0].DMARCFail != 10 || got[0].Rejected != 10 ||
		len(got[0].TopFailing) != 1 || got[0].TopFailing[0].Count != 5 {
		t.Errorf("json %+v", got)
	}
}
