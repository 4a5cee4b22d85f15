package stage

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/internal/deadline"
)

// Env is what one loaded configuration gives the connections that start
// under it.
type Env struct {
	Program    *acl.Program
	Services   *acl.Services
	AuthservID string   // authserv-id of our Authentication-Results header; "" adds none
	StripIDs   []string // other authserv-ids whose Authentication-Results headers are removed
	// StageTimeout bounds the run of one stage when acl_timeout does not
	// already bound it more tightly (0: no bound of its own).
	StageTimeout time.Duration
	// BodyHooks are body consumers started after the Program's own
	// (its registered features').
	BodyHooks []acl.BodyHook
	// Panic, when set, hears of every panic the driver recovered (the
	// milter logs it with its stack and counts it).
	Panic func(where string, v any)
	// Observer, when set, hears of stage runs and ended messages (the
	// daemon's metrics).
	Observer Observer
}

// Observer hears of the driver's work. Its methods run on the message
// path: they must return quickly and never block.
type Observer interface {
	// StageDone: the ACL of an envelope stage ran, or a message's end of
	// data was answered (acl.Data: the end of the body streams included).
	StageDone(st acl.Stage, took time.Duration)
	// MessageEnded: a message ended (as the finishers hear of it); its
	// authentication results are in t.Results.
	MessageEnded(t *acl.Txn, e acl.Ending)
}

// Client is what the MTA tells of the SMTP client when it connects.
type Client struct {
	IP        netip.Addr // invalid for a local submission
	Port      int
	Name      string // the host name the MTA verified, or ""
	LocalIP   netip.Addr
	LocalPort int
}

// Decision is a verdict and the stage that gave it.
type Decision struct {
	Stage  acl.Stage
	Result acl.Result
}

// RcptVerdict is the verdict on one recipient that was not accepted.
type RcptVerdict struct {
	Rcpt   string
	Result acl.Result
}

// Bounds of what one message keeps.
const (
	// MaxHeaderBytes caps the header fields kept per message; past it the
	// message fails (tempfail at its end).
	MaxHeaderBytes = 4 << 20
	// maxRejectedLogged caps the refused recipients remembered for the log.
	maxRejectedLogged = 1000
)

// Message is the state of one transaction, from MAIL on.
type Message struct {
	Open      bool // MAIL seen, and the message not yet ended
	Start     time.Time
	Verdict   *Decision // the verdict at MAIL or at the end of the message
	Rejected  []RcptVerdict
	Discarded []string // recipients discarded at RCPT
	// Failure is an internal error where no reply could be sent: the
	// message tempfails at its end.
	Failure error
	Size    int64

	headerBytes int
	bodyStarted bool
	writers     []acl.BodyWriter
	writerRoom  [2]acl.BodyWriter // the memory of writers for the usual DKIM and ARC
}

// Driver is one SMTP connection. Its methods are called from one
// goroutine, in SMTP order.
type Driver struct {
	env  *Env
	Conn *acl.Conn
	Txn  *acl.Txn
	// ConnVerdict is a verdict other than accept at connect or HELO.
	ConnVerdict *Decision
	Msg         Message

	discardAll  bool  // discard at connect or HELO: discard every message
	connFailure error // an internal error at connect or HELO with no reply: tempfail every message
	logged      int   // Txn.Logs the caller has written
	// used: something outside the driver (an ACL, a hook, a body writer, a
	// finisher) may have seen the Txn's message state since it was made
	// or reset; if not, the next reset keeps that state (Txn.ResetUnused).
	used bool
}

// Unlogged returns the log lines of the connection and its message that
// the caller has not written yet (MarkLogged).
func (d *Driver) Unlogged() []acl.LogLine { return d.Txn.Logs[min(d.logged, len(d.Txn.Logs)):] }

// MarkLogged records that the caller wrote every log line so far.
func (d *Driver) MarkLogged() { d.logged = len(d.Txn.Logs) }

// New starts a connection under env.
func New(env *Env) *Driver {
	if env == nil {
		env = &Env{}
	}
	c := &connection{}
	d := &c.drv
	d.env = env
	d.Conn = &c.conn
	d.Txn = &c.txn
	acl.InitTxn(d.Txn, d.Conn, env.Services)
	return d
}

