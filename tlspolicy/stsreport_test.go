package tlspolicy

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/report/tlsrpt"
)

// TestSTSFetchFailuresReported: the policy line of a failed MTA-STS fetch
// names its RFC 8460 result type (a certificate that does not validate:
// sts-webpki-invalid; no valid policy: sts-policy-invalid; a temporary
// failure: sts-policy-fetch-error), and report/tlsrpt counts each as a
// failed session of the domain.
func TestSTSFetchFailuresReported(t *testing.T) {
	f := &fakeSTS{policies: map[string]string{
		"notlsa.example.com": "fail:webpki",
		"plain.example.com":  "fail:invalid",
		"insecure.org":       "temp",
	}}
	env := stsEnv(t, f, "")
	var log testmta.SyncBuffer
	env.Logger = slog.New(slog.NewTextHandler(&log, nil))
	_, addr := startServer(t, env)
	expectReplies(t, addr, []reqReply{
		{ns("policy notlsa.example.com"), "NOTFOUND "},
		{ns("policy plain.example.com"), "NOTFOUND "},
		{ns("policy insecure.org"), "TEMP "},
	})
	for _, want := range []string{"nexthop=notlsa.example.com policy=none", "type=no-policy-found sts_error=\"MTA-STS policy fetch failed: fail:webpki",
		"sts_result=sts-webpki-invalid", "sts_result=sts-policy-invalid", "sts_result=sts-policy-fetch-error"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("policy log without %q:\n%s", want, log.String())
		}
	}
	a := &tlsrpt.Aggregator{}
	if err := a.Read(strings.NewReader(log.String())); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range a.Reports(tlsrpt.Reporter{OrgName: "o", Contact: "c", Domain: "d"}) {
		for _, p := range r.Policies {
			for _, fd := range p.FailureDetails {
				got = append(got, fmt.Sprintf("%s %s %d/%d %s %d", p.Policy.Domain, p.Policy.Type, p.Summary.Successful, p.Summary.Failure, fd.ResultType, fd.FailedSessionCount))
			}
		}
	}
	slices.Sort(got)
	want := []string{
		"insecure.org no-policy-found 0/1 sts-policy-fetch-error 1",
		"notlsa.example.com no-policy-found 0/1 sts-webpki-invalid 1",
		"plain.example.com no-policy-found 0/1 sts-policy-invalid 1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("reports:\n%s\nwant\n%s\nlog:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), log.String())
	}
}
