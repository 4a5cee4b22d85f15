package aggregate

import (
	"encoding/xml"
	"fmt"
	"net/netip"
	"sort"

	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/report/store"
)

// Format is the XML format of a report (dmarc_report_format).
type Format string

// The formats.
const (
	FormatRFC9990 Format = report.ReportFormatRFC9990 // RFC 9990 Appendix A; the default
	FormatRFC7489 Format = report.ReportFormatRFC7489 // RFC 7489 Appendix C
)

// RFC names the RFC that defines the format.
func (f Format) RFC() string {
	if f == FormatRFC7489 {
		return "RFC 7489"
	}
	return "RFC 9990"
}

// feedback7489 is the RFC 7489 document. Its root carries no namespace,
// as the RFC 7489 reports of large receivers and the readers of them
// (Mail::DMARC, which looks for /feedback) have it: the schema of
// Appendix C names http://dmarc.org/dmarc-xml/0.1 as its target but
// does not compile as published (its type references are unqualified),
// and read without that target it describes this document.
type feedback7489 struct {
	XMLName  xml.Name      `xml:"feedback"`
	Version  string        `xml:"version"`
	Metadata Metadata      `xml:"report_metadata"` // without generator
	Policy   published7489 `xml:"policy_published"`
	Records  []record7489  `xml:"record"`
}

// published7489 is RFC 7489's policy_published: sp, pct and fo are
// required; np and testing do not exist.
type published7489 struct {
	Domain string `xml:"domain"`
	ADKIM  string `xml:"adkim,omitempty"`
	ASPF   string `xml:"aspf,omitempty"`
	P      string `xml:"p"`
	SP     string `xml:"sp"`
	Pct    int    `xml:"pct"`
	FO     string `xml:"fo"`
}

type record7489 struct {
	Row         Row             `xml:"row"`
	Identifiers identifiers7489 `xml:"identifiers"`
	AuthResults authResults7489 `xml:"auth_results"`
}

// identifiers7489: envelope_from is required (empty for the null
// sender).
type identifiers7489 struct {
	EnvelopeTo   string `xml:"envelope_to,omitempty"`
	EnvelopeFrom string `xml:"envelope_from"`
	HeaderFrom   string `xml:"header_from"`
}

// authResults7489: at least one SPF result, its scope required.
type authResults7489 struct {
	DKIM []DKIMResult `xml:"dkim"`
	SPF  SPFResult    `xml:"spf"`
}

// feedback7489 is the report in RFC 7489's format. Records RFC 9990
// tells apart and RFC 7489 does not (a pass under p=none and one under
// p=reject: both disposition none) are counted as one.
func (r *Report) feedback7489() *feedback7489 {
	md := r.Metadata
	md.Generator = "" // RFC 9990's
	p := r.Policy
	doc := &feedback7489{Version: "1.0", Metadata: md, Policy: published7489{Domain: p.Domain, ADKIM: p.ADKIM, ASPF: p.ASPF,
		P: p.P, SP: p.SP, Pct: p.pct, FO: p.FO}}
	if doc.Policy.SP == "" {
		doc.Policy.SP = p.P // RFC 7489 section 6.3: sp defaults to p
	}
	if doc.Policy.FO == "" {
		doc.Policy.FO = "0"
	}
	index := map[string]int{}
	for i := range r.Records {
		rec := record7489Of(&r.Records[i])
		key := fmt.Sprintf("%v|%v|%v|%v", rec.Row.SourceIP, rec.Row.Evaluated, rec.Identifiers, rec.AuthResults)
		if j, ok := index[key]; ok {
			doc.Records[j].Row.Count += rec.Row.Count
			continue
		}
		index[key] = len(doc.Records)
		doc.Records = append(doc.Records, rec)
	}
	sort.SliceStable(doc.Records, func(i, j int) bool { return doc.Records[i].Row.Count > doc.Records[j].Row.Count })
	return doc
}

func record7489Of(r *Record) record7489 {
	ev := r.Row.Evaluated
	if ev.Disposition == "pass" {
		ev.Disposition = "none" // RFC 7489's DispositionType has no pass
	}
	reasons := make([]Reason, len(ev.Reasons))
	for i, x := range ev.Reasons {
		reasons[i] = Reason{Type: reason7489(x), Comment: x.Comment}
	}
	ev.Reasons = reasons
	return record7489{
		Row:         Row{SourceIP: ip7489(r.Row.SourceIP), Count: r.Row.Count, Evaluated: ev},
		Identifiers: identifiers7489{EnvelopeTo: r.Identifiers.EnvelopeTo, EnvelopeFrom: r.Identifiers.EnvelopeFrom, HeaderFrom: r.Identifiers.HeaderFrom},
		AuthResults: authResults7489{DKIM: r.AuthResults.DKIM, SPF: r.spf7489},
	}
}

// reason7489 is the PolicyOverrideType of RFC 7489: sampled_out for the
// history's sampled_out (pct=, or t=y, RFC 9990's policy_test_mode);
// forwarded, trusted_forwarder, mailing_list, local_policy and other as
// they are.
func reason7489(r Reason) string {
	t := r.Type
	if r.override != "" {
		t = string(r.override)
	}
	switch report.OverrideReason(t) {
	case report.OverrideSampledOut, report.OverridePolicyTestMode:
		return string(report.OverrideSampledOut)
	case report.OverrideLocalPolicy, report.OverrideTrustedForwarder, report.OverrideMailingList, report.OverrideOther:
		return t
	}
	if t == "forwarded" {
		return t
	}
	return string(report.OverrideOther)
}

// ip7489 writes an address as RFC 7489's IPAddress pattern accepts it:
// dotted IPv4, or IPv6 with all eight groups (no "::").
func ip7489(s string) string {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	a = a.WithZone("").Unmap()
	if a.Is6() {
		return a.StringExpanded()
	}
	return a.String()
}

// spf7489 is the SPF result as RFC 7489's auth_results has it: always
// one (its schema requires it), scope mfrom or helo. Without an SPF
// result it is none for the MAIL FROM domain; an OpenDMARC record of the
// null sender has the HELO name's result but not the name.
func spf7489(g *store.Group) SPFResult {
	r := SPFResult{Domain: g.EnvelopeFrom, Scope: "mfrom", Result: "none"}
	if g.SPF != report.ARESUndefined {
		if r.Result = spfWord(g.SPF); r.Result == "policy" {
			r.Result = "permerror" // not an SPF result, nor in RFC 7489's SPFResultType
		}
	}
	if x := g.Ext; x != nil {
		if x.SPFDomain != "" {
			r.Domain = x.SPFDomain
		}
		if x.SPFScope == report.SPFScopeHelo {
			r.Scope = "helo"
		}
	} else if g.EnvelopeFrom == "" && g.SPF != report.ARESUndefined {
		r.Scope = "helo"
	}
	return r
}
