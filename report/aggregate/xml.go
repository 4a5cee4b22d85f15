package aggregate

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/report/store"
)

// Namespace is the RFC 9990 XML namespace.
const Namespace = "urn:ietf:params:xml:ns:dmarc-2.0"

// Reporter is who sends the reports (report_org_name, report_email,
// report_contact).
type Reporter struct {
	OrgName string
	Email   string
	Contact string
	// Domain names the receiver in file names; default: Email's domain.
	Domain string
}

func (r Reporter) domain() string {
	if r.Domain != "" {
		return r.Domain
	}
	_, d, _ := strings.Cut(r.Email, "@")
	return d
}

// Feedback is the report document.
type Feedback struct {
	XMLName  xml.Name  `xml:"feedback"`
	XMLNS    string    `xml:"xmlns,attr"`
	Version  string    `xml:"version"`
	Metadata Metadata  `xml:"report_metadata"`
	Policy   Published `xml:"policy_published"`
	Records  []Record  `xml:"record"`
}

// Metadata is report_metadata.
type Metadata struct {
	OrgName   string    `xml:"org_name"`
	Email     string    `xml:"email"`
	Contact   string    `xml:"extra_contact_info,omitempty"`
	ReportID  string    `xml:"report_id"`
	DateRange DateRange `xml:"date_range"`
	Generator string    `xml:"generator,omitempty"`
}

// DateRange is the period, in Unix seconds.
type DateRange struct {
	Begin int64 `xml:"begin"`
	End   int64 `xml:"end"`
}

// Published is policy_published: the record as it was seen. NP, FO and
// Testing are known from records in the sidecar history format only.
type Published struct {
	Domain  string `xml:"domain"`
	P       string `xml:"p"`
	SP      string `xml:"sp,omitempty"`
	NP      string `xml:"np,omitempty"`
	ADKIM   string `xml:"adkim,omitempty"`
	ASPF    string `xml:"aspf,omitempty"`
	FO      string `xml:"fo,omitempty"`
	Testing string `xml:"testing,omitempty"`
	// pct is pct= (RFC 7489's policy_published has it; RFC 9990's not).
	pct int
}

// Record is one group of messages.
type Record struct {
	Row         Row         `xml:"row"`
	Identifiers Identifiers `xml:"identifiers"`
	AuthResults AuthResults `xml:"auth_results"`
	// spf7489 is the SPF result as RFC 7489 reports it: always one, with
	// scope helo for the HELO name.
	spf7489 SPFResult
}

// Row is a record's row.
type Row struct {
	SourceIP  string    `xml:"source_ip"`
	Count     int64     `xml:"count"`
	Evaluated Evaluated `xml:"policy_evaluated"`
}

// Evaluated is policy_evaluated.
type Evaluated struct {
	Disposition string   `xml:"disposition"`
	DKIM        string   `xml:"dkim"`
	SPF         string   `xml:"spf"`
	Reasons     []Reason `xml:"reason"`
}

// Reason is a policy override reason.
type Reason struct {
	Type    string `xml:"type"`
	Comment string `xml:"comment,omitempty"`
	// override is the reason as the history named it (sampled_out,
	// which RFC 9990 lacks and RFC 7489 has).
	override report.OverrideReason
}

// Identifiers are the record's domains.
type Identifiers struct {
	HeaderFrom   string `xml:"header_from"`
	EnvelopeFrom string `xml:"envelope_from,omitempty"`
	EnvelopeTo   string `xml:"envelope_to,omitempty"`
}

// AuthResults are the raw results.
type AuthResults struct {
	DKIM []DKIMResult `xml:"dkim"`
	SPF  *SPFResult   `xml:"spf"`
}

// DKIMResult is one signature's result.
type DKIMResult struct {
	Domain   string `xml:"domain"`
	Selector string `xml:"selector"`
	Result   string `xml:"result"`
}

// SPFResult is the SPF result.
type SPFResult struct {
	Domain string `xml:"domain"`
	Scope  string `xml:"scope,omitempty"` // mfrom; none for HELO
	Result string `xml:"result"`
}

// Report is the report of one policy domain for one period.
type Report struct {
	Feedback
	RUA    []string // the rua URIs of the latest record seen
	Format Format   // the XML format; "" is RFC 9990's
}

// Domain is the policy domain.
func (r *Report) Domain() string { return r.Policy.Domain }

// Builder collects the groups of one domain after another (as
// store.Groups gives them, ordered by domain) and hands over each
// domain's report when the next domain starts.
type Builder struct {
	Reporter   Reporter
	Begin, End time.Time
	Generator  string
	Format     Format // of the reports; "" is RFC 9990's
	Emit       func(*Report) error

	cur   *Report
	last  time.Time
	index map[string]int // record key → index in cur.Records
}

