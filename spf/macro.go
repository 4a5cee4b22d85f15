package spf

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Expansion caps. A TXT record holds at most 65535 octets, but a macro can
// expand to much more than its own length; these caps bound memory.
const (
	// maxDomainTail is how much of a domain expansion is computed, from
	// the right. Only the last 253 octets after label truncation (§7.3)
	// can matter, and a tail longer than 253 octets gives exactly the same
	// truncated name (see expandDomain).
	maxDomainTail = 4096
	// MaxExplanation is the longest explanation returned; longer
	// expansions are cut.
	MaxExplanation = 2048
	// maxDigits saturates the DIGIT transformer: no value has more parts.
	maxDigits = 1 << 20
)

// macroPart is one piece of a parsed macro-string (§7.1): literal text
// (letter == 0) or a macro-expand.
type macroPart struct {
	lit     string // literal text, with %%, %_ and %- already decoded
	letter  byte   // lower-case macro letter, 0 for literal text
	upper   bool   // the letter was upper case: URL-escape the value
	digits  int    // keep this many right-hand parts; 0 keeps all
	reverse bool   // the "r" transformer
	delims  string // delimiters to split on; "" means "."
}

// macroString is a parsed macro-string or explanation-string.
type macroString []macroPart

// errMacro is the cause of every macro syntax error.
var errMacro = errors.New("invalid macro")

// parseMacroString parses s as a macro-string (§7.1). With exp set it
// parses an explanation-string instead: spaces are literal and the letters
// c, r and t are allowed. tail is the literal text after the last
// macro-expand (for the domain-end check) and endsMacro tells whether s
// ends with a macro-expand ("%{...}", "%%", "%_" or "%-").
func parseMacroString(s string, exp bool) (ms macroString, tail string, endsMacro bool, err error) {
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			ms = append(ms, macroPart{lit: lit.String()})
			lit.Reset()
		}
	}
	tailStart := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			// macro-literal = %x21-24 / %x26-7E, plus SP in explanations.
			if (c < 0x21 || c > 0x7e) && !(exp && c == ' ') {
				return nil, "", false, fmt.Errorf("%w: character %+q not allowed", errMacro, s[i:i+1])
			}
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return nil, "", false, fmt.Errorf("%w: %q at end of string", errMacro, "%")
		}
		switch s[i+1] {
		case '%':
			lit.WriteByte('%')
			i += 2
			tailStart = i
			continue
		case '_':
			lit.WriteByte(' ')
			i += 2
			tailStart = i
			continue
		case '-':
			lit.WriteString("%20")
			i += 2
			tailStart = i
			continue
		case '{':
		default:
			return nil, "", false, fmt.Errorf("%w: %+q is not followed by '{', '%%', '_' or '-'", errMacro, s[i:i+2])
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return nil, "", false, fmt.Errorf("%w: unterminated %+q", errMacro, s[i:])
		}
		p, err := parseMacroExpand(s[i+2:i+end], exp)
		if err != nil {
			return nil, "", false, err
		}
		flush()
		ms = append(ms, p)
		i += end + 1
		tailStart = i
	}
	flush()
	return ms, s[tailStart:], tailStart == len(s) && len(s) > 0, nil
}

// parseMacroExpand parses the inside of "%{...}":
//
//	macro-letter transformers *delimiter
//	transformers = *DIGIT [ "r" ]
func parseMacroExpand(body string, exp bool) (macroPart, error) {
	if body == "" {
		return macroPart{}, fmt.Errorf("%w: empty %%{}", errMacro)
	}
	p := macroPart{}
	c := body[0]
	lower := c | 0x20
	switch lower {
	case 's', 'l', 'o', 'd', 'i', 'p', 'v', 'h':
	case 'c', 'r', 't':
		if !exp {
			return p, fmt.Errorf("%w: %%{%c} is only allowed in explanations", errMacro, c)
		}
	default:
		return p, fmt.Errorf("%w: unknown macro letter %+q", errMacro, string(c))
	}
	p.letter, p.upper = lower, c != lower
	i := 1
	if i < len(body) && '0' <= body[i] && body[i] <= '9' {
		n := 0
		for i < len(body) && '0' <= body[i] && body[i] <= '9' {
			n = min(n*10+int(body[i]-'0'), maxDigits)
			i++
		}
		if n == 0 {
			return p, fmt.Errorf("%w: the DIGIT transformer must be nonzero", errMacro)
		}
		p.digits = n
	}
	if i < len(body) && body[i]|0x20 == 'r' {
		p.reverse = true
		i++
	}
	for j := i; j < len(body); j++ {
		if strings.IndexByte(".-+,/_=", body[j]) < 0 {
			return p, fmt.Errorf("%w: bad transformer or delimiter %+q in %%{%s}", errMacro, body[j:j+1], body)
		}
	}
	p.delims = body[i:]
	return p, nil
}

// parseDomainSpec parses a domain-spec (§7.1):
//
//	domain-spec = macro-string domain-end
//	domain-end  = ( "." toplabel [ "." ] ) / macro-expand
func parseDomainSpec(s string) (macroString, error) {
	if s == "" {
		return nil, errors.New("empty domain-spec")
	}
	ms, tail, endsMacro, err := parseMacroString(s, false)
	if err != nil {
		return nil, err
	}
	if endsMacro {
		return ms, nil
	}
	t := trimDot(tail)
	i := strings.LastIndexByte(t, '.')
	if i < 0 || !isToplabel(t[i+1:]) {
		return nil, fmt.Errorf("domain-spec %+q does not end in a valid top label or a macro", s)
	}
	return ms, nil
}

