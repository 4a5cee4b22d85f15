package tlsrpt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzReadLog: any log text is read without panicking, and every report
// built from it passes the RFC 8460 structure check with counts that add
// up.
func FuzzReadLog(f *testing.F) {
	f.Add(bedPolicies + bedDANE)
	f.Add("Dec  4 10:00:00 mx postfix/smtp[8]: 2B: to=<a@example.net>, relay=mx.example.net[192.0.2.2]:25, status=deferred (TLS is required, but was not offered by host mx.example.net[192.0.2.2])\n")
	f.Add("Dec  4 10:00:00 mx postfix/smtp[10]: warning: TLS policy lookup for example.com/mx.example.com: TLSA lookup error for mx.example.com:25\n")
	f.Add(`{"time":"2025-12-04T11:00:00Z","level":"INFO","msg":"policy","nexthop":"a.example","type":"sts","sts_mx":"*.a.example"}` + "\n")
	f.Add("Dec 04 17:45:57 client postfix/smtp[1]: Verified TLS connection established to [::1]]:25\nDec 04 17:45:57 client postfix/smtp[1]: : to=<@>, relay=[")
	f.Fuzz(func(t *testing.T, log string) {
		a := &Aggregator{Ref: time.Date(2025, 12, 4, 18, 0, 0, 0, time.UTC)}
		if err := a.Read(strings.NewReader(log)); err != nil {
			t.Fatal(err)
		}
		for _, r := range a.Reports(Reporter{OrgName: "o", Contact: "c", Domain: "d"}) {
			for _, p := range r.Policies {
				var n int64
				for _, fd := range p.FailureDetails {
					n += fd.FailedSessionCount
				}
				if n != p.Summary.Failure {
					t.Errorf("failure details add up to %d, summary says %d", n, p.Summary.Failure)
				}
			}
			doc, err := r.JSON()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := checkSchema(doc); err != nil && !strings.Contains(err.Error(), "policy-domain") {
				t.Errorf("schema: %v\n%s", err, doc)
			}
		}
	})
}

// FuzzPolicyLine: the policy line parser never panics and never returns
// a policy without a domain-like name and a known type.
func FuzzPolicyLine(f *testing.F) {
	f.Add(`time=2025-12-04T17:45:57.1Z level=INFO msg=policy nexthop=example.test type=tlsa tlsa="3 1 1 ab"`)
	f.Add(`{"time":"x","msg":"policy","nexthop":"a","type":"no-policy-found"}`)
	f.Add(`msg=policy nexthop="\x" type=sts`)
	f.Add(`msg=policy nexthop=a.example type=no-policy-found sts_error="x y" sts_result=sts-webpki-invalid`)
	f.Fuzz(func(t *testing.T, line string) {
		pl, ok := parsePolicyLine(line, time.Time{})
		if ok && (pl.Type != PolicyTLSA && pl.Type != PolicySTS && pl.Type != PolicyNotFound) {
			t.Errorf("type %q", pl.Type)
		}
		if ok && (pl.STSError == "") != (pl.STSResult == "") {
			t.Errorf("sts_error %q with result %q", pl.STSError, pl.STSResult)
		}
	})
}

// FuzzParseRecord: the _smtp._tls record parser never panics, and what
// it accepts has 1 to MaxRUA mailto:/https: destinations that print back
// to URIs it accepts again.
func FuzzParseRecord(f *testing.F) {
	f.Add("v=TLSRPTv1; rua=mailto:tlsrpt@example.net")
	f.Add("v=TLSRPTv1 ; rua=mailto:a@example.net , https://r.example.net/x?d=1 ; ext=1;")
	f.Add("v=TLSRPTv1; rua=mailto:%zz@x")
	f.Fuzz(func(t *testing.T, txt string) {
		rec, err := ParseRecord(txt)
		if err != nil {
			return
		}
		if len(rec.RUA) == 0 || len(rec.RUA) > MaxRUA {
			t.Fatalf("%d destinations", len(rec.RUA))
		}
		for _, u := range rec.RUA {
			if u.Scheme != "mailto" && u.Scheme != "https" {
				t.Errorf("scheme %q", u.Scheme)
			}
			if _, err := ParseRecord("v=TLSRPTv1; rua=" + u.String()); err != nil {
				t.Errorf("%s does not parse again: %v", u, err)
			}
		}
	})
}

// FuzzLoadState: any state file is read or refused without panicking;
// what is read can be recorded into and read back.
func FuzzLoadState(f *testing.F) {
	f.Add([]byte(`{"done":{"r.json.gz mailto:a@example.net":{"time":"2025-12-05T01:10:00Z","status":"sent"}}}`))
	f.Add([]byte(`{"done":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "state")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		now := time.Date(2025, 12, 5, 0, 0, 0, 0, time.UTC)
		st, err := LoadState(path, now)
		if err != nil {
			return
		}
		if err := st.Record("x", "", StateEntry{Time: now, Status: NoRecord}); err != nil {
			t.Fatal(err)
		}
		st2, err := LoadState(path, now)
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := st2.Lookup("x", ""); !ok || e.Status != NoRecord {
			t.Fatalf("recorded entry lost: %v %v", e, ok)
		}
	})
}

// FuzzEximLog: the Exim reader never panics, and every session it gives
// has a domain, an RFC 8460 result type or none, and a TLS level when it
// has no failure.
func FuzzEximLog(f *testing.F) {
	bed, err := os.ReadFile("testdata/exim-bed.mainlog")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(bed))
	for _, l := range strings.Split(string(bed), "\n") {
		if strings.Contains(l, " == ") || strings.Contains(l, " => ") {
			f.Add(l)
		}
	}
	f.Add("2026-12-04 18:18:52.1 +01 [ 1xZXrw-0004J6-2L == a@ R=x defer (-1): ")
	f.Add("Dec  4 18:18:52 h exim[1]: 2026-12-04 18:18:52 1xZXrw-0004J6-2L => a@b H= [ X= CV=dane")
	known := map[ResultType]bool{"": true, StartTLSNotSupported: true, CertificateHostMismatch: true, CertificateExpired: true,
		CertificateNotTrusted: true, ValidationFailure: true, TLSAInvalid: true, DNSSECInvalid: true}
	f.Fuzz(func(t *testing.T, log string) {
		ex := newEximReader(time.UTC, func(s Session) {
			if s.Domain == "" || !known[s.Result] || (s.Result == "") == (s.Level == "") {
				t.Errorf("session %+v", s)
			}
		})
		forEachLine(strings.NewReader(log), func(b []byte) {
			if tm, prog, _, msg, ok := syslogPrefix(string(b), time.Time{}); ok && prog == "exim" {
				ex.syslogLine(tm, msg)
			} else {
				ex.logLine(string(b))
			}
		})
	})
}
