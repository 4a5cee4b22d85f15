package results

import (
	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/authres"
	"github.com/mailsidecar/sidecar/dkim"
	"github.com/mailsidecar/sidecar/dmarc"
	"github.com/mailsidecar/sidecar/dsninfo"
	"github.com/mailsidecar/sidecar/spf"
)

// Message is the authentication state of one message.
type Message struct {
	From From
	// SPF is the check of MAIL FROM (HELO for the null sender); nil until
	// it is made. SPFGuess is the spf_guess check, SPFShown the one the
	// $spf_ variables show (that of the last spf or spf_guess condition).
	SPF, SPFGuess, SPFShown *spf.Evaluation
	DKIM                    DKIM
	// DMARC is nil until DMARC is evaluated.
	DMARC *DMARC
	ARC   ARC
	// DKIMSign is the DKIM signing of an outbound message.
	DKIMSign DKIMSign
	// DSN is what the message's delivery status notification said; nil
	// for a message that did not look like one, so that ordinary mail
	// carries one pointer and no more.
	DSN *DSN

	closers []func()
	closed  bool
}

// From is the Author Domain (RFC 9989 §3.2.6), parsed once.
type From struct {
	Known  bool // the From field was parsed
	Domain string
	Err    error // why there is no single Author Domain
}

// DKIM is the verification of every DKIM-Signature of the message.
type DKIM struct {
	// Stream verifies the signatures as the body passes; nil for an
	// unsigned message.
	Stream  *dkim.Stream
	Results []dkim.Result
	Err     error
	// Current is the index in Results of the signature the $dkim_
	// variables show; -1 for none.
	Current int
	// Examined: the message's header and body went through verification
	// (an unsigned message is examined and has no Results). The flags
	// are kept together so that Message stays in its allocation size
	// class.
	Examined bool
	// Finished: Results are final.
	Finished bool
	// Aborted: the message ended before verification finished.
	Aborted bool
}

// DMARC is the DMARC evaluation of the message.
type DMARC struct {
	Input   dmarc.Input
	Outcome dmarc.Outcome
	// Override is set when a trusted ARC chain overrode a DMARC failure
	// (RFC 8617 §7.2).
	Override *dmarc.ARCOverride

	ar           authres.Result // Outcome.AuthResult, once made
	arOK, arMade bool
}

// AuthResult is Outcome.AuthResult, made once: the Outcome is final once
// stored in the message. Its Props are shared: append to a copy.
func (d *DMARC) AuthResult() (authres.Result, bool) {
	if !d.arMade {
		d.ar, d.arOK = d.Outcome.AuthResult()
		d.arMade = true
	}
	return d.ar, d.arOK
}

// ARC is the validation of the message's ARC chain, and the seal sidecar
// adds to it.
type ARC struct {
	// Examined: the message went through the ARC stream (the milter
	// always streams it); only then is the chain reported.
	Examined bool
	// Stream hashes the message for validation (and for a new seal);
	// nil when no chain needs validating or after an abort.
	Stream *arc.Stream
	Chain  *arc.Chain // the validation result, once known
	Err    error      // why there is no result
	// Sealed are the indexes in acl.Txn.AddHeaders of the ARC Set sidecar
	// added, so that control = no_arc_sign can blank them.
	Sealed []int
}

// DSN is the delivery status notification a message carried.
type DSN struct {
	// Report is what dsninfo read from the message (never nil).
	Report *dsninfo.Report
	// Current is the index in Report.Recipients of the recipient the
	// $dsn_ variables show: the one the last dsn_action condition
	// matched, else the first.
	Current int
}

// DSNReport returns the report the message was read as, or nil for a
// message that did not look like a delivery status notification.
func (m *Message) DSNReport() *dsninfo.Report {
	if m.DSN == nil {
		return nil
	}
	return m.DSN.Report
}

// Abort drops a verification that has not finished: its key lookups are
// cancelled and it has no results. Closing the message aborts it; a
// message whose verification never started has nothing to abort.
func (d *DKIM) Abort() {
	if d.Finished || d.Stream == nil {
		return
	}
	d.Finished, d.Aborted = true, true
	d.Stream.Abort()
	d.Stream.Cancel()
}

// New starts the state of a message.
func New() *Message { return &Message{DKIM: DKIM{Current: -1}} }

// OnClose registers f to run when the message is closed: background work
// of the message stops there.
func (m *Message) OnClose(f func()) {
	if m.closed {
		f()
		return
	}
	m.closers = append(m.closers, f)
}

// Close ends the message: registered work is cancelled, in reverse order,
// then an unfinished DKIM verification (DKIM.Abort). Closing twice does
// nothing.
func (m *Message) Close() {
	if m == nil || m.closed {
		return
	}
	m.closed = true
	for i := len(m.closers) - 1; i >= 0; i-- {
		m.closers[i]()
	}
	m.closers = nil
	m.DKIM.Abort()
}

// Closed reports whether the message was closed.
func (m *Message) Closed() bool { return m.closed }

// DKIMSign is the DKIM signing of one message (dkim_domain): the
// signatures started when its body began, and those added at its end.
type DKIMSign struct {
	// Started: the message was considered for signing when its body
	// began (signing configured, and the client one we sign for).
	Started bool
	// Streams are the signatures being made, one per domain and
	// selector; Names their "d:s".
	Streams []*dkim.SignStream
	Names   []string
	// Problems are why a signature could not be started (a key file
	// missing, say): logged, and under dkim_strict the message defers.
	Problems []error
	// Signed are the "d:s" of the signatures added to the message.
	Signed []string
	// Domain and Selector are $dkim_domain and $dkim_selector while
	// dkim_selector and dkim_private_key are expanded.
	Domain, Selector string
}
