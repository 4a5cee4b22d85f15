package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDSNCommand(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.eml")
	os.WriteFile(plain, []byte("From: alice@example.com\r\nSubject: hi\r\n\r\nhello\r\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"dsn", "../../dsninfo/testdata/exim-seed.eml"}, 0, []string{"kind: dsn", "recipient 1: d3@myhost.test.ex",
			"status: 5.0.0 (permanent failure: other undefined status)", "remote-ip: [127.0.0.1]:1224",
			"x-exim-diagnostic: SMTP error from remote mail server after RCPT TO:<d3@myhost.test.ex>: 550 hard error",
			"message-id: E10HmaX-0005vi-00@myhost.test.ex"}},
		{[]string{"dsn", plain}, 1, []string{"kind: none"}},
		{[]string{"dsn"}, 2, []string{"usage: sidecar dsn [flags] FILE"}},
		{[]string{"dsn", filepath.Join(dir, "missing")}, 2, []string{"no such file"}},
	} {
		code, out, errs := runCmd(tc.args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", tc.args, code, tc.code, out, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(out+errs, w) {
				t.Errorf("%v: output lacks %q:\n%s%s", tc.args, w, out, errs)
			}
		}
	}
}

func TestReportBounces(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "sidecar.log")
	lines := []string{
		`{"time":"2026-01-01T10:00:00Z","level":"INFO","msg":"transaction","client":"127.0.0.1","sender":"<>"}`,
		`{"time":"2026-01-01T10:00:00Z","level":"INFO","msg":"bounce","kind":"dsn","recipient":"bob@Example.org","action":"failed","status":"5.1.1","status_text":"permanent failure: bad destination mailbox address","remote_mta":"mx.example.org","diagnostic":"550 5.1.1 no such user","queue_id":"Q1","original_message_id":"m1@example.com"}`,
		`{"time":"2026-01-02T10:00:00Z","level":"INFO","msg":"bounce","kind":"dsn","recipient":"carol@example.org","action":"failed","status":"5.1.1","status_text":"permanent failure: bad destination mailbox address","remote_mta":"mx.example.org","diagnostic":"550 5.1.1 gone","queue_id":"Q2","original_message_id":"m2@example.com"}`,
		`{"time":"2026-01-03T10:00:00Z","level":"INFO","msg":"bounce","kind":"dsn","recipient":"dave@example.net","action":"delayed","status":"4.4.1","remote_mta":"mx.example.net","remote_ip":"[192.0.2.1]:25","diagnostic":"connection timed out","queue_id":"Q3"}`,
		`{"time":"2026-01-03T11:00:00Z","msg":"bounce","recipient":`, // cut short
		"level=INFO msg=bounce recipient=text@example.org",           // text format: passed over
		`{"msg":"bounce","x":"` + strings.Repeat("y", 2<<20) + `"}`,
	}
	os.WriteFile(log, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	code, out, errs := runCmd("report", "bounces", "-n", "2", log)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"bounced recipients: 3\n", "      2  failed\n", "      2  mx.example.org\n", "      1  mx.example.net [192.0.2.1]:25\n",
		"      2  5.1.1 (permanent failure: bad destination mailbox address)\n", "      2  example.org\n",
		"2026-01-03T10:00:00Z  dave@example.net  delayed 4.4.1  connection timed out  queue_id=Q3",
		"2026-01-02T10:00:00Z  carol@example.org", "unreadable bounce lines: 1; lines over 1048576 bytes passed over: 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "m1@example.com") {
		t.Errorf("-n 2 showed a third diagnostic:\n%s", out)
	}
	code, out, _ = runCmd("report", "bounces", "-since", "2026-01-02T00:00:00Z", log)
	if code != 0 || !strings.Contains(out, "bounced recipients: 2 since 2026-01-02T00:00:00Z") || strings.Contains(out, "bob@") {
		t.Errorf("-since: exit %d\n%s", code, out)
	}
	if code, _, errs := runCmd("report", "bounces", "-since", "yesterday", log); code != 2 || !strings.Contains(errs, "bad -since") {
		t.Errorf("bad -since: exit %d %s", code, errs)
	}
	if code, _, _ := runCmd("report"); code != 2 {
		t.Errorf("report without a report: exit %d", code)
	}
	now := time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)
	if got, err := parseSince("24h", now); err != nil || !got.Equal(now.Add(-24*time.Hour)) {
		t.Errorf("parseSince(24h) = %v, %v", got, err)
	}
}

// BenchmarkReportBounces reads a log of 10,000 bounce lines with hostile
// shapes among them (a 2 MB line, cut lines): the work is linear in the
// log and the tables are bounded.
func BenchmarkReportBounces(b *testing.B) {
	var sb strings.Builder
	for i := range 10000 {
		sb.WriteString(`{"time":"2026-01-01T10:00:00Z","msg":"bounce","recipient":"u` + strings.Repeat("x", i%50) + `@d` +
			string(rune('a'+i%26)) + `.example","action":"failed","status":"5.1.1","remote_mta":"mx.example.org","diagnostic":"550"}` + "\n")
		if i%1000 == 0 {
			sb.WriteString(`{"msg":"bounce","x":"` + strings.Repeat("y", 2<<20) + "\"}\n" + `{"msg":"bounce",` + "\n")
		}
	}
	log := sb.String()
	b.SetBytes(int64(len(log)))
	b.ReportAllocs()
	for b.Loop() {
		s := newBounceSummary(time.Time{}, 10)
		if err := s.read(strings.NewReader(log)); err != nil || s.total != 10000 {
			b.Fatal(err, s.total)
		}
	}
}
