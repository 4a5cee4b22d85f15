package dsninfo

import "strings"

// Kind says what a message turned out to be.
type Kind string

// Kinds of message.
const (
	// NotDSN: the message is not a delivery status notification.
	NotDSN Kind = "none"
	// DSN: an RFC 3464 report (message/delivery-status or RFC 6533
	// message/global-delivery-status) was read.
	DSN Kind = "dsn"
	// Guessed: a plain-text bounce, recognised by a conservative scan;
	// its recipients, Status, Diagnostic and Action (failed or delayed,
	// from the reply code) are what the scan found.
	Guessed Kind = "guessed"
	// Unparsed: the message says it is a delivery report but its report
	// could not be read; Report.Reason says why.
	Unparsed Kind = "unparsed"
)

// Action is what the reporting MTA did with a recipient (RFC 3464 §2.3.3).
type Action string

// The actions of RFC 3464 §2.3.3.
const (
	Failed    Action = "failed"    // could not be delivered
	Delayed   Action = "delayed"   // not yet delivered, still trying
	Delivered Action = "delivered" // delivered to the recipient
	Relayed   Action = "relayed"   // passed to an environment that sends no DSN
	Expanded  Action = "expanded"  // delivered and forwarded to several addresses
)

// Known reports whether a is one of the actions of RFC 3464.
func (a Action) Known() bool {
	switch a {
	case Failed, Delayed, Delivered, Relayed, Expanded:
		return true
	}
	return false
}

// Typed is a field of the form "type; value" (RFC 3464 §2.1.2:
// address-type, mta-name-type, diagnostic-type): "rfc822; bob@example.org",
// "dns; mx.example.org", "smtp; 550 5.1.1 no such user", "X-ip; [192.0.2.1]:587".
type Typed struct {
	Type  string // as written, for example "rfc822", "dns", "smtp", "X-ip"; "" when the field had no type
	Value string
}

// String returns "type; value", or the value alone when there is no type.
func (t Typed) String() string {
	if t.Type == "" {
		return t.Value
	}
	return t.Type + "; " + t.Value
}

// Recipient is the per-recipient part of a report (RFC 3464 §2.3).
type Recipient struct {
	OriginalRecipient Typed // Original-Recipient: the ORCPT of RFC 3461
	FinalRecipient    Typed // Final-Recipient
	Action            Action
	Status            Status
	RemoteMTA         Typed // Remote-MTA: "dns; mx.example.org", or Exim's "X-ip; [192.0.2.1]:587"
	DiagnosticCode    Typed // Diagnostic-Code: "smtp; 550 5.1.1 ..."
	LastAttemptDate   string
	WillRetryUntil    string
	FinalLogID        string // Final-Log-ID

	// Exim's fields (EXPERIMENTAL_DSN_INFO). A second Remote-MTA of type
	// X-ip lands in RemoteIP.
	RemoteIP            string // the value of "Remote-MTA: X-ip; [192.0.2.1]:587"
	RemoteSMTPGreeting  string // X-Remote-MTA-smtp-greeting
	RemoteHeloResponse  string // X-Remote-MTA-helo-response
	ReportingDiagnostic string // X-Exim-Diagnostic
}

// Address returns the recipient's address: the Final-Recipient, or the
// Original-Recipient when there is no Final-Recipient.
func (r *Recipient) Address() string {
	if r.FinalRecipient.Value != "" {
		return r.FinalRecipient.Value
	}
	return r.OriginalRecipient.Value
}

// Original is what the report tells of the message it is about, from the
// header of the returned message or headers.
type Original struct {
	Found     bool // a returned message or header part was read
	MessageID string
	From      string
	To        string
	Subject   string
	Date      string
}

// Report is what a message turned out to be, and what its report said.
type Report struct {
	Kind Kind
	// Reason says why Kind is Unparsed, or, for NotDSN, why the message
	// was not taken for one.
	Reason string
	// ReportType is the report-type parameter of a multipart/report.
	ReportType string
	// Global: the report was RFC 6533 message/global-delivery-status.
	Global bool

	// The per-message fields (RFC 3464 §2.2).
	ReportingMTA       Typed
	OriginalEnvelopeID string
	DSNGateway         Typed
	ReceivedFromMTA    Typed
	ArrivalDate        string

	Recipients []Recipient
	// MoreRecipients counts the per-recipient groups beyond
	// Limits.MaxRecipients, which were read past and not kept.
	MoreRecipients int

	Original Original

	// Truncated: some value was longer than Limits.MaxValue, or some
	// line longer than Limits.MaxLine, and was cut.
	Truncated bool
	// Skipped counts parts not read because of Limits.MaxParts or
	// Limits.MaxDepth.
	Skipped int
}

// IsReport reports whether the message is a delivery status notification
// of any kind, parsed or not.
func (r *Report) IsReport() bool { return r != nil && r.Kind != NotDSN }

// Bounced returns the recipients whose Action is failed or delayed: the
// recipients an operator traces.
func (r *Report) Bounced() []Recipient {
	var out []Recipient
	for _, rc := range r.Recipients {
		if rc.Action == Failed || rc.Action == Delayed {
			out = append(out, rc)
		}
	}
	return out
}

// clean makes s printable: valid UTF-8, control characters (tabs and line
// breaks of a folded field included) as single spaces, trimmed.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	needs := false
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			needs = true
			break
		}
	}
	if needs {
		var b strings.Builder
		b.Grow(len(s))
		space := false
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				if !space {
					b.WriteByte(' ')
				}
				space = true
				continue
			}
			space = r == ' '
			b.WriteRune(r)
		}
		s = b.String()
	}
	return strings.TrimSpace(s)
}
