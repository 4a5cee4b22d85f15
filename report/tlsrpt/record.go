package tlsrpt

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"

	"github.com/mailsidecar/sidecar/resolver"
)

// Record errors. ErrNoRecord means the domain asks for no reports: no
// TXT record beginning with "v=TLSRPTv1;", or several (RFC 8460 §3).
var (
	ErrNoRecord  = errors.New("no TLSRPT record")
	ErrBadRecord = errors.New("bad TLSRPT record")
)

// Record limits: a longer record or more rua URIs are refused.
const (
	MaxRecordLen = 4096
	MaxRUA       = 10
)

// Record is a domain's _smtp._tls TXT record (RFC 8460 §3).
type Record struct {
	// RUA are the destinations of reports, in the record's order: mailto:
	// and https: URIs (URIs of other schemes are left out).
	RUA []*url.URL
}

// RecordName is where a domain publishes its record.
func RecordName(domain string) string { return "_smtp._tls." + domain }

// ParseRecord parses a TLSRPT record (RFC 8460 §3):
//
//	tlsrpt-record  = %s"v=TLSRPTv1" 1*(field-delim tlsrpt-field) [field-delim]
//	field-delim    = *WSP ";" *WSP
//	tlsrpt-rua     = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//	tlsrpt-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//	tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
//
// Unknown fields (extensions) are ignored, as §3 says; exactly one rua
// field is required, with at least one mailto: or https: URI.
func ParseRecord(txt string) (Record, error) {
	bad := func(format string, a ...any) (Record, error) {
		return Record{}, fmt.Errorf("%w: %s", ErrBadRecord, fmt.Sprintf(format, a...))
	}
	if len(txt) > MaxRecordLen {
		return bad("%d octets, above %d", len(txt), MaxRecordLen)
	}
	fields := strings.Split(txt, ";")
	if strings.TrimRight(fields[0], " \t") != "v=TLSRPTv1" {
		return bad("does not begin with v=TLSRPTv1;")
	}
	var rec Record
	seenRUA := false
	for i, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" && i == len(fields)-2 && i > 0 {
			break // the optional final delimiter
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok || !validExtName(name) || value == "" {
			return bad("field %q is not NAME=VALUE", f)
		}
		if name != "rua" {
			if !validExtValue(value, false) {
				return bad("field %s: value %q has a character RFC 8460 does not allow", name, value)
			}
			continue
		}
		if seenRUA {
			return bad("rua given twice")
		}
		seenRUA = true
		for _, u := range strings.Split(value, ",") {
			u = strings.Trim(u, " \t")
			dest, err := parseRUA(u)
			if err != nil {
				return bad("rua %q: %v", u, err)
			}
			if dest != nil {
				rec.RUA = append(rec.RUA, dest)
			}
		}
	}
	switch {
	case !seenRUA:
		return bad("no rua field")
	case len(rec.RUA) == 0:
		return bad("no mailto: or https: URI in rua")
	case len(rec.RUA) > MaxRUA:
		return bad("%d rua URIs, above %d", len(rec.RUA), MaxRUA)
	}
	return rec, nil
}

// parseRUA parses one rua URI; nil for a scheme other than mailto and
// https, which a reporter may not support.
func parseRUA(s string) (*url.URL, error) {
	if s == "" || !validExtValue(s, true) {
		return nil, errors.New("not a URI")
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto":
		if u.Opaque == "" || strings.Contains(u.Opaque, ",") {
			return nil, errors.New("mailto: wants one address")
		}
		addr, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return nil, err
		}
		if a, err := mail.ParseAddress(addr); err != nil || a.Name != "" || a.Address != addr {
			return nil, fmt.Errorf("%q is not a mail address", addr)
		}
	case "https":
		if u.Host == "" || u.User != nil {
			return nil, errors.New("https: wants a host and no user")
		}
	case "":
		return nil, errors.New("no scheme")
	default:
		return nil, nil
	}
	u.Scheme = strings.ToLower(u.Scheme)
	return u, nil
}

func validExtName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != '.') {
			return false
		}
	}
	return true
}

// validExtValue: printable ASCII but space, ";" and "=" (tlsrpt-ext-value);
// a URI may hold "=" in its query.
func validExtValue(s string, uri bool) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == ';' || c == '=' && !uri {
			return false
		}
	}
	return true
}

// SelectRecord picks the record among a name's TXT strings: those that
// do not begin with "v=TLSRPTv1;" (or are not exactly it) are discarded,
// and anything but one left means no record (RFC 8460 §3).
func SelectRecord(txts []string) (Record, error) {
	n, pick := 0, ""
	for _, t := range txts {
		if strings.HasPrefix(t, "v=TLSRPTv1;") || t == "v=TLSRPTv1" {
			n, pick = n+1, t
		}
	}
	if n != 1 {
		return Record{}, fmt.Errorf("%w: %d records begin with v=TLSRPTv1", ErrNoRecord, n)
	}
	return ParseRecord(pick)
}

// Discover looks up the record of a policy domain through q (sidecar's
// resolver). A failed lookup is an error wrapping resolver.ErrTemporary;
// NXDOMAIN, no record or several give ErrNoRecord; a bad one ErrBadRecord.
func Discover(ctx context.Context, q resolver.Querier, domain string) (Record, error) {
	ans, err := q.Query(ctx, RecordName(domain), resolver.TypeTXT)
	if err != nil {
		return Record{}, fmt.Errorf("TXT lookup for %s: %w", RecordName(domain), err)
	}
	var txts []string
	for _, r := range ans.Records {
		txts = append(txts, strings.Join(r.TXT, ""))
	}
	rec, err := SelectRecord(txts)
	if err != nil {
		return Record{}, fmt.Errorf("%s: %w", RecordName(domain), err)
	}
	return rec, nil
}
