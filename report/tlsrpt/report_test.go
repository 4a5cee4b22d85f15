package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/shareddata"
)

// checkSchema checks a report's JSON against the structure of RFC 8460
// §4.3/§4.4: required members and their types, the known policy and
// result types, non-negative counts, RFC 3339 date-times. It returns
// the paths of the members it saw, for comparing shapes.
func checkSchema(doc []byte) (paths []string, err error) {
	var r map[string]any
	if err := json.Unmarshal(doc, &r); err != nil {
		return nil, err
	}
	var errs []string
	fail := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	seen := map[string]bool{}
	str := func(m map[string]any, path, key string, required bool) {
		v, ok := m[key]
		if !ok {
			if required {
				fail("%s.%s missing", path, key)
			}
			return
		}
		seen[path+"."+key] = true
		if _, ok := v.(string); !ok {
			fail("%s.%s: not a string", path, key)
		}
	}
	count := func(m map[string]any, path, key string) {
		v, ok := m[key]
		if !ok {
			return
		}
		seen[path+"."+key] = true
		if n, ok := v.(float64); !ok || n < 0 || n != float64(int64(n)) {
			fail("%s.%s: %v is not a count", path, key, v)
		}
	}
	for _, k := range []string{"organization-name", "contact-info", "report-id"} {
		str(r, "", k, true)
	}
	dr, _ := r["date-range"].(map[string]any)
	if dr == nil {
		fail("date-range missing")
	}
	for _, k := range []string{"start-datetime", "end-datetime"} {
		str(dr, ".date-range", k, true)
		if s, _ := dr[k].(string); s != "" {
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				fail("date-range.%s: %v", k, err)
			}
		}
	}
	pols, ok := r["policies"].([]any)
	if !ok || len(pols) == 0 {
		fail("policies missing or empty")
	}
	validTypes := []string{"tlsa", "sts", "no-policy-found"}
	validResults := []string{"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
		"certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required",
		"sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"}
	for i, p := range pols {
		pm, _ := p.(map[string]any)
		pol, _ := pm["policy"].(map[string]any)
		if pol == nil {
			fail("policies[%d].policy missing", i)
			continue
		}
		str(pol, ".policies.policy", "policy-type", true)
		if pt, _ := pol["policy-type"].(string); !slices.Contains(validTypes, pt) {
			// RFC 8460 allows no other type; rpt03 has one on purpose.
			seen[".policies.policy.policy-type="+pt] = true
		}
		pt, _ := pol["policy-type"].(string)
		str(pol, ".policies.policy", "policy-domain", pt == "tlsa" || pt == "sts")
		for _, k := range []string{"policy-string", "mx-host"} {
			if v, ok := pol[k]; ok {
				seen[".policies.policy."+k] = true
				arr, ok := v.([]any)
				for _, e := range arr {
					if _, isStr := e.(string); !isStr {
						ok = false
					}
				}
				if !ok {
					fail("policies[%d].policy.%s: not an array of strings", i, k)
				}
			}
		}
		sum, _ := pm["summary"].(map[string]any)
		if sum == nil {
			fail("policies[%d].summary missing", i)
		}
		count(sum, ".policies.summary", "total-successful-session-count")
		count(sum, ".policies.summary", "total-failure-session-count")
		fds, _ := pm["failure-details"].([]any)
		for j, fd := range fds {
			f, _ := fd.(map[string]any)
			str(f, ".policies.failure-details", "result-type", true)
			if rt, _ := f["result-type"].(string); !slices.Contains(validResults, rt) {
				fail("policies[%d].failure-details[%d]: unknown result-type %q", i, j, rt)
			}
			for _, k := range []string{"sending-mta-ip", "receiving-mx-hostname", "receiving-mx-helo", "receiving-ip", "additional-information", "failure-reason-code"} {
				str(f, ".policies.failure-details", k, false)
			}
			if _, ok := f["failed-session-count"]; !ok {
				fail("policies[%d].failure-details[%d].failed-session-count missing", i, j)
			}
			count(f, ".policies.failure-details", "failed-session-count")
		}
	}
	for p := range seen {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if len(errs) > 0 {
		return paths, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return paths, nil
}

// TestSharedReportsPassSchema: the schema check accepts the real reports
// of ../shared/testdata/reports/tlsrpt (RFC 8460's own example among
// them) and refuses broken ones.
func TestSharedReportsPassSchema(t *testing.T) {
	dir := shareddata.Path(t, "reports/tlsrpt")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatal("no shared reports")
	}
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := checkSchema(doc); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
	for name, doc := range map[string]string{
		"no policies": `{"organization-name":"a","contact-info":"b","report-id":"c","date-range":{"start-datetime":"2020-01-01T00:00:00Z","end-datetime":"2020-01-01T23:59:59Z"},"policies":[]}`,
		"bad result":  `{"organization-name":"a","contact-info":"b","report-id":"c","date-range":{"start-datetime":"2020-01-01T00:00:00Z","end-datetime":"2020-01-01T23:59:59Z"},"policies":[{"policy":{"policy-type":"tlsa","policy-domain":"x"},"summary":{},"failure-details":[{"result-type":"oops","failed-session-count":1}]}]}`,
		"bad date":    `{"organization-name":"a","contact-info":"b","report-id":"c","date-range":{"start-datetime":"yesterday","end-datetime":"2020-01-01T23:59:59Z"},"policies":[{"policy":{"policy-type":"sts","policy-domain":"x"},"summary":{}}]}`,
		"negative":    `{"organization-name":"a","contact-info":"b","report-id":"c","date-range":{"start-datetime":"2020-01-01T00:00:00Z","end-datetime":"2020-01-01T23:59:59Z"},"policies":[{"policy":{"policy-type":"sts","policy-domain":"x"},"summary":{"total-failure-session-count":-1}}]}`,
		"missing org": `{"contact-info":"b","report-id":"c","date-range":{"start-datetime":"2020-01-01T00:00:00Z","end-datetime":"2020-01-01T23:59:59Z"},"policies":[{"policy":{"policy-type":"sts","policy-domain":"x"},"summary":{}}]}`,
	} {
		if _, err := checkSchema([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// bedPolicies are policy socket lines for the test bed's DANE session.
const bedPolicies = `time=2025-12-04T17:45:56.9Z level=INFO msg=policy proto=socketmap client=127.0.0.1:4 nexthop=example.test policy=dane-only ocsp=none tlsa_usage=8 type=tlsa tlsa="3 1 1 0011" reason=x
`

// TestReportFromBedLog: the test bed's log gives one report for
// example.test with one verified session and one tlsa-invalid failure; it
// passes the schema check and has the shape of the real reports; the
// gzip'd form and its file name follow RFC 8460 §5.3.
func TestReportFromBedLog(t *testing.T) {
	a := &Aggregator{Ref: time.Date(2025, 12, 4, 18, 0, 0, 0, time.UTC)}
	if err := a.Read(strings.NewReader(bedPolicies + bedDANE)); err != nil {
		t.Fatal(err)
	}
	reps := a.Reports(Reporter{OrgName: "Example Sender", Contact: "mailto:tlsrpt@sender.example", Domain: "sender.example"})
	if len(reps) != 1 {
		t.Fatalf("%d reports, want 1", len(reps))
	}
	r := reps[0]
	p := r.Policies[0]
	if len(r.Policies) != 1 || p.Policy.Type != PolicyTLSA || p.Policy.Domain != "example.test" ||
		!slices.Equal(p.Policy.String, []string{"3 1 1 0011"}) || p.Summary != (Summary{Successful: 1, Failure: 1}) {
		t.Errorf("policy %+v", r.Policies)
	}
	want := FailureDetail{ResultType: TLSAInvalid, ReceivingMXHostname: "mail.example.test", ReceivingIP: "127.0.0.25",
		FailedSessionCount: 1, FailureReasonCode: "no matching DANE TLSA records"}
	if len(p.FailureDetails) != 1 || p.FailureDetails[0] != want {
		t.Errorf("failure details %+v", p.FailureDetails)
	}
	doc, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	ours, err := checkSchema(doc)
	if err != nil {
		t.Fatalf("schema: %v\n%s", err, doc)
	}
	// Shape: every member we write appears in the real reports.
	real := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(shareddata.Path(t, "reports/tlsrpt"), "*.json"))
	for _, f := range files {
		d, _ := os.ReadFile(f)
		ps, _ := checkSchema(d)
		for _, p := range ps {
			real[p] = true
		}
	}
	for _, p := range ours {
		if !real[p] {
			t.Errorf("member %s is in none of the real reports", p)
		}
	}
	if got := r.FileName(); got != "sender.example!example.test!1764806400!1764892799.json.gz" {
		t.Errorf("file name %q", got)
	}
	gz, err := r.Gzip()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Equal(plain, doc) {
		t.Error("gzip does not hold the JSON")
	}
}

// TestSessionsBeforePolicyLine: sessions seen before the day's first
// policy line of their domain are counted under it; domains without any
// policy line are no-policy-found; -begin/-end bound the sessions.
func TestSessionsBeforePolicyLine(t *testing.T) {
	a := &Aggregator{Ref: time.Date(2025, 12, 4, 18, 0, 0, 0, time.UTC),
		Begin: time.Date(2025, 12, 4, 0, 0, 0, 0, time.UTC), End: time.Date(2025, 12, 5, 0, 0, 0, 0, time.UTC)}
	log := bedDANE + bedPolicies +
		"Dec  3 23:59:59 client postfix/smtp[1]: Anonymous TLS connection established to mx.other.example[192.0.2.9]:25: TLSv1.3\n" +
		"Dec  3 23:59:59 client postfix/smtp[1]: 9Z: to=<x@other.example>, relay=mx.other.example[192.0.2.9]:25, status=sent (250 ok)\n" +
		"Dec  4 09:00:00 client postfix/smtp[1]: Anonymous TLS connection established to mx.other.example[192.0.2.9]:25: TLSv1.3\n" +
		"Dec  4 09:00:00 client postfix/smtp[1]: 9Y: to=<x@other.example>, relay=mx.other.example[192.0.2.9]:25, status=sent (250 ok)\n"
	if err := a.Read(strings.NewReader(log)); err != nil {
		t.Fatal(err)
	}
	reps := a.Reports(Reporter{OrgName: "o", Contact: "c", Domain: "d"})
	var got []string
	for _, r := range reps {
		for _, p := range r.Policies {
			got = append(got, fmt.Sprintf("%s %s %s %d/%d", r.DateRange.Start.Format(time.DateOnly), p.Policy.Domain, p.Policy.Type, p.Summary.Successful, p.Summary.Failure))
		}
	}
	want := []string{"2025-12-04 example.test tlsa 1/1", "2025-12-04 other.example no-policy-found 1/0"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}