// macroVars are the values macros expand to (§7.2).
type macroVars struct {
	sender       string // s: <sender>, with "postmaster" for a missing local part
	local        string // l
	senderDomain string // o
	domain       string // d: the current <domain>
	helo         string // h
	receiver     string // r
	ip           netip.Addr
	now          time.Time
	// clock, when set, gives now on the first %{t}: the clock is read
	// only by a record that asks for it.
	clock func() time.Time
	// ptr returns %{p} for the current domain; nil means "unknown". An
	// evaluation passes its own to the expanding calls instead (the P
	// forms), so that it keeps no pointer to itself.
	ptr func(domain string) string
}

// value returns the unescaped, untransformed value of a macro letter.
func (v *macroVars) value(letter byte) string { return v.valueP(letter, v.ptr) }

// valueP is value with ptr giving %{p}.
func (v *macroVars) valueP(letter byte, ptr func(domain string) string) string {
	switch letter {
	case 's':
		return v.sender
	case 'l':
		return v.local
	case 'o':
		return v.senderDomain
	case 'd':
		return v.domain
	case 'h':
		return v.helo
	case 'i':
		return dotFormat(v.ip)
	case 'c':
		if !v.ip.IsValid() {
			return "unknown"
		}
		return v.ip.String() // RFC 5952 for IPv6
	case 'v':
		if v.ip.Is6() {
			return "ip6"
		}
		return "in-addr"
	case 'p':
		if ptr == nil {
			return "unknown"
		}
		return ptr(v.domain)
	case 'r':
		if v.receiver == "" {
			return "unknown"
		}
		return v.receiver
	case 't':
		if v.clock != nil {
			v.now, v.clock = v.clock(), nil
		}
		return strconv.FormatInt(v.now.Unix(), 10)
	}
	return ""
}

// dotFormat is %{i} (§7.3): the dotted quad for IPv4, and for IPv6 the 32
// nibbles separated by dots. RFC 7208 does not fix the case of the hex
// digits; upper case is what the OpenSPF suite (v-macro-ip6) expects, and
// DNS compares names case-insensitively (RFC 4343).
func dotFormat(ip netip.Addr) string {
	if !ip.IsValid() {
		return "unknown"
	}
	if ip.Is4() {
		return ip.String()
	}
	const hex = "0123456789ABCDEF"
	a := ip.As16()
	b := make([]byte, 0, 63)
	for i, x := range a {
		if i > 0 {
			b = append(b, '.')
		}
		b = append(b, hex[x>>4], '.', hex[x&15])
	}
	return string(b)
}

// transform applies the transformers and URL escaping of one macro.
func (p *macroPart) transform(val string) string {
	if p.digits > 0 || p.reverse || (p.delims != "" && p.delims != ".") {
		delims := p.delims
		if delims == "" {
			delims = "."
		}
		parts := splitAny(val, delims)
		if p.reverse {
			for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
				parts[i], parts[j] = parts[j], parts[i]
			}
		}
		if p.digits > 0 && p.digits < len(parts) {
			parts = parts[len(parts)-p.digits:]
		}
		val = strings.Join(parts, ".")
	}
	if p.upper {
		val = urlEscape(val)
	}
	return val
}

// splitAny splits s at every byte that occurs in delims, keeping empty
// parts.
func splitAny(s, delims string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(delims, s[i]) >= 0 {
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// urlEscape escapes every octet outside the RFC 3986 unreserved set
// (§7.3).
func urlEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// expandDomain expands a domain-spec and returns the name to query, or
// ok == false when no valid query name results (see targetName).
//
// Truncation (§7.3) keeps the longest suffix that starts at a label
// boundary and is at most 253 octets. Any suffix of the expansion longer
// than 253 octets contains that suffix and the same label boundaries, so
// the parts are expanded from right to left and expansion stops once
// maxDomainTail octets are collected: the work is bounded whatever the
// length of the record.
func (v *macroVars) expandDomain(ms macroString) (string, bool) { return v.expandDomainP(ms, v.ptr) }

// expandDomainP is expandDomain with ptr giving %{p}.
func (v *macroVars) expandDomainP(ms macroString, ptr func(domain string) string) (string, bool) {
	var parts []string
	n := 0
	for i := len(ms) - 1; i >= 0 && n <= maxDomainTail; i-- {
		p := &ms[i]
		s := p.lit
		if p.letter != 0 {
			s = p.transform(v.valueP(p.letter, ptr))
		}
		parts = append(parts, s)
		n += len(s)
	}
	b := make([]byte, 0, n)
	for i := len(parts) - 1; i >= 0; i-- {
		b = append(b, parts[i]...)
	}
	return targetName(string(b))
}

// expandText expands an explanation-string. The result is cut at
// MaxExplanation octets.
func (v *macroVars) expandText(ms macroString) string { return v.expandTextP(ms, v.ptr) }

// expandTextP is expandText with ptr giving %{p}.
func (v *macroVars) expandTextP(ms macroString, ptr func(domain string) string) string {
	var b strings.Builder
	for i := range ms {
		p := &ms[i]
		s := p.lit
		if p.letter != 0 {
			s = p.transform(v.valueP(p.letter, ptr))
		}
		if b.Len()+len(s) > MaxExplanation {
			b.WriteString(s[:MaxExplanation-b.Len()])
			break
		}
		b.WriteString(s)
	}
	return b.String()
}
