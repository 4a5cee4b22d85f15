package forensic

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/shareddata"
)

// sampleParse is the part of the shared samples' JSON parses ParseARF is
// compared with.
type sampleParse struct {
	FeedbackType          string   `json:"feedback_type"`
	ArrivalDate           *int64   `json:"arrival_date"`
	AuthenticationResults []string `json:"authentication_results"`
	OriginalEnvelopeID    *string  `json:"original_envelope_id"`
	OriginalMailFrom      *string  `json:"original_mail_from"`
	ReportedDomain        []string `json:"reported_domain"`
	ReportingMTA          *string  `json:"reporting_mta"`
	SourceIP              *string  `json:"source_ip"`
	UserAgent             *string  `json:"user_agent"`
	Version               int      `json:"version"`
	AuthFailure           string   `json:"auth_failure"`
	DKIMDomain            *string  `json:"dkim_domain"`
	Headers               *string  `json:"headers"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// TestParseARFSamples reads the real ARF reports of the shared test data
// (RFC 5965 and RFC 6591 examples, an OpenDMARC DMARC failure report) and
// finds what another implementation found in them.
func TestParseARFSamples(t *testing.T) {
	for _, n := range []string{"001", "002", "003", "004", "005"} {
		t.Run(n, func(t *testing.T) {
			eml, err := os.ReadFile(shareddata.Path(t, "reports/failure-arf/"+n+".eml"))
			if err != nil {
				t.Fatal(err)
			}
			js, err := os.ReadFile(shareddata.Path(t, "reports/failure-arf/"+n+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var want sampleParse
			if err := json.Unmarshal(js, &want); err != nil {
				t.Fatal(err)
			}
			got, err := ParseARF(bytes.NewReader(eml))
			if err != nil {
				t.Fatal(err)
			}
			wantType := map[string]string{"Abuse": "abuse", "AuthFailure": "auth-failure"}[want.FeedbackType]
			if got.FeedbackType != wantType {
				t.Errorf("Feedback-Type %q, want %q", got.FeedbackType, wantType)
			}
			if want.AuthFailure != "Unspecified" && got.AuthFailure != strings.ToLower(want.AuthFailure) {
				t.Errorf("Auth-Failure %q, want %q", got.AuthFailure, want.AuthFailure)
			}
			for _, c := range []struct{ name, got, want string }{
				{"User-Agent", got.UserAgent, str(want.UserAgent)},
				{"Source-IP", got.SourceIP, str(want.SourceIP)},
				{"Original-Mail-From", got.OriginalMailFrom, str(want.OriginalMailFrom)},
				{"Original-Envelope-Id", got.OriginalEnvelopeID, str(want.OriginalEnvelopeID)},
				{"Reporting-MTA", got.ReportingMTA, str(want.ReportingMTA)},
				{"DKIM-Domain", got.DKIMDomain, str(want.DKIMDomain)},
			} {
				if c.got != c.want {
					t.Errorf("%s %q, want %q", c.name, c.got, c.want)
				}
			}
			if got.Version != want.Version {
				t.Errorf("Version %d, want %d", got.Version, want.Version)
			}
			if !slices.Equal(got.ReportedDomain, want.ReportedDomain) && !(len(got.ReportedDomain) == 0 && len(want.ReportedDomain) == 0) {
				t.Errorf("Reported-Domain %q, want %q", got.ReportedDomain, want.ReportedDomain)
			}
			var wantAR []string
			for _, ar := range want.AuthenticationResults {
				wantAR = append(wantAR, strings.Join(strings.Fields(ar), " "))
			}
			if !slices.Equal(got.AuthenticationResults, wantAR) {
				t.Errorf("Authentication-Results %q, want %q", got.AuthenticationResults, wantAR)
			}
			if want.ArrivalDate != nil && got.Arrival.Unix() != *want.ArrivalDate {
				t.Errorf("arrival %v (%d), want %d", got.Arrival, got.Arrival.Unix(), *want.ArrivalDate)
			}
			if want.Headers != nil {
				if got.OriginalType != "text/rfc822-headers" || string(got.Header) != *want.Headers {
					t.Errorf("original %s header:\n%s\nwant:\n%s", got.OriginalType, got.Header, *want.Headers)
				}
			}
		})
	}
}

func TestParseARFRefuses(t *testing.T) {
	for name, msg := range map[string]string{
		"not multipart": "From: a@example.com\r\nContent-Type: text/plain\r\n\r\nhello\r\n",
		"other report":  "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nx\r\n--b--\r\n",
		"no feedback":   "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
		"no type":       "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\nVersion: 1\r\n--b--\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			if fb, err := ParseARF(strings.NewReader(msg)); err == nil {
				t.Fatalf("parsed %+v", fb)
			}
		})
	}
}

func FuzzParseARF(f *testing.F) {
	if dir := shareddata.Dir(); dir != "" {
		for _, n := range []string{"001", "002", "003", "004", "005"} {
			if b, err := os.ReadFile(dir + "/reports/failure-arf/" + n + ".eml"); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add(testReport(true).Mail("ruf@example.com", testReport(true).Arrival))
	f.Fuzz(func(t *testing.T, b []byte) {
		fb, err := ParseARF(bytes.NewReader(b))
		if err == nil && fb.FeedbackType == "" {
			t.Fatal("a report without Feedback-Type was accepted")
		}
	})
}
