package dmarc

import (
	"context"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// zoneSpec describes a test zone: TXT records by owner name, names that
// exist (an A record), and faults.
type zoneSpec struct {
	txt    map[string][]string
	exists []string
	faults map[string]dnstest.Fault // name → fault for every type
}

func (s zoneSpec) build() *dnstest.Zone {
	z := dnstest.NewZone()
	for name, texts := range s.txt {
		for _, t := range texts {
			z.AddRecord(resolver.Record{Name: name, Type: resolver.TypeTXT, TXT: splitTXT(t)})
		}
	}
	for _, name := range s.exists {
		z.Add(name + ". 300 IN A 192.0.2.1")
	}
	for name, f := range s.faults {
		z.SetFault(name, 0, f)
	}
	return z
}

// splitTXT splits a record into character-strings of up to 255 octets.
func splitTXT(t string) []string {
	var out []string
	for len(t) > 255 {
		out = append(out, t[:255])
		t = t[255:]
	}
	return append(out, t)
}

type scenario struct {
	name    string
	mode    Mode
	zone    zoneSpec
	from    []string // raw From values; nil means "example.com"
	spf     SPFResult
	dkim    []DKIMResult
	rand    int // what the pct= sampler returns
	status  Status
	ar      string   // the resinfo, Outcome.AuthResult().String()
	used    string   // $dmarc_used_domain, when checked
	policy  Policy   // $dmarc_domain_policy, when checked
	queries []string // exact query log ("name TYPE"), when checked
}

func txt(pairs ...string) map[string][]string {
	m := map[string][]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = append(m[pairs[i]], pairs[i+1])
	}
	return m
}

func spfPass(d string) SPFResult { return SPFResult{Result: "pass", Domain: d} }
func dkimPass(d string) []DKIMResult {
	return []DKIMResult{{Result: "pass", Domain: d, Selector: "sel"}}
}
func dkimFail(d string) []DKIMResult {
	return []DKIMResult{{Result: "fail", Domain: d, Selector: "sel"}}
}
func fromAddr(d string) []string { return []string{" Someone <someone@" + d + ">"} }
func q(names ...string) []string { return names }
func fail(d, p, dis string) string {
	return "dmarc=fail (p=" + p + " dis=none) header.from=" + d + " policy.dmarc=" + dis
}
func passAR(d, p string) string { return "dmarc=pass (p=" + p + " dis=none) header.from=" + d }
func noneAR(d string) string    { return "dmarc=none header.from=" + d }
func tempAR(d string) string    { return "dmarc=temperror header.from=" + d }

const (
	reject     = "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"
	quarantine = "v=DMARC1; p=quarantine"
	pnone      = "v=DMARC1; p=none"
)

