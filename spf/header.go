package spf

import (
	"fmt"
	"strings"
)

// identityLabel is the identity as Exim's comments name it.
func (o Outcome) identityLabel() string {
	if o.Identity == IdentityHelo {
		return "helo"
	}
	return "mfrom"
}

// checked is the identity string the comments quote: the helo domain for
// the HELO identity, the sender otherwise.
func (o Outcome) checked() string {
	if o.Identity == IdentityHelo {
		return o.Domain
	}
	return o.Sender
}

// HeaderComment is a one-line human-readable account of the outcome, like
// Exim's $spf_header_comment, for example
//
//	mx.example.org: 192.0.2.1 is authorized to use 'user@example.com' in 'mfrom' identity (mechanism 'ip4:192.0.2.0/24' matched)
//
// It starts with the receiver, or with the checked domain when the
// receiver is unknown. Control characters and non-ASCII octets taken from
// the session are replaced by '?'.
func (o Outcome) HeaderComment() string {
	prefix := o.Receiver
	if prefix == "" || prefix == "unknown" {
		prefix = o.Domain
	}
	return sanitize(o.comment(prefix))
}

func (o Outcome) comment(prefix string) string {
	ip, who, id := o.IP.String(), o.checked(), o.identityLabel()
	if !o.IP.IsValid() {
		ip = "unknown"
	}
	matched := fmt.Sprintf("mechanism '%s' matched", o.Mechanism)
	if o.Mechanism == "default" || o.Mechanism == "" {
		matched = "no mechanism matched"
	}
	var s string
	switch o.Result {
	case Pass:
		s = fmt.Sprintf("%s is authorized to use '%s' in '%s' identity (%s)", ip, who, id, matched)
	case Fail:
		s = fmt.Sprintf("%s is not authorized to use '%s' in '%s' identity (%s)", ip, who, id, matched)
	case SoftFail:
		s = fmt.Sprintf("%s is probably not authorized to use '%s' in '%s' identity (%s)", ip, who, id, matched)
	case Neutral:
		s = fmt.Sprintf("%s is neither permitted nor denied to use '%s' in '%s' identity (%s)", ip, who, id, matched)
	case None:
		s = fmt.Sprintf("no SPF record found for '%s' in '%s' identity, so %s is neither permitted nor denied", who, id, ip)
	case PermError:
		s = fmt.Sprintf("permanent error evaluating '%s' in '%s' identity for %s: %s", who, id, ip, o.Problem)
	case TempError:
		s = fmt.Sprintf("temporary error evaluating '%s' in '%s' identity for %s: %s", who, id, ip, o.Problem)
	default:
		s = fmt.Sprintf("no SPF result for '%s' in '%s' identity", who, id)
	}
	return prefix + ": " + s
}

// SMTPComment is text for the SMTP reply, like Exim's $spf_smtp_comment:
// the domain's explanation when it gave one (fail only), otherwise a
// default text pointing to the open-spf.org explanation page.
func (o Outcome) SMTPComment() string {
	if o.Explanation != "" {
		return sanitize(o.Explanation)
	}
	const why = "see https://www.open-spf.org/Why"
	var s string
	switch o.Result {
	case Fail, SoftFail:
		s = fmt.Sprintf("SPF %s: %s does not permit %s to send mail as '%s' (%s); %s",
			o.Result, o.Domain, o.IP, o.checked(), o.reason(), why)
	case Pass:
		s = fmt.Sprintf("SPF pass: %s permits %s to send mail as '%s' (%s)", o.Domain, o.IP, o.checked(), o.reason())
	case Neutral:
		s = fmt.Sprintf("SPF neutral: %s neither permits nor denies %s (%s); %s", o.Domain, o.IP, o.reason(), why)
	case None:
		s = fmt.Sprintf("SPF none: %s publishes no SPF policy", o.Domain)
	case PermError, TempError:
		s = fmt.Sprintf("SPF %s for %s: %s; %s", o.Result, o.Domain, o.Problem, why)
	default:
		s = "SPF: no result"
	}
	return sanitize(s)
}

func (o Outcome) reason() string {
	if o.Mechanism == "" || o.Mechanism == "default" {
		return "reason: no mechanism matched"
	}
	return "reason: mechanism '" + o.Mechanism + "' matched"
}

// ReceivedSPF returns the value of a Received-SPF header field (RFC 7208
// §9.1), without the field name and on one line (fold it if need be):
//
//	pass (mx.example.org: ...) client-ip=192.0.2.1; envelope-from="user@example.com"; helo=mail.example.com; receiver=mx.example.org; identity=mailfrom; mechanism="ip4:192.0.2.0/24"
//
// receiver overrides the Outcome's receiver when not empty. For the null
// sender envelope-from is the empty quoted string. problem= is given for
// permerror and temperror.
func (o Outcome) ReceivedSPF(receiver string, r Request) string {
	if receiver == "" {
		receiver = o.Receiver
	}
	if receiver == "" {
		receiver = "unknown"
	}
	var b strings.Builder
	b.WriteString(string(o.Result))
	if o.Result == "" {
		b.WriteString(string(None))
	}
	b.WriteString(" (")
	b.WriteString(commentText(o.comment(receiver)))
	b.WriteString(")")
	kv := func(k, v string) {
		b.WriteString(" ")
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(kvValue(v))
		b.WriteString(";")
	}
	ip := r.IP.Unmap()
	if !ip.IsValid() {
		ip = o.IP
	}
	if ip.IsValid() {
		kv("client-ip", ip.String())
	}
	kv("envelope-from", r.Sender)
	if r.Helo != "" {
		kv("helo", r.Helo)
	}
	kv("receiver", receiver)
	if o.Identity != "" {
		kv("identity", o.Identity)
	}
	if o.Mechanism != "" {
		kv("mechanism", o.Mechanism)
	}
	if (o.Result == PermError || o.Result == TempError) && o.Problem != "" {
		kv("problem", o.Problem)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// sanitize replaces control characters and non-ASCII octets by '?', so
// that no CR or LF can reach a header or an SMTP reply.
func sanitize(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c < 0x20 || c >= 0x7f {
					b[j] = '?'
				}
			}
			return string(b)
		}
	}
	return s
}

// commentText makes s safe inside a comment (RFC 5322 §3.2.2): comments
// nest, so balanced parentheses stay as they are; unmatched ones and "\"
// become quoted-pairs.
func commentText(s string) string {
	s = sanitize(s)
	if !strings.ContainsAny(s, "()\\") {
		return s
	}
	escape := make([]bool, len(s))
	var open []int
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			open = append(open, i)
		case ')':
			if len(open) > 0 {
				open = open[:len(open)-1]
			} else {
				escape[i] = true
			}
		case '\\':
			escape[i] = true
		}
	}
	for _, i := range open {
		escape[i] = true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if escape[i] {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// kvValue renders a key-value value as a dot-atom when it is one and as a
// quoted-string otherwise (RFC 7208 §9.1, RFC 5322 §3.2.3, §3.2.4).
func kvValue(s string) string {
	s = sanitize(s)
	if isDotAtom(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", rune(c)) {
			return false
		}
	}
	return true
}
