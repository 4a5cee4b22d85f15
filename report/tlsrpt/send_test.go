package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/internal/testkit/testpki"
	"github.com/mailsidecar/sidecar/mtasts"
	"github.com/mailsidecar/sidecar/report/mailout"
	"github.com/mailsidecar/sidecar/resolver"
)

func testReport(domain string) *Report {
	day := time.Date(2025, 12, 4, 0, 0, 0, 0, time.UTC)
	return &Report{
		OrganizationName: "Reporter", ContactInfo: "postmaster@reporter.example", Sender: "reporter.example",
		ReportID:  "2025-12-04_" + domain + "@reporter.example",
		DateRange: DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
		Policies: []PolicyAgg{{Policy: PolicyDesc{Type: PolicyTLSA, String: []string{"3 1 1 ab"}, Domain: domain},
			Summary:        Summary{Successful: 3, Failure: 1},
			FailureDetails: []FailureDetail{{ResultType: TLSAInvalid, ReceivingMXHostname: "mx." + domain, FailedSessionCount: 1}}}},
	}
}

// reportServer is the https: rua: /v1 takes reports, /busy answers 503,
// /gone 404.
type reportServer struct {
	*httptest.Server
	mu    sync.Mutex
	posts map[string][][]byte // path: bodies
	types []string
}

func startReportServer(t *testing.T, ca *testpki.CA, name string) *reportServer {
	rs := &reportServer{posts: map[string][][]byte{}}
	rs.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rs.mu.Lock()
		rs.posts[r.URL.Path] = append(rs.posts[r.URL.Path], body)
		rs.types = append(rs.types, r.Method+" "+r.Header.Get("Content-Type"))
		rs.mu.Unlock()
		switch r.URL.Path {
		case "/busy":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/gone":
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	rs.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, name)}}
	rs.StartTLS()
	t.Cleanup(rs.Close)
	return rs
}

func (rs *reportServer) count(path string) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.posts[path])
}

func gunzip(t *testing.T, gz []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func outcomes(t *testing.T, s *Sender, reports []*Report) []string {
	t.Helper()
	var got []string
	for _, r := range reports {
		os, err := s.Send(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range os {
			got = append(got, fmt.Sprintf("%s %s %s", r.PolicyDomain(), o.Dest, o.Status))
		}
	}
	return got
}

func sameOutcomes(t *testing.T, run string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n%s\nwant\n%s", run, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSend: reports reach mailto: destinations through the SMTP sink and
// https: ones through a local HTTPS server with a private CA, the record
// looked up through the resolver; a second run sends nothing; temporary
// failures (DNS, HTTP 503) are tried again and then succeed, permanent
// ones (HTTP 404, no record) are recorded and not tried again.
func TestSend(t *testing.T) {
	ca := testpki.NewCA(t)
	rs := startReportServer(t, ca, "reports.example")
	_, port, _ := net.SplitHostPort(rs.Listener.Addr().String())
	web := "https://reports.example:" + port
	z := dnstest.NewZone().Add(
		`reports.example. 300 IN A 127.0.0.1`,
		`_smtp._tls.mail.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:tls%2Brpt@rua.example"`,
		`_smtp._tls.web.example. 300 IN TXT "v=TLSRPTv1; rua=`+web+`/v1"`,
		`_smtp._tls.both.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:both@rua.example,`+web+`/v1,`+web+`/busy"`,
		`_smtp._tls.gone.example. 300 IN TXT "v=TLSRPTv1; rua=`+web+`/gone"`,
		`_smtp._tls.down.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:down@rua.example"`,
		`_smtp._tls.bad.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:"`,
	).SetFault("_smtp._tls.down.example", resolver.TypeTXT, dnstest.ServFail)
	q := dnstest.NewResolver(t, z)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sink := testmta.ServeSink(t, l, testmta.SinkOptions{TLS: &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "localhost")}}})
	statePath := filepath.Join(t.TempDir(), "tlsrpt.state")
	now := func() time.Time { return time.Date(2025, 12, 5, 1, 10, 0, 0, time.UTC) }
	newSender := func() *Sender {
		st, err := LoadState(statePath, now())
		if err != nil {
			t.Fatal(err)
		}
		return &Sender{DNS: q, SMTP: &mailout.Client{Addr: sink.Addr(), Helo: "reporter.example", Timeout: 10 * time.Second},
			HTTP: mtasts.NewResolvingHTTPClient(ca.Pool, 5*time.Second, q), From: "tlsrpt@reporter.example", State: st,
			Now: now}
	}
	var reports []*Report
	for _, d := range []string{"mail.example", "web.example", "both.example", "gone.example", "down.example", "none.example", "bad.example"} {
		reports = append(reports, testReport(d))
	}

	got := outcomes(t, newSender(), reports)
	want := []string{
		"mail.example mailto:tls%2Brpt@rua.example sent",
		"web.example " + web + "/v1 sent",
		"both.example mailto:both@rua.example sent",
		"both.example " + web + "/v1 sent",
		"both.example " + web + "/busy deferred",
		"gone.example " + web + "/gone refused",
		"down.example  deferred",
		"none.example  no-record",
		"bad.example  no-record",
	}
	sameOutcomes(t, "first run", got, want)
	for _, to := range []string{"tls+rpt@rua.example", "both@rua.example"} {
		select {
		case m := <-sink.Msgs:
			checkReportMail(t, m, to)
		case <-time.After(5 * time.Second):
			t.Fatal("no report mail")
		}
	}
	if sink.TLSMessages() != 2 {
		t.Errorf("report mails over STARTTLS: %d, want 2", sink.TLSMessages())
	}
	if n := rs.count("/v1"); n != 2 {
		t.Fatalf("%d POSTs to /v1, want 2", n)
	}
	if want := "POST " + MediaType; rs.types[0] != want {
		t.Errorf("request %q, want %q", rs.types[0], want)
	}
	if body := gunzip(t, rs.posts["/v1"][0]); !bytes.Contains(body, []byte(`"policy-domain": "web.example"`)) {
		t.Errorf("posted report:\n%s", body)
	}

	// Second run, from the state file: only the temporary failures are
	// tried again; the DNS is fixed by now.
	z.SetFault("_smtp._tls.down.example", resolver.TypeTXT, dnstest.NoFault)
	got = outcomes(t, newSender(), reports)
	want = []string{
		"mail.example mailto:tls%2Brpt@rua.example skipped",
		"web.example " + web + "/v1 skipped",
		"both.example mailto:both@rua.example skipped",
		"both.example " + web + "/v1 skipped",
		"both.example " + web + "/busy deferred",
		"gone.example " + web + "/gone skipped",
		"down.example mailto:down@rua.example sent",
		"none.example  skipped",
		"bad.example  skipped",
	}
	sameOutcomes(t, "second run", got, want)
	if rs.count("/v1") != 2 || rs.count("/busy") != 2 || rs.count("/gone") != 1 {
		t.Errorf("POSTs /v1 %d /busy %d /gone %d, want 2 2 1", rs.count("/v1"), rs.count("/busy"), rs.count("/gone"))
	}
	select {
	case m := <-sink.Msgs:
		checkReportMail(t, m, "down@rua.example")
	case <-time.After(5 * time.Second):
		t.Fatal("no report mail for down.example")
	}
	select {
	case m := <-sink.Msgs:
		t.Fatalf("a report mail sent twice:\n%s", m)
	default:
	}
}