// Add adds one group.
func (b *Builder) Add(g *store.Group) error {
	if b.cur != nil && b.cur.Policy.Domain != g.PolicyDomain {
		if err := b.Flush(); err != nil {
			return err
		}
	}
	if b.cur == nil {
		b.cur = &Report{Feedback: Feedback{XMLNS: Namespace, Version: "1.0", Metadata: Metadata{
			OrgName: b.Reporter.OrgName, Email: b.Reporter.Email, Contact: b.Reporter.Contact,
			ReportID:  ReportID(g.PolicyDomain, b.Begin, b.End, b.Reporter.domain()),
			DateRange: DateRange{b.Begin.Unix(), b.End.Unix() - 1}, Generator: b.Generator,
		}}, Format: b.Format}
		b.index = map[string]int{}
		b.last = time.Time{}
	}
	if !g.Last.Before(b.last) {
		b.last = g.Last
		b.cur.Policy = published(g)
		b.cur.RUA = strings.Fields(g.RUA)
	}
	rec := record(g)
	key := recordKey(&rec)
	if i, ok := b.index[key]; ok {
		b.cur.Records[i].Row.Count += g.Count
		return nil
	}
	b.index[key] = len(b.cur.Records)
	b.cur.Records = append(b.cur.Records, rec)
	return nil
}

// Flush hands over the report being built, if any.
func (b *Builder) Flush() error {
	r := b.cur
	b.cur = nil
	if r == nil {
		return nil
	}
	sort.Slice(r.Records, func(i, j int) bool {
		a, b := &r.Records[i], &r.Records[j]
		if a.Row.Count != b.Row.Count {
			return a.Row.Count > b.Row.Count
		}
		return recordKey(a) < recordKey(b)
	})
	return b.Emit(r)
}

// ReportID is the report's ID: the same for the same domain, period and
// receiver, so that a report built again is recognisably the same one.
func ReportID(domain string, begin, end time.Time, receiver string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s|%d|%d|%s", domain, begin.Unix(), end.Unix(), receiver)))
	return strconv.FormatInt(begin.Unix(), 10) + "." + hex.EncodeToString(h[:10])
}

func policyWord(code int) string {
	switch code {
	case 'n':
		return "none"
	case 'q':
		return "quarantine"
	case 'r':
		return "reject"
	}
	return ""
}

func alignWord(code int) string {
	if code == 'r' || code == 's' {
		return string(rune(code))
	}
	return ""
}

func published(g *store.Group) Published {
	p := Published{Domain: g.PolicyDomain, P: policyWord(g.P), SP: policyWord(g.SP), ADKIM: alignWord(g.ADKIM), ASPF: alignWord(g.ASPF), pct: g.Pct}
	if p.P == "" {
		p.P = "none"
	}
	if x := g.Ext; x != nil {
		// psd= has no element in RFC 9990's policy_published.
		p.NP, p.FO = policyWord(x.NP), x.FO
		if x.Testing == 'y' || x.Testing == 'n' {
			p.Testing = string(rune(x.Testing))
		}
	}
	return p
}

// record is a group's record: disposition, DMARC results, override
// reasons, identifiers, raw results.
func record(g *store.Group) Record {
	pass := g.AlignDKIM == report.HistoryAlignPass || g.AlignSPF == report.HistoryAlignPass
	ev := Evaluated{DKIM: "fail", SPF: "fail"}
	if g.AlignDKIM == report.HistoryAlignPass {
		ev.DKIM = "pass"
	}
	if g.AlignSPF == report.HistoryAlignPass {
		ev.SPF = "pass"
	}
	switch g.Action {
	case report.HistoryActionReject, report.HistoryActionDiscard:
		ev.Disposition = "reject"
	case report.HistoryActionQuarantine:
		ev.Disposition = "quarantine"
	default:
		ev.Disposition = "none"
		if pass && (g.P == 'q' || g.P == 'r') {
			ev.Disposition = "pass"
		}
	}
	if g.Ext != nil {
		ev.Reasons = reasons(g)
	} else if wanted := (g.Policy == report.HistoryPolicyReject && ev.Disposition != "reject") ||
		(g.Policy == report.HistoryPolicyQuarantine && ev.Disposition == "none"); !pass && wanted {
		// An OpenDMARC record says no reason: a failure the policy
		// wanted refused or quarantined that was delivered, say why.
		switch {
		case g.ARCPolicy == 0:
			ev.Reasons = append(ev.Reasons, Reason{Type: "trusted_forwarder", Comment: "ARC chain of a trusted sealer"})
		case g.Action == report.HistoryActionTempFail:
			ev.Reasons = append(ev.Reasons, Reason{Type: "other", Comment: "deferred"})
		default:
			ev.Reasons = append(ev.Reasons, Reason{Type: "local_policy"})
		}
	}
	r := Record{Row: Row{SourceIP: g.IP, Count: g.Count, Evaluated: ev},
		Identifiers: Identifiers{HeaderFrom: g.HeaderFrom, EnvelopeFrom: g.EnvelopeFrom}}
	for _, d := range g.DKIM {
		r.AuthResults.DKIM = append(r.AuthResults.DKIM, DKIMResult{Domain: d.Domain, Selector: d.Selector, Result: dkimWord(d.Result)})
	}
	r.AuthResults.SPF = spfAuth(g)
	r.spf7489 = spf7489(g)
	// envelope_to is one domain: a message to several is reported without.
	if x := g.Ext; x != nil && len(x.RcptDomains) == 1 {
		r.Identifiers.EnvelopeTo = x.RcptDomains[0]
	}
	return r
}

