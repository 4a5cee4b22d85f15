package forensic

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Rate
		err  string
	}{
		{"10/1h", Rate{10, time.Hour}, ""},
		{" 5 / 30m ", Rate{5, 30 * time.Minute}, ""},
		{"100/1d", Rate{100, 24 * time.Hour}, ""},
		{"1/2w", Rate{1, 14 * 24 * time.Hour}, ""},
		{"3/1h30m", Rate{3, 90 * time.Minute}, ""},
		{"10", Rate{}, "COUNT/PERIOD"},
		{"0/1h", Rate{}, "count"},
		{"-1/1h", Rate{}, "count"},
		{"x/1h", Rate{}, "count"},
		{"10/", Rate{}, "period"},
		{"10/1x", Rate{}, "period"},
		{"10/500ms", Rate{}, "1s to 366d"},
		{"10/400d", Rate{}, "period"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRate(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRate = %v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseRate = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10/1h", "1/1s", "5/2d", "x", "10/1h30m", "999999/1w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err == nil && (r.Count < 1 || r.Count > MaxRateCount || r.Period < time.Second) {
			t.Fatalf("ParseRate(%q) = %v", s, r)
		}
	})
}

// TestRateLimit: a spoofing wave of 1000 failing messages of one domain
// within a minute gets the bucket's 10 reports; a minute later still none
// (one token every 6 minutes); 6 minutes later one more. Another domain
// is not affected.
func TestRateLimit(t *testing.T) {
	s, err := OpenSpool(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rate := Rate{10, time.Hour}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	for i := range 1000 {
		if s.Allow("Bank.example", rate, t0.Add(time.Duration(i)*60*time.Millisecond)) {
			n++
		}
	}
	if n != 10 {
		t.Fatalf("%d reports allowed in the wave, want 10", n)
	}
	if s.Allow("bank.example", rate, t0.Add(2*time.Minute)) {
		t.Fatal("allowed 2 minutes later")
	}
	if !s.Allow("bank.example", rate, t0.Add(6*time.Minute+time.Second)) {
		t.Fatal("refused 6 minutes later")
	}
	if s.Allow("bank.example", rate, t0.Add(6*time.Minute+2*time.Second)) {
		t.Fatal("a second token appeared from nothing")
	}
	if !s.Allow("other.example", rate, t0) {
		t.Fatal("another domain refused")
	}
}

func TestSpool(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "forensic")
	s, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s2, _ := OpenSpool(dir + "/"); s2 != s {
		t.Fatal("the same directory opened twice is two spools")
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("spool directory: %v %v", fi.Mode(), err)
	}
	s.SetMaxEntries(3)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 3 {
		e := &Entry{Report: *testReport(false), RUF: []string{"mailto:ruf@bank.example"}, Created: base.Add(time.Duration(2-i) * time.Second)}
		if err := s.Add(e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	select {
	case <-s.Wake():
	default:
		t.Fatal("no wake-up after Add")
	}
	if err := s.Add(&Entry{Report: *testReport(false)}); !errors.Is(err, ErrSpoolFull) {
		t.Fatalf("Add to a full spool: %v", err)
	}
	// A temporary file (a write cut short) is not a report.
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("{"), 0o600)
	got, err := s.IDs()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{ids[2], ids[1], ids[0]}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("IDs %q, want oldest first %q", got, want)
	}
	e, err := s.Load(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if e.Report.FromDomain != "bank.example" || string(e.Report.Header) != string(testReport(false).Header) || e.RUF[0] != "mailto:ruf@bank.example" {
		t.Fatalf("loaded %+v", e)
	}
	e.Attempts, e.Next = 1, base.Add(time.Hour)
	if err := s.Update(e); err != nil {
		t.Fatal(err)
	}
	if e2, _ := s.Load(ids[0]); e2.Attempts != 1 || !e2.Next.Equal(base.Add(time.Hour)) {
		t.Fatalf("after Update %+v", e2)
	}
	if err := s.Remove(ids[0]); err != nil || s.Len() != 2 {
		t.Fatalf("Remove: %v, Len %d", err, s.Len())
	}
	if err := s.Remove(ids[0]); err != nil || s.Len() != 2 {
		t.Fatalf("Remove twice: %v, Len %d", err, s.Len())
	}
	os.WriteFile(filepath.Join(dir, "1-1-x.json"), []byte(`{"report":{}}`), 0o600)
	if _, err := s.Load("1-1-x.json"); err == nil {
		t.Fatal("an entry without policy domain loaded")
	}
}

// TestSpoolUnwritable: a spool directory that cannot be written fails Add
// at once (the caller drops the report) and counts nothing.
func TestSpoolUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes into a read-only directory")
	}
	dir := t.TempDir()
	s, err := OpenSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o500)
	defer os.Chmod(dir, 0o700)
	if err := s.Add(&Entry{Report: *testReport(false)}); err == nil || s.Len() != 0 {
		t.Fatalf("Add: %v, Len %d", err, s.Len())
	}
}

func FuzzReadEntry(f *testing.F) {
	f.Add([]byte(`{"report":{"sender":"a@b","policy_domain":"b"},"ruf":["mailto:x@b"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ReadEntry(b)
		if err == nil && (e.Report.PolicyDomain == "" || e.Report.Sender == "") {
			t.Fatal("an entry without policy domain or sender")
		}
	})
}
