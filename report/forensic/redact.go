package forensic

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/mail"
	"strings"
	"sync"
)

// Redactor hides the recipients of a reported message (RFC 6590): in
// the fields that name them, each address's local-part becomes
// "redacted-" and twelve hex digits of a keyed hash (HMAC-SHA-256) of it,
// so that a report reader cannot learn who received the message but can
// tell whether two reports concern the same mailbox; display names are
// dropped. The key is random and lives as long as the Redactor.
type Redactor struct {
	key [32]byte
	mu  sync.Mutex
	mac hash.Hash // HMAC-SHA-256 under key, reused under mu
}

// NewRedactor returns a Redactor with a fresh random key.
func NewRedactor() *Redactor {
	r := &Redactor{}
	rand.Read(r.key[:])
	r.mac = hmac.New(sha256.New, r.key[:])
	return r
}

// recipientFields are the header fields that name the message's
// recipients (RFC 5322 section 3.6.3 and 3.6.6, and the ones MTAs add).
var recipientFields = map[string]bool{
	"to": true, "cc": true, "bcc": true, "resent-to": true, "resent-cc": true, "resent-bcc": true,
	"delivered-to": true, "x-original-to": true, "envelope-to": true, "x-envelope-to": true,
	"apparently-to": true, "x-rcpt-to": true,
}

// Field returns the value of the header field name with its recipients
// redacted: address fields are rewritten as a plain list of redacted
// addresses (or, when they do not parse, have every local-part redacted
// in place); Received has the addresses of its clauses ("for <…>")
// redacted; other fields are returned unchanged.
func (r *Redactor) Field(name, value string) string {
	lname := strings.ToLower(name)
	switch {
	case recipientFields[lname]:
		if len(value) > maxParsed {
			return r.inPlace(value)
		}
		if list, err := mail.ParseAddressList(strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", ""), "\n", "")); err == nil && len(list) > 0 {
			addrs := make([]string, len(list))
			for i, a := range list {
				addrs[i] = r.address(a.Address)
			}
			return " " + strings.Join(addrs, ",\r\n\t")
		}
		return r.inPlace(value)
	case lname == "received":
		return r.inPlace(value)
	}
	return value
}

// maxParsed bounds the address fields Field parses as such (net/mail's
// parser is not linear on every shape); longer ones are redacted in place.
const maxParsed = 8 << 10

// address redacts the local-part of an addr-spec.
func (r *Redactor) address(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return r.local(addr)
	}
	return r.local(addr[:at]) + addr[at:]
}

// local is the redacted form of a local-part (compared without case, as
// most mailboxes are).
func (r *Redactor) local(lp string) string {
	var sum [sha256.Size]byte
	r.mu.Lock()
	r.mac.Reset()
	r.mac.Write([]byte(strings.ToLower(lp)))
	r.mac.Sum(sum[:0])
	r.mu.Unlock()
	return "redacted-" + hex.EncodeToString(sum[:6])
}

// inPlace redacts the local-part before every '@' of s: the run of
// characters an unquoted local-part may hold, or a quoted string. Each
// look back stops at the previous '@', so the cost is linear in len(s).
func (r *Redactor) inPlace(s string) string {
	var b strings.Builder
	last, floor := 0, 0 // copied up to last; no look back before floor
	for i := 0; i < len(s); i++ {
		if s[i] != '@' {
			continue
		}
		start := i
		if start > floor && s[start-1] == '"' {
			if q := strings.LastIndexByte(s[floor:start-1], '"'); q >= 0 {
				start = floor + q
			}
		} else {
			for start > floor && localChar(s[start-1]) {
				start--
			}
		}
		floor = i + 1
		if start == i {
			continue // no local-part: "@" alone, or a route
		}
		b.WriteString(s[last:start])
		b.WriteString(r.local(s[start:i]))
		last = i
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// localChar reports whether c may be part of an unquoted local-part
// (RFC 5322 atext and the dot; 8-bit octets for RFC 6532 addresses).
func localChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c >= 0x80:
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0
}
