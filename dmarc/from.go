package dmarc

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
)

// Errors of FromDomain. Each means the Author Domain cannot be determined
// (RFC 9989 §5.3.1): Exim's status nofrom, Authentication-Results
// dmarc=permerror.
var (
	ErrNoFrom         = errors.New("no From header field")
	ErrMultipleFrom   = errors.New("several From header fields")
	ErrNoMailbox      = errors.New("no mailbox in the From header field")
	ErrMultipleDomain = errors.New("mailboxes of several domains in the From header field")
	// ErrBadFrom wraps the reason a From value could not be parsed.
	ErrBadFrom = errors.New("unparseable From header field")
)

// fromParser parses address lists; encoded words in an unknown charset
// are kept undecoded instead of failing the parse: the display name does
// not matter here.
var fromParser = &mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// FromDomain returns the Author Domain (RFC 9989 §3.2.2) of a message:
// values are the raw values of all its From header fields, in order
// (folding allowed). There must be exactly one From field, holding one
// or more mailboxes (RFC 5322 §3.6.2, groups included) that all share one
// domain. The domain is returned lower-case, without a final dot, a
// U-label converted to an A-label (RFC 9989 §5.3.1). Any error means
// "nofrom": it wraps one of ErrNoFrom, ErrMultipleFrom, ErrNoMailbox,
// ErrMultipleDomain or ErrBadFrom.
func FromDomain(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", ErrNoFrom
	case 1:
	default:
		return "", ErrMultipleFrom
	}
	value := unfold(values[0])
	if strings.TrimSpace(value) == "" {
		return "", ErrNoMailbox
	}
	if d, ok := simpleFromDomain(value); ok {
		nd, err := normalizeDomain(d)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrBadFrom, err)
		}
		return nd, nil
	}
	return parsedFromDomain(value)
}

// parsedFromDomain is FromDomain of one non-empty unfolded value through
// the address parser.
func parsedFromDomain(value string) (string, error) {
	addrs, err := fromParser.ParseList(value)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadFrom, err)
	}
	domain := ""
	for _, a := range addrs {
		at := strings.LastIndexByte(a.Address, '@')
		if at < 0 {
			return "", fmt.Errorf("%w: %q has no domain", ErrBadFrom, a.Address)
		}
		d, err := normalizeDomain(a.Address[at+1:])
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrBadFrom, err)
		}
		switch {
		case domain == "":
			domain = d
		case d != domain:
			return "", fmt.Errorf("%w: %s and %s", ErrMultipleDomain, domain, d)
		}
	}
	if domain == "" {
		return "", ErrNoMailbox
	}
	return domain, nil
}

// simpleFromDomain returns the domain of the most common From values
// without the address parser: one mailbox, "local@domain" or
// "Display Name <local@domain>", where the display name is words of
// letters, digits, "-" and "_", the local part a dot-atom of letters,
// digits, ".", "_", "-" and "+", and the domain a dot-atom of letters,
// digits and "-". ok is false for anything else (quotes, comments,
// encoded words, groups, several mailboxes, other characters), which the
// parser decides; for what it accepts, net/mail finds the same address.
func simpleFromDomain(v string) (domain string, ok bool) {
	v = strings.Trim(v, " \t")
	if v == "" {
		return "", false
	}
	if v[len(v)-1] == '>' {
		lt := strings.IndexByte(v, '<')
		if lt < 0 {
			return "", false
		}
		for i := 0; i < lt; i++ {
			if c := v[i]; !(isAlnum(c) || c == '-' || c == '_' || c == ' ' || c == '\t') {
				return "", false
			}
		}
		v = v[lt+1 : len(v)-1]
	}
	at := strings.IndexByte(v, '@')
	if at < 0 || !dotAtom(v[:at], true) || !dotAtom(v[at+1:], false) {
		return "", false
	}
	return v[at+1:], true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// dotAtom reports whether s is a non-empty dot-atom of letters, digits
// and "-" (with local: also "_" and "+"), without a dot at either end or
// two in a row.
func dotAtom(s string, local bool) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isAlnum(c) || c == '-':
		case c == '.':
			if s[i-1] == '.' {
				return false
			}
		case local && (c == '_' || c == '+'):
		default:
			return false
		}
	}
	return true
}

// unfold removes the line breaks of a folded header value (RFC 5322
// §2.2.3); a bare CR or LF becomes a space.
func unfold(v string) string {
	if strings.IndexAny(v, "\r\n") < 0 {
		return v
	}
	v = strings.ReplaceAll(v, "\r\n", "")
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, v)
}

// normalizeDomain lower-cases a domain name, removes a final dot,
// converts U-labels to A-labels and checks that it can be looked up: no
// address literal, labels of 1 to 63 octets of letters, digits, hyphens
// and underscores, 253 octets at most.
func normalizeDomain(d string) (string, error) {
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if d == "" {
		return "", errors.New("empty domain")
	}
	if d[0] == '[' {
		return "", fmt.Errorf("address literal %s is not a domain", d)
	}
	a, err := toASCII(d)
	if err != nil {
		return "", fmt.Errorf("domain %q: %w", d, err)
	}
	if !validDomain(a) {
		return "", fmt.Errorf("invalid domain %q", d)
	}
	return a, nil
}

// validDomain reports whether d (lower-case ASCII, no final dot) is a
// domain name DMARC can work with.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for l := range strings.SplitSeq(d, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
