package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// readAll reads every record and error of a history text.
func readAll(t testing.TB, text string) ([]*HistoryRecord, []*HistoryError) {
	t.Helper()
	r := NewHistoryReader(strings.NewReader(text), "dmarc.dat")
	var recs []*HistoryRecord
	var errs []*HistoryError
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, errs
		}
		var he *HistoryError
		if errors.As(err, &he) {
			errs = append(errs, he)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
}

// readInto reads text with NextInto into one record, and returns each
// record formatted, and the errors formatted.
func readInto(t testing.TB, text string) (recs, errs []string) {
	t.Helper()
	r := NewHistoryReader(strings.NewReader(text), "dmarc.dat")
	rec := &HistoryRecord{}
	for {
		err := r.NextInto(rec)
		if err == io.EOF {
			return recs, errs
		}
		var he *HistoryError
		if errors.As(err, &he) {
			errs = append(errs, he.Error())
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, string(rec.AppendFormat(nil)))
	}
}

// sameAsNext checks that NextInto, reusing one record, reads text as
// Next does.
func sameAsNext(t testing.TB, text string) {
	t.Helper()
	recs, errs := readAll(t, text)
	gotRecs, gotErrs := readInto(t, text)
	var wantRecs, wantErrs []string
	for _, r := range recs {
		wantRecs = append(wantRecs, string(r.AppendFormat(nil)))
	}
	for _, e := range errs {
		wantErrs = append(wantErrs, e.Error())
	}
	if strings.Join(gotRecs, "\x00") != strings.Join(wantRecs, "\x00") || strings.Join(gotErrs, "\n") != strings.Join(wantErrs, "\n") {
		t.Fatalf("NextInto read %d records and %q, Next %d and %q", len(gotRecs), gotErrs, len(wantRecs), wantErrs)
	}
}

// NextInto reads what Next reads, though its record's lists shrink and
// grow from one record to the next.
func TestHistoryReaderNextInto(t *testing.T) {
	var text []byte
	for i := 0; i < 50; i++ {
		r := &HistoryRecord{JobID: fmt.Sprintf("J%d", i), Reporter: "mx1.example", Received: time.Unix(1700000000+int64(i), 0),
			IPAddr: "192.0.2.1", From: "d.example", MailFrom: "d.example", PolicyDomain: "d.example", Policy: HistoryPolicyPass,
			Pct: 100, ADKIM: 'r', ASPF: 'r', P: 'r', AlignDKIM: 4, AlignSPF: 4, ARC: ARESFail, ARCPolicy: 2}
		for k := 0; k < i%4; k++ {
			r.DKIM = append(r.DKIM, HistoryDKIM{fmt.Sprintf("k%d.example", k), "s1", ARESPass})
			r.RUA = append(r.RUA, fmt.Sprintf("mailto:r%d@d.example", k))
		}
		if i%3 == 0 {
			r.Ext = &HistoryExt{SPFDomain: "d.example", RcptDomains: []string{"x.example"}, FO: "1"}
		}
		text = r.AppendFormat(text)
	}
	sameAsNext(t, string(text))
	sameAsNext(t, observed+"pct 1000\n"+observed+observed[:40])
}

// The writer's output reads back as the same records: the round trip of
// AppendFormat and the reader, including DKIM lines, rua lists and seals.
func TestHistoryReaderRoundTrip(t *testing.T) {
	in := []*HistoryRecord{
		{JobID: "Q1", Reporter: "mx.example.net", Received: time.Unix(1700000000, 0), IPAddr: "203.0.113.9",
			From: "sender.example", MailFrom: "sender.example", SPF: ARESFail, PolicyDomain: "sender.example",
			Policy: HistoryPolicyReject, RUA: []string{"mailto:a@sender.example", "mailto:b@x.example!10m"}, Pct: 100,
			ADKIM: 'r', ASPF: 's', P: 'r', SP: 'q', AlignDKIM: HistoryAlignFail, AlignSPF: HistoryAlignFail,
			ARC: ARESFail, ARCPolicy: 2, Action: HistoryActionReject,
			DKIM: []HistoryDKIM{{"sender.example", "rsa", ARESPass}, {"other.example", "-", ARESFail}}},
		{JobID: "Q2", Reporter: "mx.example.net", Received: time.Unix(1700000001, 0), IPAddr: "2001:db8::25",
			From: "quar.example", MailFrom: "", SPF: ARESUndefined, PolicyDomain: "quar.example",
			Policy: HistoryPolicyQuarantine, Pct: 50, ADKIM: 'r', ASPF: 'r', P: 'q', AlignDKIM: 5, AlignSPF: 5,
			ARC: ARESPass, ARCPolicy: 0, Action: HistoryActionAccept,
			ARCSeals: []ARCSeal{{1, "lists.example", "arc1", ""}, {2, "fwd.example", "s", "192.0.2.1"}}},
	}
	var text []byte
	for _, r := range in {
		text = r.AppendFormat(text)
	}
	recs, errs := readAll(t, string(text))
	if len(errs) != 0 || len(recs) != 2 {
		t.Fatalf("records %d, errors %v", len(recs), errs)
	}
	for i := range in {
		if got, want := string(recs[i].AppendFormat(nil)), string(in[i].AppendFormat(nil)); got != want {
			t.Errorf("record %d:\n%s\nwant:\n%s", i, got, want)
		}
	}
}

