package dmarc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// PSL is a Public Suffix List (https://publicsuffix.org/), used to find
// Organizational Domains in RFC 7489 mode (§3.2). The zero value is not
// usable: use EmbeddedPSL, LoadPSL or ParsePSL. A PSL is read-only and
// safe for concurrent use.
type PSL struct {
	// rules maps each rule, in ASCII (A-labels) without its "*." or "!"
	// prefix, to its kinds. nil for the embedded list.
	rules map[string]ruleKind
	count int
}

type ruleKind uint8

const (
	ruleNormal    ruleKind = 1 << iota // example.com
	ruleWildcard                       // *.example.com (stored as example.com)
	ruleException                      // !www.example.com
)

var embedded = &PSL{}

// EmbeddedPSL returns the list compiled into the program (the snapshot
// in golang.org/x/net/publicsuffix, ICANN and private sections).
func EmbeddedPSL() *PSL { return embedded }

// LoadPSL reads a public_suffix_list.dat file (Exim's dmarc_tld_file).
func LoadPSL(path string) (*PSL, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := ParsePSL(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// ErrEmptyPSL is returned for a list without any rule.
var ErrEmptyPSL = errors.New("public suffix list has no rules")

// ParsePSL reads a list in the publicsuffix.org format: one rule per
// line, the rule being the line's first white-space separated word;
// "//" starts a comment line; "*." marks a wildcard rule and "!" an
// exception. U-label rules are stored as A-labels. Both the ICANN and the
// private sections are used.
func ParsePSL(r io.Reader) (*PSL, error) {
	p := &PSL{rules: map[string]ruleKind{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "//") {
			continue
		}
		rule, _, _ := strings.Cut(text, " ")
		rule, _, _ = strings.Cut(rule, "\t")
		kind := ruleNormal
		switch {
		case strings.HasPrefix(rule, "!"):
			kind, rule = ruleException, rule[1:]
		case strings.HasPrefix(rule, "*."):
			kind, rule = ruleWildcard, rule[2:]
		}
		ascii, err := toASCII(rule)
		if err != nil || ascii == "" || strings.Contains(ascii, "*") {
			return nil, fmt.Errorf("line %d: invalid rule %q", line, text)
		}
		p.rules[ascii] |= kind
		p.count++
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if p.count == 0 {
		return nil, ErrEmptyPSL
	}
	return p, nil
}

// Len returns the number of rules of a loaded list (0 for the embedded
// one, whose size is not exposed).
func (p *PSL) Len() int { return p.count }

// PublicSuffix returns the public suffix of a domain (the prevailing
// rule's match, or the last label by the default rule "*"), in the form
// the domain was given (lower-cased). It returns "" for a name that is
// not a valid domain.
func (p *PSL) PublicSuffix(domain string) string {
	labels, ascii, ok := splitDomain(domain)
	if !ok {
		return ""
	}
	n := p.suffixLabels(ascii)
	return strings.Join(labels[len(labels)-n:], ".")
}

// OrgDomain returns the Organizational Domain of RFC 7489 §3.2: the
// public suffix plus one label, in the form the domain was given
// (lower-cased). It returns "" when the domain is itself a public suffix
// or not a valid domain name.
func (p *PSL) OrgDomain(domain string) string {
	labels, ascii, ok := splitDomain(domain)
	if !ok {
		return ""
	}
	n := p.suffixLabels(ascii)
	if n >= len(labels) {
		return ""
	}
	return strings.Join(labels[len(labels)-n-1:], ".")
}

// suffixLabels returns the number of labels of the public suffix of a
// domain given as A-labels.
func (p *PSL) suffixLabels(ascii []string) int {
	if p.rules == nil {
		ps, _ := publicsuffix.PublicSuffix(strings.Join(ascii, "."))
		return strings.Count(ps, ".") + 1
	}
	for i := range ascii {
		s := strings.Join(ascii[i:], ".")
		k := p.rules[s]
		if k&ruleException != 0 {
			return len(ascii) - i - 1
		}
		if k&ruleNormal != 0 {
			return len(ascii) - i
		}
		if i+1 < len(ascii) && p.rules[strings.Join(ascii[i+1:], ".")]&ruleWildcard != 0 {
			return len(ascii) - i
		}
	}
	return 1 // the default rule "*"
}

// splitDomain lower-cases a domain and splits it into labels, both as
// given and as A-labels. A final dot is removed; an empty label makes it
// invalid.
func splitDomain(domain string) (labels, ascii []string, ok bool) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	if domain == "" {
		return nil, nil, false
	}
	labels = strings.Split(domain, ".")
	ascii = make([]string, len(labels))
	for i, l := range labels {
		if l == "" {
			return nil, nil, false
		}
		a, err := toASCII(l)
		if err != nil || a == "" {
			return nil, nil, false
		}
		ascii[i] = a
	}
	return labels, ascii, true
}