// connection is what New allocates, in one piece: the driver, its
// connection and its first transaction.
type connection struct {
	drv  Driver
	conn acl.Conn
	txn  acl.Txn
}

// Env returns the configuration the connection runs under.
func (d *Driver) Env() *Env { return d.env }

// Connect starts the connection (again, for a new SMTP connection on the
// same MTA link) and runs the connect ACL.
func (d *Driver) Connect(ctx context.Context, c Client) acl.Result {
	// The connection's structures are reused: Reset closes the message
	// and starts the next with everything but the connection cleared.
	*d.Conn = acl.Conn{ClientIP: c.IP, ClientPort: c.Port, ClientName: c.Name, LocalIP: c.LocalIP, LocalPort: c.LocalPort}
	d.resetTxn()
	d.ConnVerdict, d.discardAll, d.connFailure, d.logged = nil, false, nil, 0
	d.Msg = Message{}
	return d.envelope(ctx, acl.Connect)
}

// resetTxn starts the transaction afresh, keeping its message state when
// nothing has used it.
func (d *Driver) resetTxn() {
	if d.used {
		d.Txn.Reset()
	} else {
		d.Txn.ResetUnused()
	}
	d.used = false
}

// Helo records the HELO/EHLO name and runs the HELO ACL.
func (d *Driver) Helo(ctx context.Context, name string) acl.Result {
	d.Conn.Helo = name
	return d.envelope(ctx, acl.Helo)
}

// Mail starts a transaction: the previous message is closed (Sendmail
// sends no ABORT between messages), the sender recorded and the MAIL ACL
// run. queueID is the MTA's queue ID if it has one yet; params are the
// command's ESMTP parameters.
func (d *Driver) Mail(ctx context.Context, from, queueID string, params ...string) acl.Result {
	d.EndOpen()
	// What was logged since the last written line (at connect and HELO,
	// say) stays with the message.
	carry := append([]acl.LogLine(nil), d.Unlogged()...)
	d.resetTxn()
	d.Txn.Logs, d.logged = carry, 0
	d.Msg = Message{Open: true, Start: time.Now()}
	d.Txn.HasSender = true
	d.Txn.Sender = strings.TrimSpace(from)
	d.Txn.QueueID = queueID
	if len(params) > 0 {
		d.Txn.Params = &acl.ESMTPParams{Mail: params}
	}
	if d.discardAll {
		res := acl.Result{Verb: acl.Discard}
		if d.ConnVerdict != nil {
			res.ACL, res.Pos = d.ConnVerdict.Result.ACL, d.ConnVerdict.Result.Pos
		}
		d.Msg.Verdict = &Decision{acl.Mail, res}
		return res
	}
	return d.envelope(ctx, acl.Mail)
}

// Rcpt runs the RCPT ACL for one recipient. A refusal answers for this
// recipient only. Exim's discard at RCPT drops this recipient only (a
// milter's discard would drop the whole message): the recipient is
// accepted now, and removed at the end of the message (Edits.RemoveRcpts).
func (d *Driver) Rcpt(ctx context.Context, rcpt string, params ...string) acl.Result {
	d.Txn.Rcpt = strings.TrimSpace(rcpt)
	if p := d.Txn.Params; p != nil {
		p.Rcpt = params
	} else if len(params) > 0 {
		d.Txn.Params = &acl.ESMTPParams{Rcpt: params}
	}
	return d.envelope(ctx, acl.Rcpt)
}

// SetQueueID records the queue ID once the MTA has one.
func (d *Driver) SetQueueID(id string) {
	if id != "" {
		d.Txn.QueueID = id
	}
}