// TestSendSMTPRefusals: a 4xx from report_smtp is tried again on the next
// run, a 5xx is recorded and not.
func TestSendSMTPRefusals(t *testing.T) {
	z := dnstest.NewZone().Add(`_smtp._tls.mail.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@rua.example"`)
	q := dnstest.NewResolver(t, z)
	statePath := filepath.Join(t.TempDir(), "state")
	r := testReport("mail.example")
	run := func(reply string) Status {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		sink := testmta.ServeSink(t, l, testmta.SinkOptions{RcptReply: reply})
		st, err := LoadState(statePath, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		s := &Sender{DNS: q, SMTP: &mailout.Client{Addr: sink.Addr()}, From: "tlsrpt@reporter.example", State: st}
		os, err := s.Send(context.Background(), r)
		if err != nil || len(os) != 1 {
			t.Fatalf("Send = %v, %v", os, err)
		}
		return os[0].Status
	}
	for i, step := range []struct {
		reply string
		want  Status
	}{
		{"451 4.3.0 try later", Deferred},
		{"451 4.3.0 try later", Deferred},
		{"550 5.7.1 not here", Refused},
		{"", Skipped},
	} {
		if got := run(step.reply); got != step.want {
			t.Fatalf("run %d (%q): %s, want %s", i+1, step.reply, got, step.want)
		}
	}
}

// checkReportMail checks a report mail against RFC 8460 §5.3.
func checkReportMail(t *testing.T, raw, to string) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("To"); got != to {
		t.Errorf("To %q, want %q", got, to)
	}
	domain := m.Header.Get("TLS-Report-Domain")
	if m.Header.Get("TLS-Report-Submitter") != "reporter.example" || domain == "" {
		t.Errorf("TLS-Report-Submitter %q, TLS-Report-Domain %q", m.Header.Get("TLS-Report-Submitter"), domain)
	}
	wantSubject := "Report Domain: " + domain + " Submitter: reporter.example Report-ID: <2025-12-04_" + domain + "@reporter.example>"
	if got := strings.Join(strings.Fields(m.Header.Get("Subject")), " "); got != wantSubject {
		t.Errorf("Subject %q, want %q", got, wantSubject)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct := p.Header.Get("Content-Type")
		types = append(types, strings.SplitN(ct, ";", 2)[0])
		if ct != MediaType {
			continue
		}
		if fn := p.FileName(); fn != "reporter.example!"+domain+"!1764806400!1764892799.json.gz" {
			t.Errorf("attachment file name %q", fn)
		}
		b64, _ := io.ReadAll(p)
		gz, err := io.ReadAll(base64Reader(b64))
		if err != nil {
			t.Fatal(err)
		}
		doc := gunzip(t, gz)
		if _, err := checkSchema(doc); err != nil || !bytes.Contains(doc, []byte(`"policy-domain": "`+domain+`"`)) {
			t.Errorf("attached report (%v):\n%s", err, doc)
		}
	}
	if !slices.Equal(types, []string{"text/plain", MediaType}) {
		t.Errorf("parts %q", types)
	}
}

func base64Reader(b []byte) io.Reader {
	return base64.NewDecoder(base64.StdEncoding, bytes.NewReader(bytes.ReplaceAll(b, []byte("\r\n"), nil)))
}
