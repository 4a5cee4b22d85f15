package tlsrpt

import (
	"strings"
	"time"
)

// eximReader follows Exim's main log by message id. A delivery ("=>")
// with X= (the cipher) is a TLS session, verified when CV=yes or
// CV=dane; a defer or failure ("==", "**") with H=host [ip] and a TLS
// error is a failed one; a defer by the README's routers (DANE policy
// lookup failed on a DNS error, MTA-STS policy matching no MX host) is a
// failure without a session to an MX host.
type eximReader struct {
	loc  *time.Location // of Exim's timestamps without a zone (log_timezone = false)
	emit func(Session)
	// last is when a failure of a message to a domain and host was
	// counted: the defer lines of one attempt's recipients count once.
	last map[string]time.Time
	// dane is the host of a message's "DANE attempt failed" line.
	dane map[string]string
}

func newEximReader(loc *time.Location, emit func(Session)) *eximReader {
	return &eximReader{loc: loc, emit: emit, last: map[string]time.Time{}, dane: map[string]string{}}
}

// sameAttempt is how close two defer lines of a message and host must be
// to be one delivery attempt (retries are minutes apart).
const sameAttempt = time.Minute

// logLine reads a line of Exim's own log file ("2006-01-02 15:04:05
// [.mmm] [+zzzz] [[pid]] MESSAGE"); false when it is not one.
func (e *eximReader) logLine(line string) bool {
	t, msg, ok := eximTimestamp(line, e.loc)
	if ok {
		e.line(t, msg)
	}
	return ok
}

// syslogLine reads the message of an exim[pid] syslog line, which has
// Exim's timestamp too unless syslog_timestamp = false.
func (e *eximReader) syslogLine(t time.Time, msg string) {
	if t2, rest, ok := eximTimestamp(msg, e.loc); ok {
		t, msg = t2, rest
	}
	e.line(t, msg)
}

// eximTimestamp splits Exim's timestamp and the optional millisecond,
// zone and pid fields (log_selector +millisec +pid, log_timezone) off
// line.
func eximTimestamp(line string, loc *time.Location) (time.Time, string, bool) {
	const layout = "2006-01-02 15:04:05"
	if len(line) < len(layout)+1 || line[4] != '-' || line[10] != ' ' || line[13] != ':' {
		return time.Time{}, "", false
	}
	t, err := time.ParseInLocation(layout, line[:len(layout)], loc)
	if err != nil {
		return time.Time{}, "", false
	}
	rest := line[len(layout):]
	if len(rest) >= 4 && rest[0] == '.' {
		if ms, err := time.ParseDuration(rest[1:4] + "ms"); err == nil {
			t, rest = t.Add(ms), rest[4:]
		}
	}
	rest = strings.TrimPrefix(rest, " ")
	if len(rest) >= 5 && (rest[0] == '+' || rest[0] == '-') {
		if z, err := time.Parse("-0700", rest[:5]); err == nil {
			_, off := z.Zone()
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.FixedZone("", off))
			rest = strings.TrimPrefix(rest[5:], " ")
		}
	}
	if strings.HasPrefix(rest, "[") {
		if _, r, ok := strings.Cut(rest, "] "); ok {
			rest = r
		}
	}
	return t, rest, true
}