// envelope runs the ACL of an envelope stage and records its verdict.
func (d *Driver) envelope(ctx context.Context, st acl.Stage) acl.Result {
	var start time.Time
	if d.env.Observer != nil {
		start = time.Now()
	}
	res := d.run(ctx, st)
	if d.env.Observer != nil {
		d.env.Observer.StageDone(st, time.Since(start))
	}
	switch st {
	case acl.Connect, acl.Helo:
		if res.Verb == acl.Discard {
			// A milter cannot discard a connection: its messages are.
			d.discardAll = true
		}
		if res.Verb != acl.Accept {
			d.ConnVerdict = &Decision{st, res}
		}
	case acl.Mail:
		if res.Verb != acl.Accept {
			d.Msg.Verdict = &Decision{st, res}
		}
	case acl.Rcpt:
		switch res.Verb {
		case acl.Accept:
			d.Txn.Recipients = append(d.Txn.Recipients, d.Txn.Rcpt)
			d.keepRcptParams()
		case acl.Discard:
			d.Txn.Recipients = append(d.Txn.Recipients, d.Txn.Rcpt)
			d.keepRcptParams()
			d.Msg.Discarded = append(d.Msg.Discarded, d.Txn.Rcpt)
		default:
			if len(d.Msg.Rejected) < maxRejectedLogged {
				d.Msg.Rejected = append(d.Msg.Rejected, RcptVerdict{d.Txn.Rcpt, res})
			}
		}
		d.Txn.Rcpt = ""
		if d.Txn.Params != nil {
			d.Txn.Params.Rcpt = nil
		}
	}
	return res
}

// keepRcptParams records the ESMTP parameters of the recipient just
// accepted in Params.Recipients, which stays nil (no allocation) until a
// recipient has some.
func (d *Driver) keepRcptParams() {
	p := d.Txn.Params
	if p == nil || (len(p.Rcpt) == 0 && len(p.Recipients) == 0) {
		return
	}
	for len(p.Recipients) < len(d.Txn.Recipients)-1 {
		p.Recipients = append(p.Recipients, nil)
	}
	p.Recipients = append(p.Recipients, p.Rcpt)
}

// DiscardsAll reports whether a discard at connect or HELO discards every
// message of the connection.
func (d *Driver) DiscardsAll() bool { return d.discardAll }

// Fail records an internal error where no reply could be sent (a stage the
// MTA does not wait for): the open message tempfails at its end, or, with
// no message open, every message of the connection.
func (d *Driver) Fail(err error) {
	switch {
	case d.Msg.Open:
		if d.Msg.Failure == nil {
			d.Msg.Failure = err
		}
	case d.connFailure == nil:
		d.connFailure = err
	}
}

// Failures returns the internal errors recorded by Fail (or a panic) for
// the open message and for the connection.
func (d *Driver) Failures() (msg, conn error) { return d.Msg.Failure, d.connFailure }

// run runs the ACL of a stage with the stage's deadline. A panic, or a
// verdict that is not one, defers.
func (d *Driver) run(ctx context.Context, st acl.Stage) (res acl.Result) {
	prog := d.env.Program
	if prog == nil {
		return acl.Result{Verb: acl.Accept}
	}
	if prog.Runs(st) {
		d.used = true
	}
	if lim := d.env.StageTimeout; lim > 0 && (prog.Timeout() <= 0 || prog.Timeout() > lim) {
		// acl_timeout, when shorter, already bounds the run.
		dl := deadline.New(ctx, lim)
		defer dl.Cancel()
		ctx = dl
	}
	defer func() {
		if v := recover(); v != nil {
			d.panicked(st.String()+" ACL", v)
			res = acl.Result{Verb: acl.Defer, Err: fmt.Errorf("internal error: %v", v)}
		}
	}()
	res = prog.Run(ctx, st, d.Txn)
	switch res.Verb {
	case acl.Accept, acl.Deny, acl.Defer, acl.Discard, acl.Drop:
	default:
		res = acl.Result{Verb: acl.Defer, ACL: res.ACL, Pos: res.Pos, Err: fmt.Errorf("ACL returned %q", res.Verb)}
	}
	return res
}

func (d *Driver) panicked(where string, v any) {
	if d.env.Panic != nil {
		d.env.Panic(where, v)
	}
}

// recoverMessage turns a panic in an event that gets no reply into a
// failure of the message: tempfail at its end.
func (d *Driver) recoverMessage(where string) {
	if v := recover(); v != nil {
		d.messagePanicked(where, v)
	}
}

// messagePanicked records a panic in where, which fails the message.
func (d *Driver) messagePanicked(where string, v any) {
	d.panicked(where, v)
	if d.Msg.Failure == nil {
		d.Msg.Failure = fmt.Errorf("internal error in %s: %v", where, v)
	}
}