// OpenDMARC's own record (opendmarc-history.md) reads, with keys in
// another order, blank lines, CRLF and an unknown key.
func TestHistoryReaderOpenDMARC(t *testing.T) {
	reordered := "action 4\n" + strings.Replace(strings.TrimSuffix(observed, "action 2\n"), "job 4Pipe11D6D987\n", "", 1)
	text := observed + "\n\n" + "job 2ND\r\n" + strings.ReplaceAll(reordered, "\n", "\r\n") + "x_future 1 2 3\n"
	recs, errs := readAll(t, text)
	if len(errs) != 0 || len(recs) != 2 {
		t.Fatalf("records %d, errors %v", len(recs), errs)
	}
	r := recs[1]
	if r.JobID != "2ND" || r.Action != HistoryActionQuarantine || r.Received.Unix() != 1795422698 || r.IPAddr != "203.0.113.5" ||
		len(r.DKIM) != 1 || r.DKIM[0] != (HistoryDKIM{"example.com", "sel1", ARESPass}) || r.SPF != ARESFail ||
		r.AlignDKIM != HistoryAlignPass || r.AlignSPF != HistoryAlignFail || r.P != 'r' || r.RUA[0] != "mailto:dmarc-agg@example.com" {
		t.Errorf("record %+v", r)
	}
}

// Corrupt records are reported with the file and their first line, and
// skipped whole; the records around them are read. A record cut short at
// the end of the file is reported as incomplete, not corrupt.
func TestHistoryReaderCorrupt(t *testing.T) {
	rec := func(job string) string { return strings.Replace(observed, "4Pipe11D6D987", job, 1) }
	n := strings.Count(observed, "\n")
	text := "spf 0\naction 2\n" + // the tail of a record from a previous file: lines 1-2
		rec("A") + // 3
		strings.Replace(rec("B"), "ipaddr 203.0.113.5", "ipaddr 203.0.113", 1) + // 3+n
		strings.Replace(rec("C"), "arc_policy 2 json:[]", "arc_policy 2", 1) +
		strings.Replace(rec("D"), "received 1795422698\n", "", 1) +
		strings.Replace(rec("E"), "spf 7", "spf 7\nspf 0", 1) +
		rec("F") +
		strings.Replace(rec("G"), "dkim example.com sel1 0", "dkim example.com 0", 1) +
		strings.Replace(rec("H"), "from example.com", "from "+strings.Repeat("x", MaxHistoryLine+10), 1) +
		rec("I") +
		rec("J")[:len(rec("J"))-len("action 2\n")-3] // cut short
	recs, errs := readAll(t, text)
	var jobs []string
	for _, r := range recs {
		jobs = append(jobs, r.JobID)
	}
	if strings.Join(jobs, ",") != "A,F,I" {
		t.Errorf("records %v, want A,F,I", jobs)
	}
	want := []struct {
		line       int
		incomplete bool
		msg        string
	}{
		{1, false, `lines before the first "job"`},
		{3 + n, false, `ipaddr: "203.0.113" is not an IP address`},
		{3 + 2*n, false, `no "json:[…]"`},
		{3 + 3*n, false, "missing received"},
		{3 + 4*n - 1, false, "spf: repeated"},
		{3 + 6*n, false, `dkim: "example.com 0" is not "domain selector result"`},
		{3 + 7*n, false, "longer than"},
		{3 + 9*n, true, "no line end"},
	}
	if len(errs) != len(want) {
		t.Fatalf("errors:\n%v\nwant %d", errs, len(want))
	}
	for i, w := range want {
		e := errs[i]
		if e.Line != w.line || e.Incomplete != w.incomplete || !strings.Contains(e.Error(), w.msg) || !strings.HasPrefix(e.Error(), "dmarc.dat:") {
			t.Errorf("error %d: %v (line %d, incomplete %v), want line %d incomplete %v containing %q", i, e, e.Line, e.Incomplete, w.line, w.incomplete, w.msg)
		}
	}
	// A last record with its line end but without its last keys is cut
	// short too.
	_, errs = readAll(t, rec("K")[:len(rec("K"))-len("action 2\n")])
	if len(errs) != 1 || !errs[0].Incomplete || !strings.Contains(errs[0].Error(), "missing action") {
		t.Errorf("errors %v", errs)
	}
}