// isEximID says whether s is a message id: 1xZXrw-0004J6-2L (Exim up to
// 4.96) or 1rZ3Wd-00000000ABC-1DdM (4.97 and later).
func isEximID(s string) bool {
	a, rest, ok1 := strings.Cut(s, "-")
	b, c, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || len(a) != 6 || !(len(b) == 6 && len(c) == 2 || len(b) == 11 && len(c) == 4) {
		return false
	}
	for _, r := range a + b + c {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

// line reads one main log message: "MSGID FLAG ADDRESS FIELDS…".
func (e *eximReader) line(t time.Time, msg string) {
	id, rest, ok := strings.Cut(msg, " ")
	if !ok || !isEximID(id) {
		return
	}
	if len(e.last) >= maxPending {
		clear(e.last)
		clear(e.dane)
	}
	switch {
	case strings.HasPrefix(rest, "=> "):
		e.delivery(t, rest[3:])
	case strings.HasPrefix(rest, "== "), strings.HasPrefix(rest, "** "):
		e.failure(t, id, rest[3:])
	case strings.HasPrefix(rest, "DANE attempt failed; TLS connection to "):
		host, _, _ := eximHost(rest[len("DANE attempt failed; TLS connection to "):])
		e.dane[id] = host
	case rest == "Completed":
		delete(e.dane, id)
	}
}

// delivery reads "ADDR [<ORIG>] R=… T=… H=HOST [IP] X=CIPHER CV=yes|no|dane
// [DN="…"] C="…"". Only remote deliveries over TLS are sessions; "->"
// lines (more recipients of the same transaction) are not read.
func (e *eximReader) delivery(t time.Time, rest string) {
	domain := eximDomain(rest)
	_, h, ok := strings.Cut(rest, " H=")
	if !ok || domain == "" || !strings.Contains(rest, " X=") {
		return // local, or a plaintext session
	}
	host, ip, ok := eximHost(h)
	if !ok {
		return
	}
	s := Session{Time: t, Domain: domain, MXHost: host, IP: ip, Level: "Untrusted"}
	if cv := eximField(rest, "CV"); cv == "yes" || cv == "dane" {
		s.Level = "Verified"
	}
	e.emit(s)
}

// failure reads "ADDR [<ORIG>] R=ROUTER [T=TRANSPORT] defer (ERRNO)
// [H=HOST [IP]]: TEXT" and the like for "**".
func (e *eximReader) failure(t time.Time, id, rest string) {
	domain := eximDomain(rest)
	if domain == "" {
		return
	}
	var s Session
	if _, h, ok := strings.Cut(rest, " H="); ok {
		host, ip, ok := eximHost(h)
		if !ok {
			return
		}
		_, text, _ := strings.Cut(h, "]: ")
		text = strings.TrimSpace(text)
		r := classifyEximTLS(text, e.dane[id] == host)
		if r == "" {
			return
		}
		s = Session{Time: t, Domain: domain, MXHost: host, IP: ip, Result: r, Reason: text}
	} else {
		_, text, ok := strings.Cut(rest, "): ")
		if !ok {
			return
		}
		r := classifyEximRouter(text)
		if r == "" {
			return
		}
		s = Session{Time: t, Domain: domain, Result: r, Reason: text}
	}
	key := id + " " + domain + " " + s.MXHost + " " + s.IP
	if prev, ok := e.last[key]; ok && t.Sub(prev) < sameAttempt && prev.Sub(t) < sameAttempt {
		return // another recipient of the same attempt
	}
	e.last[key] = t
	e.emit(s)
}

// eximDomain is the lower-cased domain of the address a delivery or
// failure line begins with ("a@b", "a@b <orig@c>", "user <a@b>").
func eximDomain(rest string) string {
	addr, after, _ := strings.Cut(rest, " ")
	if !strings.Contains(addr, "@") && strings.HasPrefix(after, "<") {
		addr, _, _ = strings.Cut(after[1:], ">")
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(addr[at+1:]), ".")
}

// eximHost splits "HOST [IP]" or "HOST [IP]:PORT" at the start of s.
func eximHost(s string) (host, ip string, ok bool) {
	host, rest, ok := strings.Cut(s, " [")
	if !ok || host == "" || strings.ContainsAny(host, " ]") {
		return "", "", false
	}
	ip, _, ok = strings.Cut(rest, "]")
	return strings.ToLower(host), ip, ok
}

// eximField is the value of " NAME=VALUE" in s, "" without it.
func eximField(s, name string) string {
	_, v, ok := strings.Cut(s, " "+name+"=")
	if !ok {
		return ""
	}
	v, _, _ = strings.Cut(v, " ")
	return v
}

// classifyEximTLS maps the text of a defer or failure at an MX host to
// an RFC 8460 result type; "" when it is no TLS failure. Exim 4.96 with
// GnuTLS (Debian's) says "(certificate verification failed)" and
// nothing more when the chain verified but the name did not match,
// ": certificate invalid" when the chain did not verify, ": certificate
// revoked" for a revoked OCSP staple, and GnuTLS's DANE text ("The
// certificate differs") or "TLSA record problem" when no TLSA record
// matched; dane says that the attempt was a DANE one.
func classifyEximTLS(text string, dane bool) ResultType {
	w := strings.ToLower(text)
	switch {
	case strings.Contains(w, "tls session is required") || strings.Contains(w, "tls session required"):
		if strings.Contains(w, "did not offer") || strings.Contains(w, "not advertised") {
			return StartTLSNotSupported
		}
		return ValidationFailure
	case strings.Contains(w, "certificate differs"), strings.Contains(w, "tlsa record problem"),
		strings.Contains(w, "dane") && strings.Contains(w, "fail"):
		return TLSAInvalid
	case strings.Contains(w, "(certificate verification failed)"):
		_, detail, _ := strings.Cut(w, "(certificate verification failed)")
		detail = strings.TrimSpace(strings.TrimPrefix(detail, ":"))
		switch {
		case dane:
			return TLSAInvalid
		case detail == "":
			return CertificateHostMismatch
		case strings.Contains(detail, "certificate invalid"):
			return CertificateNotTrusted
		}
		return classifyCertificate(detail)
	case strings.Contains(w, "certificate status check failed"), strings.Contains(w, "tls error"),
		strings.Contains(w, "tls session:"), strings.Contains(w, "starttls"):
		return ValidationFailure
	}
	return ""
}

// classifyEximRouter maps the defer text of the README's routers:
// "DANE policy lookup failed: defer REASON" is a DNS failure (the
// policy socket never answers defer for anything else but an MTA-STS
// fetch, which its own line counts), "MTA-STS policy: no MX host
// matches …" an enforce policy no MX host satisfies. The policy socket
// unreachable is no session.
func classifyEximRouter(text string) ResultType {
	switch {
	case strings.Contains(text, "sidecar unreachable"):
		return ""
	case strings.HasPrefix(text, "DANE policy lookup failed: defer") && !strings.Contains(text, "MTA-STS"):
		return DNSSECInvalid
	case strings.HasPrefix(text, "MTA-STS policy: no MX host matches"):
		return ValidationFailure
	}
	return ""
}