func scenarios() []scenario {
	return []scenario{
		// Basics.
		{name: "no record", zone: zoneSpec{exists: []string{"example.com"}},
			status: StatusNoRecord, ar: noneAR("example.com"), used: "example.com",
			queries: q("_dmarc.example.com TXT", "_dmarc.com TXT")},
		{name: "p=reject, aligned SPF pass", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			spf: spfPass("example.com"), status: StatusAccept, ar: passAR("example.com", "reject"), policy: PolicyReject,
			queries: q("_dmarc.example.com TXT")},
		{name: "p=reject, aligned DKIM pass", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			dkim: dkimPass("example.com"), status: StatusAccept, ar: passAR("example.com", "reject")},
		{name: "p=reject, nothing passes", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			spf: SPFResult{"fail", "example.com"}, dkim: dkimFail("example.com"),
			status: StatusReject, ar: fail("example.com", "reject", "reject"), used: "example.com", policy: PolicyReject},
		{name: "p=quarantine fails", zone: zoneSpec{txt: txt("_dmarc.example.com", quarantine)},
			status: StatusQuarantine, ar: fail("example.com", "quarantine", "quarantine")},
		{name: "p=none fails", zone: zoneSpec{txt: txt("_dmarc.example.com", pnone)},
			status: StatusNone, ar: fail("example.com", "none", "none"), policy: PolicyNone},
		{name: "SPF softfail is no pass", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			spf: SPFResult{"softfail", "example.com"}, status: StatusReject, ar: fail("example.com", "reject", "reject")},
		{name: "upper-case identifiers align", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			from: fromAddr("EXAMPLE.com"), dkim: dkimPass("Example.COM."), status: StatusAccept, ar: passAR("example.com", "reject")},

		// Alignment modes.
		{name: "relaxed SPF: MAIL FROM subdomain", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			spf: spfPass("bounce.example.com"), status: StatusAccept, ar: passAR("example.com", "reject"),
			queries: q("_dmarc.example.com TXT", "_dmarc.com TXT", "_dmarc.bounce.example.com TXT")},
		{name: "strict SPF: MAIL FROM subdomain", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; aspf=s")},
			spf: spfPass("bounce.example.com"), status: StatusReject, ar: fail("example.com", "reject", "reject"),
			queries: q("_dmarc.example.com TXT")},
		{name: "relaxed DKIM: d= subdomain", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			dkim: dkimPass("mail.example.com"), status: StatusAccept, ar: passAR("example.com", "reject")},
		{name: "strict DKIM: d= subdomain", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; adkim=s")},
			dkim: dkimPass("mail.example.com"), status: StatusReject, ar: fail("example.com", "reject", "reject")},
		{name: "strict DKIM, relaxed SPF", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; adkim=s; aspf=r")},
			spf: spfPass("bounce.example.com"), dkim: dkimPass("mail.example.com"), status: StatusAccept, ar: passAR("example.com", "reject")},
		{name: "relaxed DKIM: d= parent of a subdomain author", zone: zoneSpec{txt: txt("_dmarc.example.com", reject), exists: []string{"news.example.com"}},
			from: fromAddr("news.example.com"), dkim: dkimPass("example.com"), status: StatusAccept, ar: passAR("news.example.com", "reject")},
		{name: "unrelated DKIM pass does not align (no extra queries)", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			dkim: dkimPass("example.net"), status: StatusReject, ar: fail("example.com", "reject", "reject"),
			queries: q("_dmarc.example.com TXT", "_dmarc.com TXT")},
		{name: "one aligned DKIM pass among others", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			dkim:   []DKIMResult{{"pass", "example.net", "a"}, {"fail", "example.com", "b"}, {"pass", "example.com", "c"}},
			status: StatusAccept, ar: passAR("example.com", "reject")},
		{name: "aligned DKIM fails, unrelated SPF passes", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			spf: spfPass("example.net"), dkim: dkimFail("example.com"), status: StatusReject, ar: fail("example.com", "reject", "reject")},
		{name: "psd=n below the author's org cuts relaxed alignment", zone: zoneSpec{txt: txt(
			"_dmarc.example.com", reject, "_dmarc.bounce.example.com", "v=DMARC1; p=none; psd=n")},
			spf: spfPass("bounce.example.com"), status: StatusReject, ar: fail("example.com", "reject", "reject")},
		{name: "d=com never aligns", zone: zoneSpec{txt: txt("_dmarc.example.com", reject, "_dmarc.com", "v=DMARC1; p=none; psd=y")},
			dkim: dkimPass("com"), status: StatusReject, ar: fail("example.com", "reject", "reject")},

		// Subdomain and np policies.
		{name: "existing subdomain gets sp=", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine"), exists: []string{"sub.example.com"}},
			from: fromAddr("sub.example.com"), status: StatusQuarantine, ar: fail("sub.example.com", "quarantine", "quarantine"),
			used: "example.com", policy: PolicyQuarantine},
		{name: "subdomain without sp= gets p=", zone: zoneSpec{txt: txt("_dmarc.example.com", reject), exists: []string{"sub.example.com"}},
			from: fromAddr("sub.example.com"), status: StatusReject, ar: fail("sub.example.com", "reject", "reject"), used: "example.com"},
		{name: "subdomain's own record wins over its org's", zone: zoneSpec{txt: txt("_dmarc.example.com", reject, "_dmarc.sub.example.com", pnone)},
			from: fromAddr("sub.example.com"), status: StatusNone, ar: fail("sub.example.com", "none", "none"), used: "sub.example.com"},
		{name: "non-existent subdomain gets np=", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=quarantine; sp=none; np=reject")},
			from: fromAddr("nx.example.com"), status: StatusReject, ar: fail("nx.example.com", "reject", "reject"), policy: PolicyReject,
			queries: q("_dmarc.nx.example.com TXT", "_dmarc.example.com TXT", "_dmarc.com TXT", "nx.example.com A")},
		{name: "non-existent subdomain without np= gets sp=", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=none")},
			from: fromAddr("nx.example.com"), status: StatusNone, ar: fail("nx.example.com", "none", "none")},
		{name: "existing subdomain ignores np=", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=none; np=reject"), exists: []string{"www.example.com"}},
			from: fromAddr("www.example.com"), status: StatusNone, ar: fail("www.example.com", "none", "none")},
		{name: "a subdomain that is a CNAME to nowhere exists", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=none; np=reject")},
			from: fromAddr("alias.example.com"), status: StatusNone, ar: fail("alias.example.com", "none", "none")}, // the zone is patched below
		{name: "np= equal to sp= needs no existence query", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=none; sp=reject; np=reject")},
			from: fromAddr("nx.example.com"), status: StatusReject, ar: fail("nx.example.com", "reject", "reject"),
			queries: q("_dmarc.nx.example.com TXT", "_dmarc.example.com TXT", "_dmarc.com TXT")},
		{name: "np= does not apply to the policy domain itself", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=none; np=reject")},
			status: StatusNone, ar: fail("example.com", "none", "none")},

		// Tree walk with PSD records.
		{name: "PSD policy for a domain without its own record", zone: zoneSpec{txt: txt("_dmarc.test", "v=DMARC1; p=reject; psd=y"), exists: []string{"shop.bank.test"}},
			from: fromAddr("shop.bank.test"), status: StatusReject, ar: fail("shop.bank.test", "reject", "reject"), used: "test",
			queries: q("_dmarc.shop.bank.test TXT", "_dmarc.bank.test TXT", "_dmarc.test TXT")},
		{name: "PSD policy not used when the org publishes", zone: zoneSpec{txt: txt("_dmarc.test", "v=DMARC1; p=reject; psd=y", "_dmarc.bank.test", pnone), exists: []string{"shop.bank.test"}},
			from: fromAddr("shop.bank.test"), status: StatusNone, ar: fail("shop.bank.test", "none", "none"), used: "bank.test"},
		{name: "PSD np= for a non-existent domain", zone: zoneSpec{txt: txt("_dmarc.test", "v=DMARC1; p=none; np=reject; psd=y")},
			from: fromAddr("ghost.test"), status: StatusReject, ar: fail("ghost.test", "reject", "reject"), used: "test"},
		{name: "PSD: relaxed alignment within the org below the PSD", zone: zoneSpec{txt: txt("_dmarc.test", "v=DMARC1; p=reject; psd=y"), exists: []string{"shop.bank.test"}},
			from: fromAddr("shop.bank.test"), dkim: dkimPass("mail.bank.test"), status: StatusAccept, ar: passAR("shop.bank.test", "reject")},
		{name: "PSD: other org under the same PSD does not align", zone: zoneSpec{txt: txt("_dmarc.test", "v=DMARC1; p=reject; psd=y"), exists: []string{"shop.bank.test"}},
			from: fromAddr("shop.bank.test"), dkim: dkimPass("evil.test"), status: StatusReject, ar: fail("shop.bank.test", "reject", "reject")},
		{name: "tree walk: the org is the record with fewest labels", zone: zoneSpec{txt: txt("_dmarc.mail.example.com", quarantine, "_dmarc.example.com", reject), exists: []string{"a.mail.example.com"}},
			from: fromAddr("a.mail.example.com"), status: StatusReject, ar: fail("a.mail.example.com", "reject", "reject"), used: "example.com"},
		{name: "tree walk: psd=n makes an intermediate record the org", zone: zoneSpec{txt: txt("_dmarc.mail.example.com", "v=DMARC1; p=quarantine; psd=n", "_dmarc.example.com", reject), exists: []string{"a.mail.example.com"}},
			from: fromAddr("a.mail.example.com"), status: StatusQuarantine, ar: fail("a.mail.example.com", "quarantine", "quarantine"), used: "mail.example.com",
			queries: q("_dmarc.a.mail.example.com TXT", "_dmarc.mail.example.com TXT")},
		{name: "tree walk: long name costs at most 8 queries", zone: zoneSpec{txt: txt("_dmarc.example.com", reject), exists: []string{"a.b.c.d.e.f.g.h.i.mail.example.com"}},
			from: fromAddr("a.b.c.d.e.f.g.h.i.mail.example.com"), status: StatusReject, ar: fail("a.b.c.d.e.f.g.h.i.mail.example.com", "reject", "reject"),
			queries: q("_dmarc.a.b.c.d.e.f.g.h.i.mail.example.com TXT", "_dmarc.f.g.h.i.mail.example.com TXT", "_dmarc.g.h.i.mail.example.com TXT",
				"_dmarc.h.i.mail.example.com TXT", "_dmarc.i.mail.example.com TXT", "_dmarc.mail.example.com TXT", "_dmarc.example.com TXT", "_dmarc.com TXT")},

		// Multiple records.
		{name: "two records at the author: discarded, walk goes on", zone: zoneSpec{txt: txt("_dmarc.example.com", reject, "_dmarc.example.com", pnone)},
			status: StatusNoRecord, ar: noneAR("example.com")},
		{name: "two records at a subdomain: the org's record applies", zone: zoneSpec{txt: txt("_dmarc.sub.example.com", reject, "_dmarc.sub.example.com", pnone,
			"_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine")},
			from: fromAddr("sub.example.com"), status: StatusQuarantine, ar: fail("sub.example.com", "quarantine", "quarantine"), used: "example.com"},
		{name: "PSL mode: two records at the author end discovery", mode: PSLMode, zone: zoneSpec{txt: txt("_dmarc.sub.example.com", reject, "_dmarc.sub.example.com", pnone,
			"_dmarc.example.com", reject)},
			from: fromAddr("sub.example.com"), status: StatusNoRecord, ar: noneAR("sub.example.com"), queries: q("_dmarc.sub.example.com TXT")},
		{name: "other TXT records beside the DMARC record", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=spf1 -all", "_dmarc.example.com", reject, "_dmarc.example.com", "hello")},
			status: StatusReject, ar: fail("example.com", "reject", "reject")},
		{name: "record split over several strings", zone: zoneSpec{txt: map[string][]string{}},
			status: StatusReject, ar: fail("example.com", "reject", "reject")}, // the zone is patched below

		// Record validity.
		{name: "v=DMARC1 alone: no policy, no rua: no DMARC", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1")},
			status: StatusNoRecord, ar: noneAR("example.com")},
		{name: "no p= but rua=: p=none", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; rua=mailto:d@example.com")},
			status: StatusNone, ar: fail("example.com", "none", "none")},
		{name: "invalid p= with rua=: p=none", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=bounce; rua=mailto:d@example.com")},
			status: StatusNone, ar: fail("example.com", "none", "none")},
		{name: "invalid sp= without rua=: no DMARC", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=drop")},
			status: StatusNoRecord, ar: noneAR("example.com")},
		{name: "v= not first: not a DMARC record", zone: zoneSpec{txt: txt("_dmarc.example.com", "p=reject; v=DMARC1")},
			status: StatusNoRecord, ar: noneAR("example.com")},
		{name: "v=dmarc1 is case-sensitive", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=dmarc1; p=reject")},
			status: StatusNoRecord, ar: noneAR("example.com")},
		{name: "policy values ignore case, unknown tags ignored", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; P=Reject; future=yes")},
			status: StatusReject, ar: fail("example.com", "reject", "reject")},

		// DNS failures.
		{name: "timeout at the author's record", zone: zoneSpec{faults: map[string]dnstest.Fault{"_dmarc.example.com": dnstest.Timeout}},
			status: StatusTempError, ar: tempAR("example.com")},
		{name: "SERVFAIL while walking up", zone: zoneSpec{faults: map[string]dnstest.Fault{"_dmarc.com": dnstest.ServFail}, exists: []string{"example.com"}},
			status: StatusTempError, ar: tempAR("example.com")},
		{name: "timeout on the existence check for np=", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=none; np=reject"),
			faults: map[string]dnstest.Fault{"nx.example.com": dnstest.Timeout}},
			from: fromAddr("nx.example.com"), status: StatusTempError, ar: tempAR("nx.example.com")},
		{name: "walk failure for SPF alignment, DKIM aligned anyway", zone: zoneSpec{txt: txt("_dmarc.example.com", reject),
			faults: map[string]dnstest.Fault{"_dmarc.bounce.example.com": dnstest.Timeout}},
			spf: spfPass("bounce.example.com"), dkim: dkimPass("example.com"), status: StatusAccept, ar: passAR("example.com", "reject")},
		{name: "walk failure for SPF alignment, nothing else", zone: zoneSpec{txt: txt("_dmarc.example.com", reject),
			faults: map[string]dnstest.Fault{"_dmarc.bounce.example.com": dnstest.Refused}},
			spf: spfPass("bounce.example.com"), status: StatusTempError, ar: tempAR("example.com")},
		{name: "failure after the policy record: none needed", zone: zoneSpec{txt: txt("_dmarc.example.com", reject),
			faults: map[string]dnstest.Fault{"_dmarc.com": dnstest.Timeout}},
			dkim: dkimPass("example.com"), status: StatusAccept, ar: passAR("example.com", "reject")},

		// t= and pct=.
		{name: "t=y: reject becomes quarantine", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; t=y")},
			status: StatusQuarantine, ar: fail("example.com", "reject", "quarantine"), policy: PolicyReject},
		{name: "t=y: quarantine becomes none", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=quarantine; t=y")},
			status: StatusNone, ar: fail("example.com", "quarantine", "none")},
		{name: "t=n: applied", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; t=n")},
			status: StatusReject, ar: fail("example.com", "reject", "reject")},
		{name: "pct=50, not sampled: one level down", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; pct=50")},
			rand: 50, status: StatusQuarantine, ar: fail("example.com", "reject", "quarantine")},
		{name: "pct=50, sampled", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; pct=50")},
			rand: 49, status: StatusReject, ar: fail("example.com", "reject", "reject")},
		{name: "pct=0 quarantine: none", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=quarantine; pct=0")},
			rand: 0, status: StatusNone, ar: fail("example.com", "quarantine", "none")},
		{name: "pct= does not touch a pass", zone: zoneSpec{txt: txt("_dmarc.example.com", "v=DMARC1; p=reject; pct=10")},
			rand: 99, spf: spfPass("example.com"), status: StatusAccept, ar: passAR("example.com", "reject")},

		// From problems.
		{name: "no From", from: []string{}, status: StatusNoFrom, ar: "dmarc=permerror (no From header field)"},
		{name: "several From fields", from: []string{" a@example.com", " b@example.com"}, status: StatusNoFrom,
			ar: "dmarc=permerror (several From header fields)"},
		{name: "several From domains", from: []string{" a@example.com, b@example.net"}, status: StatusNoFrom,
			ar: "dmarc=permerror (mailboxes of several domains in the From header field)"},
		{name: "unparseable From", from: []string{" <a@example.com"}, status: StatusNoFrom,
			ar: "dmarc=permerror (unparseable From header field)"},
		{name: "From without mailbox (empty group)", from: []string{" undisclosed-recipients:;"}, status: StatusNoFrom,
			ar: "dmarc=permerror (no mailbox in the From header field)"},
		{name: "several mailboxes, one domain", zone: zoneSpec{txt: txt("_dmarc.example.com", reject)},
			from: []string{" a@example.com,\r\n\tB <b@EXAMPLE.com>"}, dkim: dkimPass("example.com"), status: StatusAccept, ar: passAR("example.com", "reject")},

		// RFC 7489 mode with the Public Suffix List.
		{name: "PSL: relaxed alignment without DNS", mode: PSLMode, zone: zoneSpec{txt: txt("_dmarc.example.co.uk", reject), exists: []string{"sub.example.co.uk"}},
			from: fromAddr("sub.example.co.uk"), spf: spfPass("mail.example.co.uk"), status: StatusAccept, ar: passAR("sub.example.co.uk", "reject"),
			queries: q("_dmarc.sub.example.co.uk TXT", "_dmarc.example.co.uk TXT")},
		{name: "PSL: org record's sp= for a subdomain", mode: PSLMode, zone: zoneSpec{txt: txt("_dmarc.example.co.uk", "v=DMARC1; p=reject; sp=quarantine"), exists: []string{"sub.example.co.uk"}},
			from: fromAddr("sub.example.co.uk"), status: StatusQuarantine, ar: fail("sub.example.co.uk", "quarantine", "quarantine"), used: "example.co.uk"},
		{name: "PSL: intermediate records are not looked at", mode: PSLMode, zone: zoneSpec{txt: txt("_dmarc.mail.example.com", reject), exists: []string{"a.mail.example.com"}},
			from: fromAddr("a.mail.example.com"), status: StatusNoRecord, ar: noneAR("a.mail.example.com"),
			queries: q("_dmarc.a.mail.example.com TXT", "_dmarc.example.com TXT")},
		{name: "PSL: unrelated domains under one public suffix do not align", mode: PSLMode, zone: zoneSpec{txt: txt("_dmarc.example.co.uk", reject)},
			from: fromAddr("example.co.uk"), dkim: dkimPass("other.co.uk"), status: StatusReject, ar: fail("example.co.uk", "reject", "reject")},
		{name: "PSL: timeout at the org record", mode: PSLMode, zone: zoneSpec{faults: map[string]dnstest.Fault{"_dmarc.example.com": dnstest.ServFail}, exists: []string{"sub.example.com"}},
			from: fromAddr("sub.example.com"), status: StatusTempError, ar: tempAR("sub.example.com")},
	}
}

