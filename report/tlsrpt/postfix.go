package tlsrpt

import (
	"strings"
	"time"
)

// Session is one TLS session attempt of the MTA's SMTP client to an MX
// host, as the mail log shows it.
type Session struct {
	Time   time.Time
	Domain string // the recipient (next-hop) domain
	MXHost string
	IP     string
	// Level is how Postfix rated the TLS connection: Verified, Trusted,
	// Untrusted or Anonymous; "" when none was established.
	Level string
	// Result is the failure, "" for a session without one.
	Result ResultType
	Reason string // failure-reason-code: the MTA's words
}

// maxPending bounds the smtp processes followed at once; beyond it the
// oldest half-seen sessions are dropped.
const maxPending = 100000

// postfixReader follows Postfix smtp(8) processes by pid: the TLS lines
// of a connection come first, the delivery line ("to=<…>, relay=…,
// status=…") closes the session and names the domain.
type postfixReader struct {
	pending map[string]*Session // by pid
	last    map[string]string   // by pid: queue id and relay of the last closed session
	emit    func(Session)
}

func newPostfixReader(emit func(Session)) *postfixReader {
	return &postfixReader{pending: map[string]*Session{}, last: map[string]string{}, emit: emit}
}

// line reads the message of one postfix/smtp[pid] line.
func (p *postfixReader) line(t time.Time, pid, msg string) {
	switch {
	case strings.HasPrefix(msg, "server certificate verification failed for "):
		// "…for HOST[IP]:PORT: num=65:no matching DANE TLSA records"
		rest := msg[len("server certificate verification failed for "):]
		s := p.start(t, pid, rest)
		if _, why, ok := strings.Cut(rest, ": num="); ok {
			if _, text, ok := strings.Cut(why, ":"); ok {
				why = text
			}
			if s.Result == "" {
				s.Result, s.Reason = classifyCertificate(why), why
			}
		}
	case strings.Contains(msg, " TLS connection established to "):
		level, rest, _ := strings.Cut(msg, " TLS connection established to ")
		s := p.start(t, pid, rest)
		s.Level = level
	case strings.HasPrefix(msg, "warning: TLS policy lookup for "):
		// "warning: TLS policy lookup for DOMAIN/HOST: REASON"
		rest := msg[len("warning: TLS policy lookup for "):]
		dh, why, _ := strings.Cut(rest, ": ")
		d, h, _ := strings.Cut(dh, "/")
		s := &Session{Time: t, Domain: strings.ToLower(d), MXHost: strings.ToLower(h)}
		s.Result, s.Reason = classifyPolicyWarning(why), why
		p.setPending(pid, s)
	case strings.Contains(msg, ": to=<"):
		p.delivery(t, pid, msg)
	}
}

// start returns the session of pid for "HOST[IP]:PORT…", a new one
// when the pending one is for another host.
func (p *postfixReader) start(t time.Time, pid, hostPart string) *Session {
	host, ip, _ := hostIP(hostPart)
	if s := p.pending[pid]; s != nil && s.MXHost == host && (s.IP == "" || s.IP == ip) {
		s.IP = ip
		return s
	}
	s := &Session{Time: t, MXHost: host, IP: ip}
	p.setPending(pid, s)
	return s
}

func (p *postfixReader) setPending(pid string, s *Session) {
	if len(p.pending) >= maxPending {
		clear(p.pending)
		clear(p.last)
	}
	p.pending[pid] = s
}

// delivery reads "QUEUEID: to=<ADDR>, [orig_to=<…>,] relay=HOST[IP]:PORT,
// …, status=STATUS (TEXT)".
func (p *postfixReader) delivery(t time.Time, pid, msg string) {
	qid, rest, _ := strings.Cut(msg, ": to=<")
	addr, rest, _ := strings.Cut(rest, ">")
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return
	}
	domain := strings.ToLower(addr[at+1:])
	_, relay, ok := strings.Cut(rest, " relay=")
	if !ok {
		return
	}
	relay, _, _ = strings.Cut(relay, ",")
	host, ip, _ := hostIP(relay)
	_, text, _ := strings.Cut(rest, " status=")
	if _, why, ok := strings.Cut(text, " ("); ok {
		text = strings.TrimSuffix(why, ")")
	}
	s := p.pending[pid]
	delete(p.pending, pid)
	key := qid + " " + relay
	if s == nil || (s.MXHost != host && host != "" && relay != "none") {
		// No TLS lines for this delivery: a TLS failure told only here,
		// or a later recipient of a session already counted.
		if p.last[pid] == key {
			return
		}
		s = &Session{Time: t, MXHost: host, IP: ip}
	}
	p.last[pid] = key
	if s.Domain == "" {
		s.Domain = domain
	}
	if s.IP == "" {
		s.IP = ip
	}
	if s.Result == "" {
		if r := classifyDeliveryText(text); r != "" {
			s.Result, s.Reason = r, text
		}
	}
	if s.Level == "" && s.Result == "" {
		return // a plaintext session, or one that never got to TLS
	}
	p.emit(*s)
}

// classifyCertificate maps an OpenSSL/Postfix verification error text to
// an RFC 8460 result type.
func classifyCertificate(why string) ResultType {
	w := strings.ToLower(why)
	switch {
	case strings.Contains(w, "dane tlsa"):
		// "no matching DANE TLSA records": none of the TLSA RRset matched
		// the certificate (RFC 8460 §4.3.2.1 tlsa-invalid).
		return TLSAInvalid
	case strings.Contains(w, "hostname mismatch"), strings.Contains(w, "name mismatch"):
		return CertificateHostMismatch
	case strings.Contains(w, "expired"), strings.Contains(w, "not yet valid"):
		return CertificateExpired
	case strings.Contains(w, "self-signed"), strings.Contains(w, "self signed"), strings.Contains(w, "issuer"),
		strings.Contains(w, "untrusted"), strings.Contains(w, "not trusted"), strings.Contains(w, "unable to verify"):
		return CertificateNotTrusted
	}
	return ValidationFailure
}

// classifyPolicyWarning maps Postfix's "TLS policy lookup" warnings.
func classifyPolicyWarning(why string) ResultType {
	w := strings.ToLower(why)
	switch {
	case strings.Contains(w, "non dnssec"), strings.Contains(w, "non-dnssec"):
		return DANERequired
	case strings.Contains(w, "tlsa"):
		return DNSSECInvalid
	}
	return ValidationFailure
}

// classifyDeliveryText maps a delivery line's text; "" when it is not a
// TLS failure.
func classifyDeliveryText(text string) ResultType {
	w := strings.ToLower(text)
	switch {
	case strings.Contains(w, "tls is required, but was not offered"), strings.Contains(w, "refused to start tls"),
		strings.Contains(w, "starttls") && strings.Contains(w, "not offered"):
		return StartTLSNotSupported
	case strings.Contains(w, "server certificate not verified"):
		return ValidationFailure
	case strings.Contains(w, "name mismatch"):
		return CertificateHostMismatch
	case strings.Contains(w, "tlsa lookup error"):
		return DNSSECInvalid
	case strings.Contains(w, "cannot start tls"):
		return ValidationFailure
	}
	return ""
}
