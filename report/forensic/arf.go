package forensic

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"strings"
	"time"
)

// DeliveryResult is what the receiver did with the reported message
// (RFC 6591 section 3.2, Delivery-Result).
type DeliveryResult string

// The Delivery-Result tokens.
const (
	Delivered DeliveryResult = "delivered" // delivered to the recipient
	Spam      DeliveryResult = "spam"      // held or filed as spam (quarantine)
	Policy    DeliveryResult = "policy"    // not delivered for local policy (discarded)
	Reject    DeliveryResult = "reject"    // refused during the SMTP transaction
	Other     DeliveryResult = "other"     // anything else (a temporary failure)
)

// Limits of what a report carries of the original message.
const (
	// MaxHeaderBytes bounds the original header section: fields beyond
	// it are left out (the report says so).
	MaxHeaderBytes = 256 << 10
	// MaxBodyBytes bounds the body prefix of dmarc_forensic_include_body.
	MaxBodyBytes = 64 << 10
)

// DKIMSignature is one DKIM signature of the reported message.
type DKIMSignature struct {
	Domain   string `json:"domain"`
	Selector string `json:"selector,omitempty"`
	Result   string `json:"result"`
}

// Report is one DMARC failure report: what RFC 9991 section 3 asks of the
// failed message, and the message itself (its header, and a prefix of its
// body when the operator allows it).
type Report struct {
	Sender       string    `json:"sender"`        // From and envelope sender of the report
	ReportingMTA string    `json:"reporting_mta"` // this host's name
	UserAgent    string    `json:"user_agent"`
	Arrival      time.Time `json:"arrival"`
	SourceIP     string    `json:"source_ip"`
	EnvelopeID   string    `json:"envelope_id,omitempty"` // the MTA's queue ID
	MailFrom     string    `json:"mail_from"`             // "" for the null sender
	FromDomain   string    `json:"from_domain"`           // the Author Domain (Reported-Domain)
	PolicyDomain string    `json:"policy_domain"`
	// AuthResults is the value of our Authentication-Results field:
	// "authserv-id; spf=… dkim=… dmarc=…".
	AuthResults string `json:"auth_results"`
	// AlignSPF and AlignDKIM say which identifiers passed aligned
	// (Identity-Alignment); a DMARC failure has neither.
	AlignSPF  bool            `json:"align_spf,omitempty"`
	AlignDKIM bool            `json:"align_dkim,omitempty"`
	SPF       string          `json:"spf,omitempty"` // the SPF result token
	DKIM      []DKIMSignature `json:"dkim,omitempty"`
	// FailureOption is the fo= option that asked for the report.
	FailureOption  string         `json:"fo"`
	DeliveryResult DeliveryResult `json:"delivery_result"`
	// Header is the original header section, CRLF line ends, without the
	// empty line; HeaderTruncated says fields were left out.
	Header          []byte `json:"header"`
	HeaderTruncated bool   `json:"header_truncated,omitempty"`
	// Body is a prefix of the original body (nil: headers only).
	Body          []byte `json:"body,omitempty"`
	BodyTruncated bool   `json:"body_truncated,omitempty"`
	IncludeBody   bool   `json:"include_body,omitempty"`
}

// IdentityAlignment is the Identity-Alignment value (RFC 6591 section
// 3.2): the aligned identifiers that passed, or "none".
func (r *Report) IdentityAlignment() string {
	var ids []string
	if r.AlignDKIM {
		ids = append(ids, "dkim")
	}
	if r.AlignSPF {
		ids = append(ids, "spf")
	}
	if len(ids) == 0 {
		return "none"
	}
	return strings.Join(ids, ", ")
}

// Subject is the report mail's subject.
func (r *Report) Subject() string {
	return fmt.Sprintf("DMARC failure report for %s from %s", r.FromDomain, r.SourceIP)
}

