package dmarc

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Policy is a Domain Owner Assessment Policy: the value of p=, sp= and
// np= (RFC 9989 §4.7). The string is the tag value.
type Policy string

// The three policies.
const (
	PolicyNone       Policy = "none"
	PolicyQuarantine Policy = "quarantine"
	PolicyReject     Policy = "reject"
)

// String returns the tag value.
func (p Policy) String() string { return string(p) }

// downgrade returns the next less stringent policy (RFC 9989 t=y,
// RFC 7489 §6.6.4 pct sampling): reject → quarantine → none.
func (p Policy) downgrade() Policy {
	switch p {
	case PolicyReject:
		return PolicyQuarantine
	case PolicyQuarantine:
		return PolicyNone
	}
	return p
}

// Alignment is an identifier alignment mode: adkim= and aspf=.
type Alignment string

// The two modes; relaxed is the default.
const (
	AlignRelaxed Alignment = "r"
	AlignStrict  Alignment = "s"
)

// PSD is the psd= flag (RFC 9989 §4.7).
type PSD string

// Its values; PSDUnknown ("u") is the default.
const (
	PSDYes     PSD = "y" // the domain is a Public Suffix Domain
	PSDNo      PSD = "n" // the domain is an Organizational Domain
	PSDUnknown PSD = "u"
)

// Record is a parsed DMARC Policy Record. Tags with a syntax error keep
// their default values and the error is listed in Errors, as RFC 9989
// §4.8 requires ("syntax errors in the remainder of the record MUST be
// discarded in favor of default values").
type Record struct {
	// Policy is p=. When p= is absent or invalid it is PolicyNone and
	// HasPolicy is false.
	Policy    Policy
	HasPolicy bool
	// SubdomainPolicy (sp=) and NonexistentPolicy (np=) are "" when
	// absent or invalid.
	SubdomainPolicy   Policy
	NonexistentPolicy Policy
	PSD               PSD       // psd=, PSDUnknown by default
	Testing           bool      // t=y
	DKIMAlignment     Alignment // adkim=, relaxed by default
	SPFAlignment      Alignment // aspf=, relaxed by default
	// Percent is pct= (RFC 7489; removed by RFC 9989 but still
	// published): 100 when absent; HasPercent says it was published.
	Percent    int
	HasPercent bool
	// RUA and RUF are the reporting URIs as published, in order.
	RUA, RUF []string
	// FailureOptions is fo= split at colons ("0" by default).
	FailureOptions []string
	// ReportFormats (rf=) and ReportInterval (ri=, seconds) are RFC 7489
	// tags: "afrf" and 86400 by default.
	ReportFormats  []string
	ReportInterval uint32
	// Errors lists the tags that were ignored for a syntax error.
	Errors []*TagError

	badSubPolicy bool // sp= or np= present but invalid
}

// Errors of ParseRecord and of the tags it ignores.
var (
	// ErrNotDMARC: the text does not start with v=DMARC1; it is not a
	// DMARC record at all and must be ignored (RFC 9989 §4.7).
	ErrNotDMARC = errors.New("not a DMARC record: v=DMARC1 is not the first tag")
	// ErrMalformed: a tag-spec without "=", an empty or non-alphabetic
	// tag name, or an empty value.
	ErrMalformed = errors.New("malformed tag")
	// ErrBadValue: a known tag with a value outside its syntax.
	ErrBadValue = errors.New("invalid value")
	// ErrDuplicate: a tag published twice; the first one counts.
	ErrDuplicate = errors.New("duplicate tag")
)

// TagError is a tag of a DMARC record ignored for a syntax error.
type TagError struct {
	Tag   string // the tag name, or the whole tag-spec for ErrMalformed
	Value string
	Err   error // ErrMalformed, ErrBadValue or ErrDuplicate
}

func (e *TagError) Error() string {
	if e.Err == ErrMalformed && e.Value == "" {
		return fmt.Sprintf("%v %q", e.Err, e.Tag)
	}
	return fmt.Sprintf("%v: %s=%s", e.Err, e.Tag, e.Value)
}

