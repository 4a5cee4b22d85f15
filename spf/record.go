package spf

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/mailsidecar/sidecar/internal/ascii"
)

// Mechanism names (§5).
const (
	MechAll     = "all"
	MechInclude = "include"
	MechA       = "a"
	MechMX      = "mx"
	MechPTR     = "ptr"
	MechIP4     = "ip4"
	MechIP6     = "ip6"
	MechExists  = "exists"
)

// Directive is one directive of a record: a qualifier and a mechanism
// (§4.6.1, §5).
type Directive struct {
	Qualifier Result       // Pass ("+", the default), Fail ("-"), SoftFail ("~") or Neutral ("?")
	Mechanism string       // one of the Mech constants, lower case
	Domain    string       // the domain-spec as written (unexpanded); "" when absent
	Prefix    netip.Prefix // ip4 and ip6: the network
	CIDR4     int          // a and mx: the IPv4 prefix length, 32 when absent
	CIDR6     int          // a and mx: the IPv6 prefix length, 128 when absent
	Text      string       // the term as written in the record

	domain macroString
}

// Modifier is a modifier other than redirect and exp; evaluation ignores
// it (§6).
type Modifier struct {
	Name  string
	Value string
}

// Record is a parsed SPF record.
type Record struct {
	Directives []Directive
	Redirect   string     // the redirect= domain-spec, "" when absent (§6.1)
	Exp        string     // the exp= domain-spec, "" when absent (§6.2)
	Unknown    []Modifier // unknown modifiers, in order (§6)

	redirect, exp macroString
}

// SyntaxError is a syntax error in an SPF record; check_host() gives
// permerror for it (§4.6).
type SyntaxError struct {
	Term   string // the offending term, "" for the record as a whole
	Reason string
}

func (e *SyntaxError) Error() string {
	if e.Term == "" {
		return "spf: " + e.Reason
	}
	return fmt.Sprintf("spf: term %+q: %s", e.Term, e.Reason)
}

// isSPFRecord reports whether a TXT record is an SPF version 1 record:
// "v=spf1" in any case, followed by a space or the end (§4.5).
func isSPFRecord(s string) bool {
	return len(s) >= 6 && ascii.EqualFold(s[:6], "v=spf1") && (len(s) == 6 || s[6] == ' ')
}

// ParseRecord parses an SPF record such as "v=spf1 mx -all" (RFC 7208
// §4.5, §4.6.1, §12). Every term is checked, including terms after an
// "all" that evaluation would never reach (§4.6: syntax errors anywhere in
// the record are errors). It returns a *SyntaxError for an invalid record.
func ParseRecord(s string) (*Record, error) {
	if !isSPFRecord(s) {
		return nil, &SyntaxError{Reason: "not an SPF record (no \"v=spf1\" version)"}
	}
	rec := &Record{}
	haveRedirect, haveExp := false, false
	for term := range strings.SplitSeq(s[6:], " ") {
		if term == "" {
			continue // 1*SP between terms, trailing spaces (§4.5, §12)
		}
		name, value, isMod := splitModifier(term)
		if !isMod {
			d, err := parseDirective(term)
			if err != nil {
				return nil, err
			}
			rec.Directives = append(rec.Directives, d)
			continue
		}
		switch ascii.Lower(name) {
		case "redirect", "exp":
			ms, err := parseDomainSpec(value)
			if err != nil {
				return nil, &SyntaxError{Term: term, Reason: err.Error()}
			}
			if ascii.Lower(name) == "redirect" {
				if haveRedirect {
					return nil, &SyntaxError{Term: term, Reason: "redirect appears twice (§6)"}
				}
				haveRedirect, rec.Redirect, rec.redirect = true, value, ms
			} else {
				if haveExp {
					return nil, &SyntaxError{Term: term, Reason: "exp appears twice (§6)"}
				}
				haveExp, rec.Exp, rec.exp = true, value, ms
			}
		default:
			// unknown-modifier = name "=" macro-string (§12); its value
			// must still be a valid macro-string.
			if _, _, _, err := parseMacroString(value, false); err != nil {
				return nil, &SyntaxError{Term: term, Reason: err.Error()}
			}
			rec.Unknown = append(rec.Unknown, Modifier{Name: name, Value: value})
		}
	}
	return rec, nil
}