func FuzzHistoryReader(f *testing.F) {
	f.Add(observed)
	f.Add(observed + observed[:100])
	f.Add("job\njob x\nreporter\n\n\r\narc_policy 1 json:[{\"i\":1}]\ndkim a b 99\n")
	f.Add(observed + "spf_domain A.example\nspf_scope helo\nrcpt_domain -\nnp 113\nt 0\nfo -\nruf x\noverride other\n")
	f.Fuzz(func(t *testing.T, text string) {
		if got, want := splitFields([]byte(text), nil), bytes.Fields([]byte(text)); !equalFields(got, want) {
			t.Fatalf("splitFields(%q) = %q, want %q", text, got, want)
		}
		sameAsNext(t, text)
		recs, _ := readAll(t, text)
		// Whatever reads, writes back and reads again the same.
		for _, r := range recs {
			out := string(r.AppendFormat(nil))
			again, errs := readAll(t, out)
			if len(errs) != 0 || len(again) != 1 {
				t.Fatalf("record %q does not read back: %v", out, errs)
			}
			if got := string(again[0].AppendFormat(nil)); got != out {
				t.Fatalf("round trip:\n%s\nwant:\n%s", got, out)
			}
		}
	})
}

func equalFields(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestSplitFields(t *testing.T) {
	for _, in := range []string{"", " ", "a", "d.example s1 0", "  d.example\ts1  0 ", "a\vb\fc\rd\ne", "dé s 0", "a\u00a0b \u0085c", "x  "} {
		if got, want := splitFields([]byte(in), nil), bytes.Fields([]byte(in)); !equalFields(got, want) {
			t.Errorf("splitFields(%q) = %q, want %q", in, got, want)
		}
	}
}

// The reader shares the strings that repeat between records; its tables
// stop growing when full, and every record still gets its own values.
func TestHistoryReaderInterned(t *testing.T) {
	const n = 2*maxInterned + 17
	var text []byte
	for i := 0; i < n; i++ {
		d := fmt.Sprintf("D%d.Example", i%(maxInterned+100))
		r := &HistoryRecord{JobID: fmt.Sprintf("J%d", i), Reporter: "mx1.example", Received: time.Unix(1700000000+int64(i), 0),
			IPAddr: fmt.Sprintf("::ffff:198.51.%d.%d", i/250%250, i%250), From: d, MailFrom: d, PolicyDomain: d, Policy: HistoryPolicyPass,
			RUA: []string{"mailto:r@" + d}, Pct: 100, ADKIM: 'r', ASPF: 'r', P: 'r', AlignDKIM: 4, AlignSPF: 4, ARC: ARESFail, ARCPolicy: 2,
			DKIM: []HistoryDKIM{{d, "s1", ARESPass}}}
		text = r.AppendFormat(text)
	}
	recs, errs := readAll(t, string(text))
	if len(errs) != 0 || len(recs) != n {
		t.Fatalf("%d records, %v", len(recs), errs)
	}
	for i, r := range recs {
		d := fmt.Sprintf("d%d.example", i%(maxInterned+100))
		ip := fmt.Sprintf("198.51.%d.%d", i/250%250, i%250)
		if r.From != d || r.MailFrom != d || r.PolicyDomain != d || r.DKIM[0].Domain != d || r.IPAddr != ip ||
			r.RUA[0] != "mailto:r@D"+d[1:len(d)-len("example")]+"Example" || r.JobID != fmt.Sprintf("J%d", i) {
			t.Fatalf("record %d: %+v", i, r)
		}
	}
}

// BenchmarkHistoryReader reads 100,000 records written by AppendFormat.
func BenchmarkHistoryReader(b *testing.B) {
	var text []byte
	for i := 0; i < 100000; i++ {
		r := &HistoryRecord{JobID: "Q" + string(rune('A'+i%26)) + time.Unix(int64(i), 0).Format("150405"), Reporter: "mx1.example",
			Received: time.Unix(1700000000+int64(i), 0), IPAddr: "192.0.2.1", From: "d.example", MailFrom: "d.example",
			PolicyDomain: "d.example", Policy: HistoryPolicyPass, RUA: []string{"mailto:dmarc@d.example"}, Pct: 100,
			ADKIM: 'r', ASPF: 'r', P: 'r', AlignDKIM: 4, AlignSPF: 4, ARC: ARESFail, ARCPolicy: 2, Action: 2,
			DKIM: []HistoryDKIM{{"d.example", "s1", ARESPass}}}
		text = r.AppendFormat(text)
	}
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewHistoryReader(bytes.NewReader(text), "bench")
		n := 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 100000 {
			b.Fatalf("%d records", n)
		}
	}
	b.ReportMetric(float64(100000*b.N)/b.Elapsed().Seconds(), "records/s")
}