// Unwrap lets errors.Is match the kind.
func (e *TagError) Unwrap() error { return e.Err }

// ParseRecord parses the text of a DMARC TXT record (its strings already
// joined). It fails with ErrNotDMARC when v=DMARC1 is not the first tag;
// any other problem leaves a usable Record with the faulty tags at their
// defaults and listed in Record.Errors. Unknown tags are ignored. Tag
// names and the values of p, sp, np, adkim, aspf, psd and t are matched
// without regard to case; "DMARC1" is case-sensitive.
func ParseRecord(txt string) (*Record, error) {
	specs := strings.Split(txt, ";")
	name, value, ok := strings.Cut(specs[0], "=")
	if !ok || trimWSP(name) != "v" || trimWSP(value) != "DMARC1" {
		return nil, ErrNotDMARC
	}
	r := &Record{
		Policy: PolicyNone, PSD: PSDUnknown, DKIMAlignment: AlignRelaxed, SPFAlignment: AlignRelaxed,
		Percent: 100, FailureOptions: []string{"0"}, ReportFormats: []string{"afrf"}, ReportInterval: 86400,
	}
	seen := map[string]bool{"v": true}
	for i, spec := range specs[1:] {
		if trimWSP(spec) == "" {
			if i == len(specs)-2 { // the optional final separator
				continue
			}
			r.Errors = append(r.Errors, &TagError{Tag: spec, Err: ErrMalformed})
			continue
		}
		name, value, ok := strings.Cut(spec, "=")
		name, value = strings.ToLower(trimWSP(name)), trimWSP(value)
		if !ok || !isAlpha(name) || value == "" || !printable(value) {
			r.Errors = append(r.Errors, &TagError{Tag: trimWSP(spec), Err: ErrMalformed})
			continue
		}
		if seen[name] {
			r.Errors = append(r.Errors, &TagError{Tag: name, Value: value, Err: ErrDuplicate})
			continue
		}
		seen[name] = true
		if !r.setTag(name, value) {
			r.Errors = append(r.Errors, &TagError{Tag: name, Value: value, Err: ErrBadValue})
			if name == "sp" || name == "np" {
				r.badSubPolicy = true
			}
		}
	}
	return r, nil
}

// setTag sets one known tag; it reports false for a value outside the
// tag's syntax. Unknown tags are accepted and ignored.
func (r *Record) setTag(name, value string) bool {
	lower := strings.ToLower(value)
	switch name {
	case "p", "sp", "np":
		p, ok := parsePolicy(lower)
		if !ok {
			return false
		}
		switch name {
		case "p":
			r.Policy, r.HasPolicy = p, true
		case "sp":
			r.SubdomainPolicy = p
		default:
			r.NonexistentPolicy = p
		}
	case "adkim", "aspf":
		if lower != "r" && lower != "s" {
			return false
		}
		if name == "adkim" {
			r.DKIMAlignment = Alignment(lower)
		} else {
			r.SPFAlignment = Alignment(lower)
		}
	case "psd":
		if lower != "y" && lower != "n" && lower != "u" {
			return false
		}
		r.PSD = PSD(lower)
	case "t":
		if lower != "y" && lower != "n" {
			return false
		}
		r.Testing = lower == "y"
	case "pct":
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 || n > 100 || value[0] == '+' {
			return false
		}
		r.Percent, r.HasPercent = n, true
	case "rua", "ruf":
		uris := splitURIs(value)
		if uris == nil {
			return false
		}
		if name == "rua" {
			r.RUA = uris
		} else {
			r.RUF = uris
		}
	case "fo":
		opts := strings.Split(value, ":")
		for i, o := range opts {
			opts[i] = trimWSP(o)
			if opts[i] != "0" && opts[i] != "1" && opts[i] != "d" && opts[i] != "s" {
				return false
			}
		}
		r.FailureOptions = opts
	case "rf":
		formats := strings.Split(lower, ":")
		for i, f := range formats {
			formats[i] = trimWSP(f)
			if !isAlpha(formats[i]) {
				return false
			}
		}
		r.ReportFormats = formats
	case "ri":
		n, err := strconv.ParseUint(value, 10, 32)
		if err != nil || value[0] == '+' {
			return false
		}
		r.ReportInterval = uint32(n)
	}
	return true
}