func TestScenarios(t *testing.T) {
	all := scenarios()
	if len(all) < 40 {
		t.Fatalf("only %d scenarios", len(all))
	}
	for _, sc := range all {
		t.Run(sc.name, func(t *testing.T) {
			z := sc.zone.build()
			if sc.name == "a subdomain that is a CNAME to nowhere exists" {
				z.Add("alias.example.com. 300 IN CNAME gone.example.net.")
			}
			if sc.name == "record split over several strings" {
				z.AddRecord(resolver.Record{Name: "_dmarc.example.com", Type: resolver.TypeTXT,
					TXT: []string{"v=DMARC1; p=re", "ject; rua=mailto:", "a@example.com"}})
			}
			from := sc.from
			if from == nil {
				from = fromAddr("example.com")
			}
			fd, ferr := FromDomain(from)
			r := sc.rand
			e := &Evaluator{DNS: z, Discovery: sc.mode, Rand: func(n int) int {
				if n != 100 {
					t.Errorf("Rand(%d)", n)
				}
				return r
			}}
			o := e.Evaluate(context.Background(), Input{FromDomain: fd, FromErr: ferr, SPF: sc.spf, DKIM: sc.dkim})
			if o.Status != sc.status {
				t.Errorf("status %s (%s), want %s", o.Status, o.StatusText, sc.status)
			}
			ar, _ := o.AuthResult()
			if ar.String() != sc.ar {
				t.Errorf("A-R:\n got %s\nwant %s", ar.String(), sc.ar)
			}
			if sc.used != "" && o.UsedDomain != sc.used {
				t.Errorf("used domain %q, want %q", o.UsedDomain, sc.used)
			}
			if sc.policy != "" && o.Policy != sc.policy {
				t.Errorf("policy %q, want %q", o.Policy, sc.policy)
			}
			if sc.queries != nil {
				var got []string
				for _, l := range z.Queries() {
					got = append(got, l.Name+" "+l.Type.String())
				}
				if strings.Join(got, ", ") != strings.Join(sc.queries, ", ") {
					t.Errorf("queries:\n got %s\nwant %s", strings.Join(got, ", "), strings.Join(sc.queries, ", "))
				}
			}
			if o.StatusText == "" {
				t.Error("empty StatusText")
			}
			if want := "Authentication-Results: mx.example.org; " + sc.ar; o.ARHeader("mx.example.org") != want {
				t.Errorf("ARHeader %q", o.ARHeader("mx.example.org"))
			}
		})
	}
}

