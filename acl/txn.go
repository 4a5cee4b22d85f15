package acl

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/authres"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/resolver"
	"github.com/mailsidecar/sidecar/results"
)

// Services are what conditions may use beyond the transaction itself.
type Services struct {
	DNS             resolver.Querier
	PrimaryHostname string
	AuthservID      string
	Now             func() time.Time
}

// Conn is the state of one SMTP connection, kept across its messages.
type Conn struct {
	ClientIP   netip.Addr // invalid for a local submission
	ClientPort int
	ClientName string // the client host name the MTA verified, or ""
	LocalIP    netip.Addr
	LocalPort  int
	Helo       string
	TLSCipher  string
	TLSVersion string
	TLSBits    string
	AuthID     string // the SASL login name; "" when not authenticated
	Vars       []string
	// Controls are the controls set at CONNECT or HELO that hold for
	// every message of the connection (control = dmarc_disable_verify).
	Controls Controls
}

// Control returns the argument of a connection-wide control and whether
// it was set.
func (c *Conn) Control(name string) (string, bool) { return c.Controls.Get(name) }

// SetControl records a connection-wide control.
func (c *Conn) SetControl(name, arg string) { c.Controls.Set(name, arg) }

// Controls are the controls set by "control =", with their arguments:
// each name once, a control set again taking the new argument. A
// message sets few, so they are a list, not a map.
type Controls []ControlValue

// ControlValue is a control set and its argument.
type ControlValue struct{ Name, Arg string }

// Get returns the argument of the named control and whether it is set.
func (cs Controls) Get(name string) (string, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c.Arg, true
		}
	}
	return "", false
}

// Set sets the named control with its argument.
func (cs *Controls) Set(name, arg string) {
	for i := range *cs {
		if (*cs)[i].Name == name {
			(*cs)[i].Arg = arg
			return
		}
	}
	if *cs == nil {
		*cs = make(Controls, 0, 2)
	}
	*cs = append(*cs, ControlValue{name, arg})
}

// Delete unsets the named control.
func (cs *Controls) Delete(name string) {
	*cs = slices.DeleteFunc(*cs, func(c ControlValue) bool { return c.Name == name })
}

// Header is one header field of the message: the name, and the raw value
// after the colon (folding kept, no final CRLF).
type Header struct {
	Name  string
	Value string
}

// AddedHeader is a header an ACL asked to add.
type AddedHeader struct {
	Text    string // "Name: value", possibly several lines
	AtStart bool   // :at_start: — above the existing headers
}

// LogLine is something an ACL asked to log: log_message, logwrite, or an
// error on a warn statement.
type LogLine struct {
	Stage Stage
	ACL   string
	Pos   config.Pos
	Kind  string // "log_message", "logwrite", "error"
	Text  string
}

// Txn is the environment of ACL runs for one message (and the connection it
// arrives on). It implements expand.Env.
type Txn struct {
	Conn       *Conn
	Services   *Services
	Stage      Stage
	HasSender  bool   // MAIL FROM seen
	Sender     string // "" for the null sender <>
	Recipients []string
	Rcpt       string // the recipient being checked at RCPT
	// Params are the ESMTP parameters of MAIL and RCPT; nil while no
	// command of the transaction gave any, so that ordinary mail pays
	// one pointer for them (Txn stays in its allocation size class).
	Params      *ESMTPParams
	Headers     []Header
	MessageSize int64
	QueueID     string
	Vars        []string // acl_m variables

	Controls      Controls
	AddHeaders    []AddedHeader
	RemoveHeaders []string
	Logs          []LogLine
	AuthResults   []AuthResult
	// Results are the authentication results of the message, filled by
	// the checks; a new Message at every Reset, closed at the next one and
	// by Close.
	Results *results.Message

	depth int
	prog  *Program
}

// ESMTPParams are the ESMTP parameters of a transaction's commands.
type ESMTPParams struct {
	// Mail are those of MAIL FROM ("RET=HDRS", "ENVID=x"), Rcpt those of
	// the RCPT being checked, and Recipients those of each accepted
	// recipient, in the order of Txn.Recipients (nil while no recipient
	// gave any; shorter than Recipients when the last ones gave none).
	Mail, Rcpt []string
	Recipients [][]string
}