// spfAuth is the SPF auth_results: the domain SPF checked, with scope
// mfrom unless it was the HELO name (which RFC 9990's scope cannot
// name). An OpenDMARC record only knows the MAIL FROM domain.
func spfAuth(g *store.Group) *SPFResult {
	if g.SPF == report.ARESUndefined {
		return nil
	}
	if x := g.Ext; x != nil {
		if x.SPFDomain == "" {
			return nil
		}
		r := &SPFResult{Domain: x.SPFDomain, Result: spfWord(g.SPF)}
		if x.SPFScope == report.SPFScopeMailFrom {
			r.Scope = "mfrom"
		}
		return r
	}
	if g.EnvelopeFrom == "" {
		return nil
	}
	return &SPFResult{Domain: g.EnvelopeFrom, Scope: "mfrom", Result: spfWord(g.SPF)}
}

// reasons are the override reasons a record in the sidecar format
// names. RFC 9990 has no sampled_out: t=y is its policy_test_mode, pct=
// sampling (RFC 7489) is other.
func reasons(g *store.Group) []Reason {
	var out []Reason
	for _, o := range g.Ext.Override {
		r := Reason{Type: string(o), override: o}
		switch o {
		case report.OverrideSampledOut:
			r.Type, r.Comment = string(report.OverridePolicyTestMode), "t=y"
			if g.Ext.Testing != 'y' {
				r.Type, r.Comment = string(report.OverrideOther), "pct= sampling"
			}
		case report.OverrideTrustedForwarder:
			r.Comment = "ARC chain of a trusted sealer"
		case report.OverrideOther:
			if g.Action == report.HistoryActionTempFail {
				r.Comment = "deferred"
			}
		}
		out = append(out, r)
	}
	return out
}

func recordKey(r *Record) string {
	var b strings.Builder
	ev := r.Row.Evaluated
	fmt.Fprintf(&b, "%s|%s|%s|%s|%s|%s|%s", r.Row.SourceIP, ev.Disposition, ev.DKIM, ev.SPF, r.Identifiers.HeaderFrom,
		r.Identifiers.EnvelopeFrom, r.Identifiers.EnvelopeTo)
	for _, x := range ev.Reasons {
		fmt.Fprintf(&b, "|r:%s/%s", x.Type, x.Comment)
	}
	for _, d := range r.AuthResults.DKIM {
		fmt.Fprintf(&b, "|d:%s/%s/%s", d.Domain, d.Selector, d.Result)
	}
	if s := r.AuthResults.SPF; s != nil {
		fmt.Fprintf(&b, "|s:%s/%s/%s", s.Domain, s.Scope, s.Result)
	}
	s := &r.spf7489 // written without fmt: this runs for every group
	b.WriteString("|l:" + s.Domain + "/" + s.Scope + "/" + s.Result)
	return b.String()
}

// The result tokens each kind of auth_results may carry (RFC 9990
// schema: DKIMResultType, SPFResultType); any other is reported as
// permerror for SPF and fail for DKIM.
var (
	dkimTokens = map[string]bool{"none": true, "pass": true, "fail": true, "policy": true, "neutral": true, "temperror": true, "permerror": true}
	spfTokens  = map[string]bool{"none": true, "pass": true, "fail": true, "softfail": true, "policy": true, "neutral": true, "temperror": true, "permerror": true}
)

func dkimWord(a report.ARES) string {
	if t := a.String(); dkimTokens[t] {
		return t
	}
	return "fail"
}

func spfWord(a report.ARES) string {
	if t := a.String(); spfTokens[t] {
		return t
	}
	return "permerror"
}

// XML returns the document, in the report's format.
func (r *Report) XML() ([]byte, error) {
	var doc any = &r.Feedback
	if r.Format == FormatRFC7489 {
		doc = r.feedback7489()
	}
	var b bytes.Buffer
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	enc.Indent("", " ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
}

// Gzip returns the gzip-compressed document.
func (r *Report) Gzip() ([]byte, error) {
	x, err := r.XML()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&b)
	zw.Name = strings.TrimSuffix(r.FileName(""), ".gz")
	zw.ModTime = time.Unix(r.Metadata.DateRange.End, 0)
	zw.Write(x)
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// gzipWriters keeps compressors between reports: a new one allocates
// about 800 KB of tables, which for 10,000 small reports costs more than
// compressing them.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// FileName is the RFC 9990 file name: receiver "!" policy-domain "!"
// begin "!" end [ "!" unique-id ] ".xml.gz"; receiver is the
// reporter's domain. RFC 7489 section 7.2.1.1 names the file the same.
func (r *Report) FileName(receiver string) string {
	if receiver == "" {
		_, receiver, _ = strings.Cut(r.Metadata.Email, "@")
	}
	return fmt.Sprintf("%s!%s!%d!%d.xml.gz", receiver, r.Policy.Domain, r.Metadata.DateRange.Begin, r.Metadata.DateRange.End)
}
