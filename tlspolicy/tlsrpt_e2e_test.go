//go:build linux

package tlspolicy

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/internal/testkit/testpki"
	"github.com/mailsidecar/sidecar/mtasts"
	"github.com/mailsidecar/sidecar/report/tlsrpt"
	"github.com/mailsidecar/sidecar/resolver"
)

// TestPostfixTLSReport: real Postfix deliveries on the DANE/STS test bed
// — a DANE delivery verified, a TLSA mismatch, an MTA-STS enforce
// delivery verified, an MTA-STS certificate for the wrong name — then
// the mail log and the policy socket's log through report/tlsrpt: the
// reports count the sessions as they happened, with the RFC 8460 types.
func TestPostfixTLSReport(t *testing.T) {
	pfDaneNeeds(t)
	bed := startNetnsBed(t, "tlsrpt")
	nsName, nsfd, run := bed.name, bed.nsfd, bed.run

	// MTA-STS policy server (host loopback; the policy server dials it).
	ca := testpki.NewCA(t)
	hsrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if r.Host != "mta-sts.sts.example.test" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "version: STSv1\nmode: enforce\nmx: mx-notlsa.example.test\nmax_age: 86400\n")
	}))
	client := startPolicyHTTPS(t, ca, hsrv, "mta-sts.sts.example.test")
	defer hsrv.Close()

	res, err := resolver.New(resolver.Options{Servers: []string{bed.relay}, Timeout: 2 * time.Second, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	sts, err := NewSTS(&STSRules{Enabled: true, Options: mtasts.Options{HTTP: client}}, res)
	if err != nil {
		t.Fatal(err)
	}
	var policyLog testmta.SyncBuffer
	env := TestEnv(res, nil)
	env.Decider = NewDecider(res, DeciderOptions{STS: sts, LookupTimeout: 5 * time.Second})
	env.Logger = slog.New(slog.NewTextHandler(&policyLog, nil))
	policyLn := servePolicyInNetns(t, nsfd, env)

	// The two MX hosts: mail.example.test (TLSA 3 1 1 of the bed's key)
	// and mx-notlsa.example.test (MTA-STS, a certificate of the test CA).
	good, err := tls.LoadX509KeyPair(filepath.Join(run, "tls/cert.pem"), filepath.Join(run, "tls/key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	bad := pfDaneCert(t, "mail.example.test")
	stsGood, stsWrong := ca.Leaf(t, "mx-notlsa.example.test"), ca.Leaf(t, "other.example.test")
	var daneCert, stsCert atomic.Pointer[tls.Certificate]
	daneCert.Store(&good)
	stsCert.Store(&stsGood)
	daneMX := tlsSinkInNetns(t, nsfd, "127.0.0.25:25", "mail.example.test", &daneCert)
	stsMX := tlsSinkInNetns(t, nsfd, "127.0.0.29:25", "mx-notlsa.example.test", &stsCert)
	caFile := filepath.Join(run, "testca.pem")
	ca.WritePEM(t, caFile)
	pf := pfDaneStartPostfix(t, nsName, nsfd, policyLn.Addr().String(), "smtp_tls_CAfile = "+caFile)

	deferred := 0
	deliver := func(rcpt, subject string, mx *testmta.Sink, wantSent bool) {
		t.Helper()
		pf.submitTo(t, nsfd, rcpt, subject)
		if wantSent {
			select {
			case <-mx.Msgs:
			case <-time.After(20 * time.Second):
				t.Fatalf("%s: not delivered\npolicy log:\n%s\nmaillog:\n%s", subject, policyLog.String(), pf.Log())
			}
			return
		}
		// Wait for the deferral of this message: count deferred lines.
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(pf.Log(), "status=deferred") < deferred+1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not deferred\nmaillog:\n%s", subject, pf.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
		deferred++
	}
	deliver("rcpt@example.test", "dane match", daneMX, true)
	pf.WaitLog(t, "status=sent", 10*time.Second)
	daneCert.Store(&bad)
	deliver("rcpt@example.test", "dane mismatch", nil, false)
	deliver("rcpt@sts.example.test", "sts match", stsMX, true)
	for strings.Count(pf.Log(), "status=sent") < 2 {
		time.Sleep(50 * time.Millisecond)
	}
	stsCert.Store(&stsWrong)
	deliver("rcpt@sts.example.test", "sts mismatch", nil, false)

	maillog := pf.Log()
	for _, l := range strings.Split(maillog, "\n") {
		if strings.Contains(l, "postfix/smtp[") {
			t.Log(l)
		}
	}
	for _, l := range strings.Split(policyLog.String(), "\n") {
		if strings.Contains(l, "msg=policy") {
			t.Log(l)
		}
	}
	a := &tlsrpt.Aggregator{}
	if err := a.Read(strings.NewReader(policyLog.String())); err != nil {
		t.Fatal(err)
	}
	if err := a.Read(strings.NewReader(maillog)); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range a.Reports(tlsrpt.Reporter{OrgName: "client.example.net", Contact: "postmaster@example.net", Domain: "example.net"}) {
		doc, _ := r.JSON()
		t.Logf("%s:\n%s", r.FileName(), doc)
		for _, p := range r.Policies {
			var fails []string
			for _, fd := range p.FailureDetails {
				fails = append(fails, string(fd.ResultType)+"@"+fd.ReceivingMXHostname+"/"+fd.ReceivingIP)
			}
			got[p.Policy.Domain] = string(p.Policy.Type) + " " + strings.Join(p.Policy.String, ";") + " " +
				strconv.Itoa(int(p.Summary.Successful)) + "/" + strconv.Itoa(int(p.Summary.Failure)) + " " + strings.Join(fails, ",")
		}
	}
	if g := got["example.test"]; !strings.HasPrefix(g, "tlsa 3 1 1 ") || !strings.HasSuffix(g, " 1/1 tlsa-invalid@mail.example.test/127.0.0.25") {
		t.Errorf("example.test: %q, want a tlsa policy with 1 success and 1 tlsa-invalid failure", g)
	}
	if g, want := got["sts.example.test"], "sts version: STSv1;mode: enforce;mx: mx-notlsa.example.test;max_age: 86400 1/1 certificate-host-mismatch@mx-notlsa.example.test/127.0.0.29"; g != want {
		t.Errorf("sts.example.test: %q\nwant %q", g, want)
	}
	if len(got) != 2 {
		t.Errorf("reports for %v, want example.test and sts.example.test", got)
	}
}

var updateEximLog = flag.Bool("update-exim-log", false, "TestEximDelivery writes its Exim main log and policy lines to ../report/tlsrpt/testdata/exim-bed.*")

// eximTLSReport is TestEximDelivery's TLS report check: its Exim main log
// and policy socket lines through report/tlsrpt make one report per
// domain delivered to, counting the deliveries of its cases as they
// happened (the policy socket unreachable is no session).
func eximTLSReport(t *testing.T, mainlog, policyLog string) {
	t.Helper()
	if *updateEximLog {
		var policy []string
		for _, l := range strings.Split(policyLog, "\n") {
			if strings.Contains(l, "msg=policy") {
				policy = append(policy, l)
			}
		}
		sort.Strings(policy)
		os.WriteFile("../report/tlsrpt/testdata/exim-bed.mainlog", []byte(mainlog), 0o644)
		os.WriteFile("../report/tlsrpt/testdata/exim-bed.policylog", []byte(strings.Join(policy, "\n")+"\n"), 0o644)
	}
	a := &tlsrpt.Aggregator{}
	for _, log := range []string{policyLog, mainlog} {
		if err := a.Read(strings.NewReader(log)); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range a.Reports(tlsrpt.Reporter{OrgName: "client.example.net", Contact: "postmaster@example.net", Domain: "example.net"}) {
		for _, p := range r.Policies {
			fails := map[tlsrpt.ResultType]int64{}
			for _, fd := range p.FailureDetails {
				fails[fd.ResultType] += fd.FailedSessionCount
			}
			got = append(got, fmt.Sprintf("%s %s %d/%d %v", p.Policy.Domain, p.Policy.Type, p.Summary.Successful, p.Summary.Failure, fails))
		}
	}
	want := []string{
		"bogus.example.test no-policy-found 0/1 map[dnssec-invalid:1]",
		"dead.example.test no-policy-found 0/1 map[dnssec-invalid:1]",
		"example.test tlsa 1/1 map[tlsa-invalid:1]",
		"sts.example.test sts 3/3 map[certificate-host-mismatch:1 validation-failure:2]",
		"stsnomatch.example.test sts 0/1 map[validation-failure:1]",
		"tampered.example.test no-policy-found 0/1 map[dnssec-invalid:1]",
	}
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("TLS reports of the Exim deliveries:\n%s\nwant:\n%s", g, w)
	}
}