// Both formats read back as written, in one file; a reader of the
// OpenDMARC subset sees the same record in both.
func TestHistoryReaderSidecarRoundTrip(t *testing.T) {
	base := HistoryRecord{JobID: "Q1", Reporter: "mx.example.net", Received: time.Unix(1700000000, 0), IPAddr: "203.0.113.9",
		From: "sender.example", MailFrom: "sender.example", SPF: ARESFail, PolicyDomain: "sender.example",
		Policy: HistoryPolicyReject, RUA: []string{"mailto:a@sender.example"}, Pct: 100,
		ADKIM: 'r', ASPF: 's', P: 'r', SP: 'q', AlignDKIM: HistoryAlignFail, AlignSPF: HistoryAlignFail,
		ARC: ARESFail, ARCPolicy: 2, Action: HistoryActionAccept}
	full := base
	full.JobID = "Q2"
	full.Ext = &HistoryExt{SPFDomain: "sender.example", SPFScope: SPFScopeMailFrom, RcptDomains: []string{"example.org", "example.net"},
		NP: 'r', PSD: 'u', Testing: 'n', FO: "1:d", RUF: []string{"mailto:f@sender.example"},
		Override: []OverrideReason{OverrideSampledOut, OverrideLocalPolicy}}
	empty := base
	empty.JobID, empty.Ext = "Q3", &HistoryExt{}
	var text []byte
	for _, r := range []*HistoryRecord{&base, &full, &empty} {
		text = r.AppendFormat(text)
	}
	recs, errs := readAll(t, string(text))
	if len(errs) != 0 || len(recs) != 3 {
		t.Fatalf("records %d, errors %v", len(recs), errs)
	}
	if recs[0].Ext != nil || recs[1].Ext == nil || recs[2].Ext == nil {
		t.Errorf("extensions %v %v %v", recs[0].Ext, recs[1].Ext, recs[2].Ext)
	}
	for i, want := range []*HistoryRecord{&base, &full, &empty} {
		if got := string(recs[i].AppendFormat(nil)); got != string(want.AppendFormat(nil)) {
			t.Errorf("record %d:\n%s\nwant:\n%s", i, got, want.AppendFormat(nil))
		}
		subset := *recs[i]
		subset.Ext, subset.JobID = nil, "Q1"
		if got := string(subset.AppendFormat(nil)); got != string(base.AppendFormat(nil)) {
			t.Errorf("record %d, OpenDMARC's keys:\n%s", i, got)
		}
	}
	// Bad values of the extension make the record corrupt, with the line.
	for _, tc := range []struct{ line, msg string }{
		{"spf_scope pra", `spf_scope: "pra" is not mfrom, helo or -`},
		{"np 120", `np: "120" is not 0 or the ASCII code of one of "nqr"`},
		{"t y", `t: "y" is not 0`},
		{"override forwarded", `override: "forwarded" is not a policy_override_reason`},
		{"spf_domain -\nspf_domain x.example", "spf_domain: repeated"},
		{"ruf a b", `ruf: "a b" is not one word`},
	} {
		_, errs := readAll(t, string(base.AppendFormat(nil))+tc.line+"\n")
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.msg) {
			t.Errorf("%q: errors %v, want %q", tc.line, errs, tc.msg)
		}
	}
}
