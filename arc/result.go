package arc

import (
	"strconv"
	"strings"
)

// DomainList returns Domains joined with ":", the form of Exim's
// $arc_domains.
func (c *Chain) DomainList() string { return strings.Join(c.Domains, ":") }

// AuthResult formats the chain as the "arc" result of an
// Authentication-Results field (RFC 8601 resinfo, RFC 8617 §10.1):
//
//	arc=pass (i=2) header.oldest-pass=1 smtp.remote-ip=192.0.2.1
//	arc=fail (i=1: ARC-Seal: signature did not verify) smtp.remote-ip=192.0.2.1
//	arc=none
//
// remoteIP, the address of the SMTP client, is left out when empty.
func (c *Chain) AuthResult(remoteIP string) string {
	var sb strings.Builder
	sb.WriteString("arc=")
	sb.WriteString(string(c.State))
	switch c.State {
	case Pass:
		sb.WriteString(" (i=")
		sb.WriteString(strconv.Itoa(len(c.Instances)))
		sb.WriteString(") header.oldest-pass=")
		sb.WriteString(strconv.Itoa(c.OldestPass))
	case Fail:
		if c.Reason != "" {
			sb.WriteString(" (")
			sb.WriteString(commentText(c.Reason))
			sb.WriteString(")")
		}
	default:
		return sb.String()
	}
	if remoteIP != "" {
		sb.WriteString(" smtp.remote-ip=")
		sb.WriteString(remoteIP)
	}
	return sb.String()
}

// commentText escapes text for an RFC 5322 comment: backslash, the
// parentheses, and controls replaced by spaces.
func commentText(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '(' || c == ')' || c == '\\':
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			sb.WriteByte(' ')
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}