func TestDisabled(t *testing.T) {
	o := Disabled()
	if o.Status != StatusOff || o.ARHeader("mx") != "" {
		t.Errorf("%+v", o)
	}
	if _, ok := o.AuthResult(); ok {
		t.Error("AuthResult for off")
	}
}

func TestAction(t *testing.T) {
	z := zoneSpec{txt: txt("_dmarc.example.com", reject)}.build()
	o := (&Evaluator{DNS: z}).Evaluate(context.Background(), Input{FromDomain: "example.com"})
	o.Action = PolicyReject
	ar, _ := o.AuthResult()
	if got, want := ar.String(), "dmarc=fail (p=reject dis=reject) header.from=example.com policy.dmarc=reject"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got, want := o.ARHeader("mx .example"), `Authentication-Results: "mx .example"; `+ar.String(); got != want {
		t.Errorf("got %s", got)
	}
}

func TestParseStatusAndMode(t *testing.T) {
	for _, w := range []string{"accept", "reject", "quarantine", "none", "norecord", "nofrom", "temperror", "OFF"} {
		if _, ok := ParseStatus(w); !ok {
			t.Errorf("ParseStatus(%q)", w)
		}
	}
	if _, ok := ParseStatus("pass"); ok {
		t.Error("pass is not a dmarc_status word")
	}
	if m, ok := ParseMode("PSL"); !ok || m != PSLMode {
		t.Error("ParseMode psl")
	}
	if m, ok := ParseMode("treewalk"); !ok || m != TreeWalk || m.String() != "treewalk" {
		t.Error("ParseMode treewalk")
	}
}
