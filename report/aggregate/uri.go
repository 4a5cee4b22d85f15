package aggregate

import (
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailsidecar/sidecar/internal/binunit"
)

// Destination is one rua URI: a mailto: address and an optional size
// limit ("mailto:dmarc@example.com!10m", RFC 7489 section 6.2).
type Destination struct {
	URI     string // as published
	Address string // the mailbox, local@domain
	Domain  string // its domain, lower case
	MaxSize int64  // bytes; 0 for no limit
}

// ParseDestination parses a rua URI. Only mailto: is supported (RFC 9990
// defines no other transport); the address may be percent-encoded
// ("%21" for "!", "%2c" for ","), and a size limit is a number with an
// optional unit k, m, g or t (powers of 1024).
func ParseDestination(uri string) (Destination, error) {
	d := Destination{URI: uri}
	rest, ok := cutPrefixFold(uri, "mailto:")
	if !ok {
		return d, fmt.Errorf("rua %q: only mailto: URIs are supported", uri)
	}
	if i := strings.LastIndexByte(rest, '!'); i >= 0 {
		n, err := parseSize(rest[i+1:])
		if err != nil {
			return d, fmt.Errorf("rua %q: size limit: %v", uri, err)
		}
		d.MaxSize, rest = n, rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest = rest[:i] // header fields of a mailto: URI do not apply
	}
	addr, err := url.PathUnescape(rest)
	if err != nil {
		return d, fmt.Errorf("rua %q: %v", uri, err)
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" {
		return d, fmt.Errorf("rua %q: %q is not a mail address", uri, addr)
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return d, fmt.Errorf("rua %q: %q is not a mail address", uri, addr)
	}
	d.Address, d.Domain = a.Address, strings.ToLower(strings.TrimSuffix(a.Address[at+1:], "."))
	if strings.ContainsAny(d.Domain, "[] ") {
		return d, fmt.Errorf("rua %q: domain %q is not a domain name", uri, d.Domain)
	}
	return d, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func parseSize(s string) (int64, error) {
	digits, mult := binunit.Cut(s, "kmgt")
	n, err := strconv.ParseInt(digits, 10, 64)
	v, ok := binunit.Scale(n, mult)
	if err != nil || n <= 0 || !ok {
		return 0, fmt.Errorf("%q is not a positive number with an optional unit k, m, g or t", s)
	}
	return v, nil
}