func parsePolicy(v string) (Policy, bool) {
	switch p := Policy(v); p {
	case PolicyNone, PolicyQuarantine, PolicyReject:
		return p, true
	}
	return "", false
}

// splitURIs splits a dmarc-urilist at commas; nil when an element is
// empty.
func splitURIs(v string) []string {
	var out []string
	for _, u := range strings.Split(v, ",") {
		u = trimWSP(u)
		if u == "" {
			return nil
		}
		out = append(out, u)
	}
	return out
}

// validURI reports whether a reporting URI is a syntactically valid
// absolute URI (RFC 3986), its obsolete "!size" suffix ignored.
func validURI(u string) bool {
	if i := strings.LastIndexByte(u, '!'); i > 0 {
		u = u[:i]
	}
	p, err := url.Parse(u)
	return err == nil && p.Scheme != "" && (p.Opaque != "" || p.Host != "" || p.Path != "")
}

// usable applies RFC 9989 §4.10.1 (and RFC 7489 §6.6.3 step 6): a record
// without a valid p=, or with an invalid sp= or np=, counts as "p=none"
// when it has a syntactically valid rua= URI, and as no record otherwise.
func (r *Record) usable() (*Record, bool) {
	if r.HasPolicy && !r.badSubPolicy {
		return r, true
	}
	for _, u := range r.RUA {
		if validURI(u) {
			c := *r
			c.Policy, c.HasPolicy = PolicyNone, true
			c.SubdomainPolicy, c.NonexistentPolicy, c.badSubPolicy = "", "", false
			return &c, true
		}
	}
	return nil, false
}

// String writes the record back in canonical form, with every tag that
// differs from its default.
func (r *Record) String() string {
	var b strings.Builder
	b.WriteString("v=DMARC1")
	add := func(k, v string) { b.WriteString("; " + k + "=" + v) }
	if r.HasPolicy {
		add("p", string(r.Policy))
	}
	if r.SubdomainPolicy != "" {
		add("sp", string(r.SubdomainPolicy))
	}
	if r.NonexistentPolicy != "" {
		add("np", string(r.NonexistentPolicy))
	}
	if r.PSD != PSDUnknown {
		add("psd", string(r.PSD))
	}
	if r.Testing {
		add("t", "y")
	}
	if r.HasPercent {
		add("pct", strconv.Itoa(r.Percent))
	}
	if r.DKIMAlignment != AlignRelaxed {
		add("adkim", string(r.DKIMAlignment))
	}
	if r.SPFAlignment != AlignRelaxed {
		add("aspf", string(r.SPFAlignment))
	}
	if len(r.RUA) > 0 {
		add("rua", strings.Join(r.RUA, ","))
	}
	if len(r.RUF) > 0 {
		add("ruf", strings.Join(r.RUF, ","))
	}
	if len(r.FailureOptions) != 1 || r.FailureOptions[0] != "0" {
		add("fo", strings.Join(r.FailureOptions, ":"))
	}
	if len(r.ReportFormats) != 1 || r.ReportFormats[0] != "afrf" {
		add("rf", strings.Join(r.ReportFormats, ":"))
	}
	if r.ReportInterval != 86400 {
		add("ri", strconv.FormatUint(uint64(r.ReportInterval), 10))
	}
	return b.String()
}

// isDMARC reports whether a TXT record starts with v=DMARC1: the test
// that decides which records count (RFC 9989 §4.10 steps 2 and 6).
func isDMARC(txt string) bool {
	first, _, _ := strings.Cut(txt, ";")
	name, value, ok := strings.Cut(first, "=")
	return ok && trimWSP(name) == "v" && trimWSP(value) == "DMARC1"
}

// trimWSP trims spaces and tabs (WSP).
func trimWSP(s string) string { return strings.Trim(s, " \t") }

func isAlpha(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c < 'a' || c > 'z' {
			return false
		}
	}
	return true
}

// printable reports whether s is 1*dmarc-value: printing ASCII and space,
// without ";" (already split on).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