// MailParams returns the ESMTP parameters of MAIL FROM.
func (t *Txn) MailParams() []string {
	if t.Params == nil {
		return nil
	}
	return t.Params.Mail
}

// RcptParams returns the ESMTP parameters of the RCPT being checked.
func (t *Txn) RcptParams() []string {
	if t.Params == nil {
		return nil
	}
	return t.Params.Rcpt
}

// RecipientParams returns the ESMTP parameters of each accepted
// recipient (see ESMTPParams.Recipients).
func (t *Txn) RecipientParams() [][]string {
	if t.Params == nil {
		return nil
	}
	return t.Params.Recipients
}

// Feature returns the value a feature's Configurer produced for the
// Program running this transaction (nil outside a run).
func (t *Txn) Feature(name string) any {
	if t.prog == nil {
		return nil
	}
	return t.prog.Feature(name)
}

// NewTxn starts the first transaction of a connection.
func NewTxn(conn *Conn, svc *Services) *Txn {
	t := new(Txn)
	InitTxn(t, conn, svc)
	return t
}

// InitTxn is NewTxn filling a Txn the caller allocated (with the rest of
// a connection's state, say).
func InitTxn(t *Txn, conn *Conn, svc *Services) {
	if conn == nil {
		conn = &Conn{}
	}
	if svc == nil {
		svc = &Services{}
	}
	*t = Txn{Conn: conn, Services: svc, Results: results.New()}
}

// Reset closes the message (see Close) and starts the next one (at MAIL
// FROM, or after a message), keeping the connection.
func (t *Txn) Reset() {
	t.Results.Close()
	*t = Txn{Conn: t.Conn, Services: t.Services, Results: results.New(), prog: t.prog}
}

// ResetUnused is Reset for a transaction whose message state nothing has
// seen since it was made or last reset (no hook, ACL statement or body
// writer ran: the caller knows): that state is kept for the next message
// rather than closed and made anew.
func (t *Txn) ResetUnused() {
	*t = Txn{Conn: t.Conn, Services: t.Services, Results: t.Results, prog: t.prog}
}

// Close ends the message: at an abort and at the end of the connection.
// Work still running for it in the background (DKIM key lookups, body
// hashing) is cancelled; its results stay readable.
func (t *Txn) Close() { t.Results.Close() }

// Header implements expand.Env.
func (t *Txn) Header(name string) []string {
	var out []string
	for _, h := range t.Headers {
		if strings.EqualFold(h.Name, name) {
			out = append(out, h.Value)
		}
	}
	return out
}

// Control returns the argument of a control set on the transaction and
// whether it was set.
func (t *Txn) Control(name string) (string, bool) { return t.Controls.Get(name) }

// SetControl records a control (used by ControlDef.Apply).
func (t *Txn) SetControl(name, arg string) { t.Controls.Set(name, arg) }

// SenderDomain returns the domain of the envelope sender, lower-cased.
func (t *Txn) SenderDomain() string { return strings.ToLower(domainOf(t.Sender)) }

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

func localPartOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i]
	}
	return addr
}

// AuthResult is one method's result for the Authentication-Results header
// (RFC 8601 §2.2): features append them to Txn.AuthResults when they
// evaluate a check, and the milter writes the header at end of message.
type AuthResult = authres.Result

// AuthProp is a ptype.property=value item such as smtp.mailfrom=example.com.
type AuthProp = authres.Prop

// AddAuthResult records a result for the Authentication-Results header,
// replacing an earlier result of the same method with the same properties
// (so a check evaluated twice is reported once, while two DKIM signatures
// of one domain, which differ in header.b, stay two entries).
func (t *Txn) AddAuthResult(r AuthResult) {
	for i, old := range t.AuthResults {
		if old.Method == r.Method && slices.Equal(old.Props, r.Props) {
			t.AuthResults[i] = r
			return
		}
	}
	if t.AuthResults == nil {
		// Room for the usual SPF, DKIM, DMARC and ARC results at once.
		t.AuthResults = make([]AuthResult, 0, 4)
	}
	t.AuthResults = append(t.AuthResults, r)
}
