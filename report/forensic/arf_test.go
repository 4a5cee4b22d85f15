package forensic

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func testReport(body bool) *Report {
	r := &Report{
		Sender: "dmarc-noreply@mx.example.net", ReportingMTA: "mx.example.net", UserAgent: "sidecar/test",
		Arrival:  time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		SourceIP: "192.0.2.9", EnvelopeID: "4ABCDEF", MailFrom: "spoofer@bad.example",
		FromDomain: "bank.example", PolicyDomain: "bank.example",
		AuthResults:   " mx.example.net;\r\n\tspf=fail smtp.mailfrom=bad.example;\r\n\tdkim=fail header.d=bank.example header.s=s1;\r\n\tdmarc=fail (p=reject dis=none) header.from=bank.example",
		SPF:           "fail",
		DKIM:          []DKIMSignature{{Domain: "bank.example", Selector: "s1", Result: "fail"}, {Domain: "bad.example", Selector: "x", Result: "pass"}},
		FailureOption: "1", DeliveryResult: Reject,
		Header: []byte("Received: from bad (bad [192.0.2.9])\r\n\tby mx.example.net\r\nFrom: Bank <alerts@bank.example>\r\nSubject: verify your account\r\n"),
	}
	if body {
		r.IncludeBody = true
		r.Body = []byte("Click here.\r\n--sidecar-arf-not-ours\r\n")
	}
	return r
}

// TestMailIsARF builds reports and reads them back: every field RFC 9991
// asks for is where an ARF reader looks for it.
func TestMailIsARF(t *testing.T) {
	for _, body := range []bool{false, true} {
		r := testReport(body)
		msg := r.Mail("ruf@bank.example", r.Arrival.Add(time.Minute))
		if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\r")) {
			t.Fatal("a line does not end in CRLF")
		}
		fb, err := ParseARF(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("%v\n%s", err, msg)
		}
		for _, c := range []struct{ name, got, want string }{
			{"Feedback-Type", fb.FeedbackType, "auth-failure"},
			{"Auth-Failure", fb.AuthFailure, "dmarc"},
			{"Identity-Alignment", fb.IdentityAlignment, "none"},
			{"Delivery-Result", fb.DeliveryResult, "reject"},
			{"Source-IP", fb.SourceIP, "192.0.2.9"},
			{"Original-Mail-From", fb.OriginalMailFrom, "<spoofer@bad.example>"},
			{"Original-Envelope-Id", fb.OriginalEnvelopeID, "4ABCDEF"},
			{"Reporting-MTA", fb.ReportingMTA, "mx.example.net"},
			{"User-Agent", fb.UserAgent, "sidecar/test"},
			{"DKIM-Domain", fb.DKIMDomain, "bank.example"},
			{"DKIM-Selector", fb.DKIMSelector, "s1"},
			{"Reported-Domain", strings.Join(fb.ReportedDomain, ","), "bank.example"},
			{"Authentication-Results", strings.Join(fb.AuthenticationResults, "|"),
				"mx.example.net; spf=fail smtp.mailfrom=bad.example; dkim=fail header.d=bank.example header.s=s1; dmarc=fail (p=reject dis=none) header.from=bank.example"},
		} {
			if c.got != c.want {
				t.Errorf("body=%v: %s %q, want %q", body, c.name, c.got, c.want)
			}
		}
		if fb.Version != 1 || !fb.Arrival.Equal(r.Arrival) {
			t.Errorf("Version %d, arrival %v", fb.Version, fb.Arrival)
		}
		if want := strings.ReplaceAll(string(r.Header), "\r\n", "\n"); string(fb.Header) != want {
			t.Errorf("header %q, want %q", fb.Header, want)
		}
		if body {
			if fb.OriginalType != "message/rfc822" || !strings.HasPrefix(string(fb.Body), "Click here.\n--sidecar-arf-not-ours\n") {
				t.Errorf("original %s, body %q", fb.OriginalType, fb.Body)
			}
		} else if fb.OriginalType != "text/rfc822-headers" || fb.Body != nil {
			t.Errorf("original %s, body %q", fb.OriginalType, fb.Body)
		}
	}
}

// TestMailKeepsFieldsOnTheirLine: a value carrying a line break cannot
// add a field to the report.
func TestMailKeepsFieldsOnTheirLine(t *testing.T) {
	r := testReport(false)
	r.EnvelopeID = "Q1\r\nFeedback-Type: abuse"
	fb, err := ParseARF(bytes.NewReader(r.Mail("ruf@bank.example", r.Arrival)))
	if err != nil {
		t.Fatal(err)
	}
	if got := fb.Fields.Values("Feedback-Type"); len(got) != 1 || got[0] != "auth-failure" {
		t.Fatalf("Feedback-Type %q", got)
	}
}

// TestMailBodyCannotEndThePart: a body line equal to the boundary is
// defused.
func TestMailBodyCannotEndThePart(t *testing.T) {
	r := testReport(true)
	msg := r.Mail("ruf@bank.example", r.Arrival)
	i := bytes.Index(msg, []byte("boundary=\""))
	b := msg[i+len("boundary=\""):]
	boundary := string(b[:bytes.IndexByte(b, '"')])
	r.Body = []byte("x\r\n--" + boundary + "--\r\nInjected: yes\r\n")
	// A new Mail has a new boundary; force the collision by building the
	// body with safeBody directly.
	if got := safeBody(r.Body, boundary); bytes.Contains(got, []byte("\n--"+boundary)) {
		t.Fatalf("boundary kept: %q", got)
	}
}
