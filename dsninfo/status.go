package dsninfo

import (
	"strconv"
	"strings"
)

// Class is the first number of an enhanced status code (RFC 3463 §3.1).
type Class int

// The classes of RFC 3463 §3.1.
const (
	Success             Class = 2
	PersistentTransient Class = 4
	Permanent           Class = 5
)

// String names the class.
func (c Class) String() string {
	switch c {
	case Success:
		return "success"
	case PersistentTransient:
		return "persistent transient failure"
	case Permanent:
		return "permanent failure"
	}
	return "unknown class"
}

// Status is an RFC 3463 enhanced status code: class.subject.detail.
type Status struct {
	Class   Class
	Subject int
	Detail  int
	// Comment is what followed the code in the field, if anything
	// ("5.0.0 (permanent failure)").
	Comment string
}

// Valid reports whether s holds a code.
func (s Status) Valid() bool { return s.Class != 0 }

// String returns the code as written in a Status field: "5.1.1"; "" when
// there is none.
func (s Status) String() string {
	if !s.Valid() {
		return ""
	}
	return strconv.Itoa(int(s.Class)) + "." + strconv.Itoa(s.Subject) + "." + strconv.Itoa(s.Detail)
}

// ParseStatus reads an enhanced status code at the start of v (RFC 3463
// §2: class "." subject "." detail, subject and detail of 1 to 3 digits).
// ok is false when v does not start with one.
func ParseStatus(v string) (s Status, ok bool) {
	v = strings.TrimSpace(v)
	code, rest, _ := strings.Cut(v, " ")
	parts := strings.Split(code, ".")
	if len(parts) != 3 || len(parts[0]) != 1 {
		return Status{}, false
	}
	var n [3]int
	for i, p := range parts {
		if len(p) == 0 || len(p) > 3 {
			return Status{}, false
		}
		for j := 0; j < len(p); j++ {
			if p[j] < '0' || p[j] > '9' {
				return Status{}, false
			}
		}
		n[i], _ = strconv.Atoi(p)
	}
	switch Class(n[0]) {
	case Success, PersistentTransient, Permanent:
	default:
		return Status{}, false
	}
	return Status{Class: Class(n[0]), Subject: n[1], Detail: n[2], Comment: clean(rest)}, true
}

// subjects are the subject sub-codes of RFC 3463 §3.
var subjects = map[int]string{
	0: "other or undefined status",
	1: "addressing status",
	2: "mailbox status",
	3: "mail system status",
	4: "network and routing status",
	5: "mail delivery protocol status",
	6: "message content or media status",
	7: "security or policy status",
}

// details are the meanings of subject.detail in RFC 3463 §3 (and the
// later registrations of RFC 3886, 4468, 4954, 5248, 7293, 7372, 7504).
var details = map[[2]int]string{
	{0, 0}:  "other undefined status",
	{1, 0}:  "other address status",
	{1, 1}:  "bad destination mailbox address",
	{1, 2}:  "bad destination system address",
	{1, 3}:  "bad destination mailbox address syntax",
	{1, 4}:  "destination mailbox address ambiguous",
	{1, 5}:  "destination address valid",
	{1, 6}:  "destination mailbox has moved, no forwarding address",
	{1, 7}:  "bad sender's mailbox address syntax",
	{1, 8}:  "bad sender's system address",
	{1, 10}: "recipient address has null MX",
	{2, 0}:  "other or undefined mailbox status",
	{2, 1}:  "mailbox disabled, not accepting messages",
	{2, 2}:  "mailbox full",
	{2, 3}:  "message length exceeds administrative limit",
	{2, 4}:  "mailing list expansion problem",
	{3, 0}:  "other or undefined mail system status",
	{3, 1}:  "mail system full",
	{3, 2}:  "system not accepting network messages",
	{3, 3}:  "system not capable of selected features",
	{3, 4}:  "message too big for system",
	{3, 5}:  "system incorrectly configured",
	{4, 0}:  "other or undefined network or routing status",
	{4, 1}:  "no answer from host",
	{4, 2}:  "bad connection",
	{4, 3}:  "directory server failure",
	{4, 4}:  "unable to route",
	{4, 5}:  "mail system congestion",
	{4, 6}:  "routing loop detected",
	{4, 7}:  "delivery time expired",
	{5, 0}:  "other or undefined protocol status",
	{5, 1}:  "invalid command",
	{5, 2}:  "syntax error",
	{5, 3}:  "too many recipients",
	{5, 4}:  "invalid command arguments",
	{5, 5}:  "wrong protocol version",
	{5, 6}:  "authentication exchange line is too long",
	{6, 0}:  "other or undefined media error",
	{6, 1}:  "media not supported",
	{6, 2}:  "conversion required and prohibited",
	{6, 3}:  "conversion required but not supported",
	{6, 4}:  "conversion with loss performed",
	{6, 5}:  "conversion failed",
	{6, 6}:  "message content not available",
	{6, 7}:  "non-ASCII addresses not permitted for that sender/recipient",
	{6, 8}:  "UTF-8 string reply is required, but not permitted by the SMTP client",
	{6, 9}:  "UTF-8 header message cannot be transferred to one or more recipients",
	{7, 0}:  "other or undefined security status",
	{7, 1}:  "delivery not authorized, message refused",
	{7, 2}:  "mailing list expansion prohibited",
	{7, 3}:  "security conversion required but not possible",
	{7, 4}:  "security features not supported",
	{7, 5}:  "cryptographic failure",
	{7, 6}:  "cryptographic algorithm not supported",
	{7, 7}:  "message integrity failure",
	{7, 8}:  "authentication credentials invalid",
	{7, 9}:  "authentication mechanism is too weak",
	{7, 10}: "encryption needed",
	{7, 11}: "encryption required for requested authentication mechanism",
	{7, 12}: "a password transition is needed",
	{7, 13}: "user account disabled",
	{7, 14}: "trust relationship required",
	{7, 15}: "priority level is too low",
	{7, 16}: "message is too big for the specified priority",
	{7, 17}: "mailbox owner has changed",
	{7, 18}: "domain owner has changed",
	{7, 19}: "RRVS test cannot be completed",
	{7, 20}: "no passing DKIM signature found",
	{7, 21}: "no acceptable DKIM signature found",
	{7, 22}: "no valid author-matched DKIM signature found",
	{7, 23}: "SPF validation failed",
	{7, 24}: "SPF validation error",
	{7, 25}: "reverse DNS validation failed",
	{7, 26}: "multiple authentication checks failed",
	{7, 27}: "sender address has null MX",
	{7, 28}: "mail flood detected",
	{7, 29}: "ARC validation failure",
	{7, 30}: "REQUIRETLS support required",
}

// Meaning returns what the code means: "permanent failure: bad
// destination mailbox address" for 5.1.1; the subject's meaning when the
// detail is not registered; "" for no code.
func (s Status) Meaning() string {
	if !s.Valid() {
		return ""
	}
	m, ok := details[[2]int{s.Subject, s.Detail}]
	if !ok {
		if m, ok = subjects[s.Subject]; !ok {
			m = "unknown subject"
		}
	}
	return s.Class.String() + ": " + m
}
