package spf

import (
	"context"
	"net/netip"
	"strings"

	"github.com/mailsidecar/sidecar/authres"
)

// Query is what one SPF check of an SMTP session is about.
type Query struct {
	IP   netip.Addr // the SMTP client; invalid for a local submission
	Helo string     // the HELO/EHLO argument
	// Sender is the MAIL FROM address; "" is the null sender, for which
	// the HELO identity is checked (RFC 7208 §2.3, §2.4).
	Sender string
	// Guess is a best-guess record evaluated for a domain that publishes
	// no SPF record (spf_guess); "" for a plain check.
	Guess string
}

// Evaluation is a Query and its outcome.
type Evaluation struct {
	Query   Query
	Outcome Outcome
}

// Evaluate makes the SPF check sidecar makes for an SMTP session: the MAIL
// FROM identity, or the HELO identity for the null sender, with q.Guess
// for a domain without a record when it is set. The daemon's conditions,
// variables, lookup and DATA hook, and the "sidecar spf" command, all come
// here. A client without an IP address (local submission) gives none
// without any DNS query.
func Evaluate(ctx context.Context, c *Checker, q Query) *Evaluation {
	q.IP = q.IP.Unmap()
	req := Request{IP: q.IP, Helo: q.Helo, Sender: q.Sender}
	e := &Evaluation{Query: q}
	identity, domain, sender := IdentityMailFrom, domainOf(q.Sender), q.Sender
	if q.Sender == "" {
		identity, domain, sender = IdentityHelo, q.Helo, "postmaster@"+q.Helo
	}
	switch {
	case !q.IP.IsValid():
		receiver := c.Receiver
		if receiver == "" {
			receiver = "unknown"
		}
		e.Outcome = Outcome{Result: None, Identity: identity, Domain: domain, Sender: sender,
			Receiver: receiver, Problem: "no client IP address (local submission)"}
	case q.Guess != "":
		e.Outcome = c.CheckHostGuess(ctx, q.IP, domain, sender, q.Helo, q.Guess)
		e.Outcome.Identity = identity
	case identity == IdentityHelo:
		e.Outcome = c.CheckHelo(ctx, req)
	default:
		e.Outcome = c.CheckMailFrom(ctx, req)
	}
	return e
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// Request returns the query as the spf package's Request.
func (e *Evaluation) Request() Request {
	return Request{IP: e.Query.IP, Helo: e.Query.Helo, Sender: e.Query.Sender}
}

// Received returns the Received-SPF header field (RFC 7208 §9.1) on one
// line, name included: "Received-SPF: pass (…) client-ip=…; …".
func (e *Evaluation) Received() string {
	return "Received-SPF: " + e.Outcome.ReceivedSPF("", e.Request())
}

// Reason is a short account of the outcome for the reason of an
// Authentication-Results entry (RFC 8601 §2.2): the mechanism that
// matched, the explanation of a fail, or why there was no verdict.
func (e *Evaluation) Reason() string {
	o := e.Outcome
	var r string
	switch o.Result {
	case Pass, Fail, SoftFail, Neutral:
		r = "no mechanism matched"
		if o.Mechanism != "" && o.Mechanism != "default" {
			r = "mechanism '" + o.Mechanism + "' matched"
		}
		if o.Result == Fail && o.Explanation != "" {
			r += "; explanation: " + o.Explanation
		}
	default:
		r = o.Problem
		if r == "" && o.Result == None {
			r = "no SPF record"
		}
	}
	return authres.ReasonText(r)
}

// AuthResult returns the Authentication-Results entry of the outcome:
// spf=RESULT with smtp.mailfrom=DOMAIN, or smtp.helo=NAME when the HELO
// identity was checked because the sender was null (RFC 8601 §2.7.2).
func (e *Evaluation) AuthResult() authres.Result {
	prop := authres.P("smtp", "mailfrom", e.Outcome.Domain)
	if e.Outcome.Identity == IdentityHelo {
		prop = authres.P("smtp", "helo", e.Query.Helo)
	}
	return authres.Result{Method: "spf", Result: string(e.Outcome.Result), Reason: e.Reason(), Props: []authres.Prop{prop}}
}
