package report

import (
	"strconv"
	"strings"

	"github.com/mailsidecar/sidecar/dmarc"
)

// HistoryFormat is the dmarc_history_file format (dmarc_history_format).
type HistoryFormat string

// The formats.
const (
	// FormatOpenDMARC is OpenDMARC 1.4's record, byte for byte: what
	// opendmarc-import reads without a warning. The default.
	FormatOpenDMARC HistoryFormat = "opendmarc"
	// FormatSidecar is the OpenDMARC record followed by the keys of
	// HistoryExt, which RFC 9990 reports need and OpenDMARC does not
	// write. opendmarc-import still imports it, warning "unknown key"
	// for each extra line.
	FormatSidecar HistoryFormat = "sidecar"
)

// HistoryFormats are the values of dmarc_history_format.
var HistoryFormats = []string{string(FormatOpenDMARC), string(FormatSidecar)}

// The SPF scopes of the "spf_scope" line: the identity SPF checked.
const (
	SPFScopeMailFrom = "mfrom" // MAIL FROM (RFC 9990 SPFDomainScope)
	SPFScopeHelo     = "helo"  // the HELO name, for the null sender
)

// OverrideReason is an RFC 9990 policy_override_reason type, as the
// "override" line writes it.
type OverrideReason string

// The reasons the history records. RFC 9990's schema has no
// sampled_out (RFC 7489's); reports write it as policy_test_mode when the
// record has t=y, else as other.
const (
	OverrideLocalPolicy      OverrideReason = "local_policy"      // the receiver did other than the policy asked
	OverrideTrustedForwarder OverrideReason = "trusted_forwarder" // dmarc_arc_trusted_sealers overrode a failure
	OverrideMailingList      OverrideReason = "mailing_list"
	OverrideSampledOut       OverrideReason = "sampled_out" // t=y or pct= lowered the disposition
	OverridePolicyTestMode   OverrideReason = "policy_test_mode"
	OverrideOther            OverrideReason = "other" // the message was deferred
)

var overrideReasons = map[string]OverrideReason{}

func init() {
	for _, r := range []OverrideReason{OverrideLocalPolicy, OverrideTrustedForwarder, OverrideMailingList,
		OverrideSampledOut, OverridePolicyTestMode, OverrideOther} {
		overrideReasons[string(r)] = r
	}
}

// HistoryExt is what a record in the sidecar format carries after
// OpenDMARC's keys: the SPF identity, the envelope recipients' domains,
// the policy record's other tags and the override reasons. Single-letter
// tags are ASCII codes as OpenDMARC writes p and sp ('y' = 121), 0 when
// the tag is not published or there is no record.
type HistoryExt struct {
	SPFDomain   string           // spf_domain: the domain SPF checked; "" when it did not
	SPFScope    string           // spf_scope: SPFScopeMailFrom, SPFScopeHelo or ""
	RcptDomains []string         // rcpt_domain: one line per domain, in the order of the recipients
	NP          int              // np: 'n', 'q' or 'r'; 0 when np= is not published
	PSD         int              // psd: 'y', 'n' or 'u'; 0 without record
	Testing     int              // t: 'y' or 'n'; 0 without record
	FO          string           // fo: as published, colon-separated ("0" by default); "" without record
	RUF         []string         // ruf: as published
	Override    []OverrideReason // override: why the disposition differs from the policy
}

// ExtFromOutcome fills the policy record's tags of an extension from an
// evaluation; the caller sets the SPF identity, the recipients and the
// override reasons.
func ExtFromOutcome(o dmarc.Outcome) *HistoryExt {
	x := &HistoryExt{}
	if r := o.Record; r != nil {
		if r.NonexistentPolicy != "" {
			x.NP = int(r.NonexistentPolicy[0])
		}
		if r.PSD != "" {
			x.PSD = int(r.PSD[0])
		}
		x.Testing = 'n'
		if r.Testing {
			x.Testing = 'y'
		}
		x.FO = strings.Join(r.FailureOptions, ":")
		if x.FO == "" {
			x.FO = "0"
		}
		x.RUF = append([]string(nil), r.RUF...)
	}
	return x
}