// splitModifier recognises a modifier: name "=" value, where
// name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) and the "=" comes
// before any ":" or "/" (§4.6.1, §12).
func splitModifier(term string) (name, value string, ok bool) {
	i := strings.IndexAny(term, "=:/")
	if i <= 0 || term[i] != '=' {
		return "", "", false
	}
	name = term[:i]
	for j := 0; j < len(name); j++ {
		c := name[j]
		alpha := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if j == 0 && !alpha {
			return "", "", false
		}
		if !alpha && !('0' <= c && c <= '9') && c != '-' && c != '_' && c != '.' {
			return "", "", false
		}
	}
	return name, term[i+1:], true
}

func parseDirective(term string) (Directive, error) {
	d := Directive{Qualifier: Pass, Text: term, CIDR4: 32, CIDR6: 128}
	rest := term
	if q, ok := qualifierResult(rest[0]); ok {
		d.Qualifier = q
		rest = rest[1:]
	}
	fail := func(format string, args ...any) (Directive, error) {
		return Directive{}, &SyntaxError{Term: term, Reason: fmt.Sprintf(format, args...)}
	}
	i := strings.IndexAny(rest, ":/")
	if i < 0 {
		i = len(rest)
	}
	name, arg := ascii.Lower(rest[:i]), rest[i:]
	d.Mechanism = name
	switch name {
	case MechAll:
		if arg != "" {
			return fail("all takes no argument")
		}
	case MechInclude, MechExists:
		if !strings.HasPrefix(arg, ":") {
			return fail("%s requires \":\" and a domain-spec", name)
		}
		ms, err := parseDomainSpec(arg[1:])
		if err != nil {
			return fail("%v", err)
		}
		d.Domain, d.domain = arg[1:], ms
	case MechA, MechMX:
		spec, c4, c6, err := splitDualCIDR(arg)
		if err != nil {
			return fail("%v", err)
		}
		d.CIDR4, d.CIDR6 = c4, c6
		if spec != "" {
			if spec[0] != ':' {
				return fail("unexpected %+q", spec)
			}
			ms, err := parseDomainSpec(spec[1:])
			if err != nil {
				return fail("%v", err)
			}
			d.Domain, d.domain = spec[1:], ms
		}
	case MechPTR:
		if arg != "" {
			if arg[0] != ':' {
				return fail("ptr takes no prefix length")
			}
			ms, err := parseDomainSpec(arg[1:])
			if err != nil {
				return fail("%v", err)
			}
			d.Domain, d.domain = arg[1:], ms
		}
	case MechIP4, MechIP6:
		if !strings.HasPrefix(arg, ":") {
			return fail("%s requires \":\" and an address", name)
		}
		addr, bits, hasBits := strings.Cut(arg[1:], "/")
		ip, err := netip.ParseAddr(addr)
		if err != nil || ip.Zone() != "" || (name == MechIP4) != ip.Is4() {
			return fail("invalid %s network %+q", name, addr)
		}
		n := ip.BitLen()
		if hasBits {
			if n, err = parseCIDR(bits, ip.BitLen()); err != nil {
				return fail("%v", err)
			}
		}
		d.Prefix = netip.PrefixFrom(ip, n).Masked()
	default:
		return fail("unknown mechanism %+q", rest[:i])
	}
	return d, nil
}

// splitDualCIDR removes a dual-cidr-length from the end of the argument of
// a or mx (§5.3, §5.4):
//
//	dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ]
func splitDualCIDR(arg string) (rest string, c4, c6 int, err error) {
	c4, c6 = 32, 128
	rest = arg
	if i := strings.LastIndex(rest, "//"); i >= 0 && allDigits(rest[i+2:]) {
		if c6, err = parseCIDR(rest[i+2:], 128); err != nil {
			return "", 0, 0, err
		}
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '/'); i >= 0 && allDigits(rest[i+1:]) {
		if c4, err = parseCIDR(rest[i+1:], 32); err != nil {
			return "", 0, 0, err
		}
		rest = rest[:i]
	}
	return rest, c4, c6, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseCIDR parses a prefix length: no leading zeros, at most max (§5.6:
// ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT), likewise for IPv6).
func parseCIDR(s string, max int) (int, error) {
	if !allDigits(s) || len(s) > 3 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("invalid prefix length %+q", s)
	}
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	if n > max {
		return 0, fmt.Errorf("prefix length %d exceeds %d", n, max)
	}
	return n, nil
}