// Mail returns the report mail to the mailbox to, in the ARF layout
// (RFC 5965 section 2, RFC 6591): a multipart/report with a text part,
// the message/feedback-report part with Feedback-Type: auth-failure and
// Auth-Failure: dmarc, and the original message (message/rfc822 with
// the body prefix, or text/rfc822-headers). Lines end in CRLF.
func (r *Report) Mail(to string, now time.Time) []byte {
	var b bytes.Buffer
	boundary := "sidecar-arf-" + token()
	_, host, _ := strings.Cut(r.Sender, "@")
	if host == "" {
		host = r.ReportingMTA
	}
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, oneLine(v)) }
	h("From", "<"+r.Sender+">")
	h("To", "<"+to+">")
	h("Subject", mime.QEncoding.Encode("utf-8", r.Subject()))
	h("Date", now.Format(time.RFC1123Z))
	h("Message-ID", "<arf."+token()+"@"+host+">")
	h("Auto-Submitted", "auto-generated")
	h("MIME-Version", "1.0")
	h("Content-Type", "multipart/report; report-type=feedback-report;\r\n\tboundary=\""+boundary+"\"")
	b.WriteString("\r\nThis is a DMARC failure report (RFC 9991) in MIME format.\r\n")

	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=\"US-ASCII\"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n", boundary)
	fmt.Fprintf(&b, "This is a DMARC failure report for a message with From domain %s\r\n", ascii(r.FromDomain))
	fmt.Fprintf(&b, "received from IP %s on %s.\r\n", r.SourceIP, r.Arrival.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "It failed DMARC (policy domain %s) and was reported because of fo=%s.\r\n", ascii(r.PolicyDomain), r.FailureOption)
	if r.HeaderTruncated {
		b.WriteString("The original header was longer than this report carries; the last fields are left out.\r\n")
	}

	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: message/feedback-report\r\n\r\n", boundary)
	h("Feedback-Type", "auth-failure")
	h("User-Agent", r.UserAgent)
	h("Version", "1")
	if r.EnvelopeID != "" {
		h("Original-Envelope-Id", r.EnvelopeID)
	}
	h("Original-Mail-From", "<"+r.MailFrom+">")
	h("Arrival-Date", r.Arrival.Format(time.RFC1123Z))
	h("Reporting-MTA", "dns; "+r.ReportingMTA)
	h("Source-IP", r.SourceIP)
	fmt.Fprintf(&b, "Authentication-Results: %s\r\n", foldValue(r.AuthResults))
	h("Auth-Failure", "dmarc")
	h("Identity-Alignment", r.IdentityAlignment())
	h("Delivery-Result", string(r.DeliveryResult))
	h("Reported-Domain", r.FromDomain)
	for _, k := range r.DKIM {
		if strings.EqualFold(k.Result, "pass") {
			continue
		}
		h("DKIM-Domain", k.Domain)
		if k.Selector != "" {
			h("DKIM-Selector", k.Selector)
		}
	}

	if r.IncludeBody {
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n", boundary)
	} else {
		fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/rfc822-headers\r\nContent-Disposition: inline\r\n\r\n", boundary)
	}
	b.Write(crlf(r.Header))
	if r.IncludeBody {
		b.WriteString("\r\n")
		b.Write(safeBody(crlf(r.Body), boundary))
	}
	if b.Len() > 0 && !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.Bytes()
}

// foldValue keeps a folded value folded with CRLF and a tab, and starts it
// without the space Format puts first.
func foldValue(v string) string {
	v = strings.TrimLeft(v, " \t")
	return strings.ReplaceAll(strings.ReplaceAll(v, "\r\n", "\n"), "\n", "\r\n")
}

// crlf turns bare LF and bare CR into CRLF.
func crlf(p []byte) []byte {
	if !bytes.ContainsAny(p, "\r\n") {
		return p
	}
	out := make([]byte, 0, len(p)+len(p)/32)
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\r' && i+1 < len(p) && p[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r' || c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// safeBody keeps a body line equal to our boundary from ending the part
// (the boundary is random; this is belt and braces for a crafted body).
func safeBody(body []byte, boundary string) []byte {
	if !bytes.Contains(body, []byte("--"+boundary)) {
		return body
	}
	return bytes.ReplaceAll(body, []byte("--"+boundary), []byte("- -"+boundary))
}

// oneLine keeps a header field value on its line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

func ascii(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}

func token() string {
	var r [12]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:])
}