// appendExt appends the extension's lines: always all of them, "-" for
// an empty value, so that a record in the sidecar format reads back the
// same.
func (x *HistoryExt) appendExt(b []byte) []byte {
	word := func(key, v string) {
		if v == "" {
			v = "-"
		}
		b = appendLine(b, key, v)
	}
	word("spf_domain", x.SPFDomain)
	word("spf_scope", x.SPFScope)
	b = appendList(b, "rcpt_domain", x.RcptDomains)
	b = appendNum(b, "np", x.NP)
	b = appendNum(b, "psd", x.PSD)
	b = appendNum(b, "t", x.Testing)
	word("fo", x.FO)
	b = appendList(b, "ruf", x.RUF)
	return appendList(b, "override", x.Reasons())
}

// Reasons returns the override reasons' tokens.
func (x *HistoryExt) Reasons() []string {
	out := make([]string, len(x.Override))
	for i, r := range x.Override {
		out[i] = string(r)
	}
	return out
}

// The extension's keys that appear once, as bits of the reader's "have"
// set above keysRequired.
const (
	keySPFDomain = keyAction << (iota + 1)
	keySPFScope
	keyNP
	keyPSD
	keyTesting
	keyFO
)

// parseExt applies a line of the extension; other keys are skipped.
func parseExt(rec *HistoryRecord, key, value []byte, once func(int) bool, fail func(string, ...any)) {
	word := func() (string, bool) {
		if len(value) == 0 || strings.IndexByte(string(value), ' ') >= 0 {
			fail("%q is not one word", value)
			return "", false
		}
		if string(value) == "-" {
			return "", true
		}
		return string(value), true
	}
	code := func(bit int, dst *int, allowed string) {
		if !once(bit) {
			return
		}
		n, err := strconv.Atoi(string(value))
		if err != nil || (n != 0 && (n > 127 || !strings.ContainsRune(allowed, rune(n)))) {
			fail("%q is not 0 or the ASCII code of one of %q", value, allowed)
			return
		}
		*dst = n
	}
	x := rec.Ext
	switch string(key) {
	case "spf_domain", "spf_scope", "rcpt_domain", "np", "psd", "t", "fo", "ruf", "override":
		if x == nil {
			x = &HistoryExt{}
			rec.Ext = x
		}
	default:
		return
	}
	switch string(key) {
	case "spf_domain":
		if once(keySPFDomain) {
			v, _ := word()
			x.SPFDomain = strings.ToLower(v)
		}
	case "spf_scope":
		if once(keySPFScope) {
			v, ok := word()
			if ok && v != "" && v != SPFScopeMailFrom && v != SPFScopeHelo {
				fail("%q is not %s, %s or -", v, SPFScopeMailFrom, SPFScopeHelo)
			}
			x.SPFScope = v
		}
	case "rcpt_domain":
		if v, ok := word(); ok && v != "" {
			x.RcptDomains = append(x.RcptDomains, strings.ToLower(v))
		}
	case "np":
		code(keyNP, &x.NP, "nqr")
	case "psd":
		code(keyPSD, &x.PSD, "ynu")
	case "t":
		code(keyTesting, &x.Testing, "yn")
	case "fo":
		if once(keyFO) {
			x.FO, _ = word()
		}
	case "ruf":
		if v, ok := word(); ok && v != "" {
			x.RUF = append(x.RUF, v)
		}
	case "override":
		v, ok := word()
		if !ok || v == "" {
			return
		}
		r, known := overrideReasons[v]
		if !known {
			fail("%q is not a policy_override_reason", v)
			return
		}
		x.Override = append(x.Override, r)
	}
}

// String is the reason's token.
func (r OverrideReason) String() string { return string(r) }

// ParseOverrides reads the override reasons stored space-separated
// (report/store); unknown tokens are skipped.
func ParseOverrides(s string) []OverrideReason {
	var out []OverrideReason
	for _, f := range strings.Fields(s) {
		if r, ok := overrideReasons[f]; ok {
			out = append(out, r)
		}
	}
	return out
}
