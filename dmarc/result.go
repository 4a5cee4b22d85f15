package dmarc

import (
	"errors"
	"slices"
	"strings"

	"github.com/mailsidecar/sidecar/authres"
)

// Result is the DMARC result as Authentication-Results writes it (RFC
// 8601 §2.7.1 and RFC 9989 §5.3.5).
type Result string

// The DMARC results.
const (
	Pass      Result = "pass"      // an aligned identifier passed
	Fail      Result = "fail"      // a record applies and nothing aligned passed
	None      Result = "none"      // no DMARC record applies
	TempError Result = "temperror" // a DNS lookup failed temporarily
	PermError Result = "permerror" // no usable Author Domain (nofrom)
)

// String returns the token.
func (r Result) String() string { return string(r) }

// Status is Exim's DMARC status: the word $dmarc_status holds and the
// dmarc_status condition tests.
type Status string

// The words of Exim's dmarc_status condition.
const (
	StatusAccept     Status = "accept"     // DMARC pass
	StatusReject     Status = "reject"     // fail, and the policy to apply is reject
	StatusQuarantine Status = "quarantine" // fail, and the policy to apply is quarantine
	StatusNone       Status = "none"       // fail, and the policy to apply is none
	StatusNoRecord   Status = "norecord"   // no (usable) DMARC record for the Author Domain
	StatusNoFrom     Status = "nofrom"     // no single Author Domain
	StatusTempError  Status = "temperror"  // DNS failure
	StatusOff        Status = "off"        // verification disabled (control = dmarc_disable_verify)
)

// String returns the word.
func (s Status) String() string { return string(s) }

// ParseStatus recognises a dmarc_status word, ignoring ASCII case.
func ParseStatus(word string) (Status, bool) {
	switch s := Status(strings.ToLower(word)); s {
	case StatusAccept, StatusReject, StatusQuarantine, StatusNone, StatusNoRecord,
		StatusNoFrom, StatusTempError, StatusOff:
		return s, true
	}
	return "", false
}

// AuthResult returns the Authentication-Results resinfo for the outcome,
// in OpenDMARC's form:
//
//	dmarc=pass (p=reject dis=none) header.from=example.com
//	dmarc=fail (p=reject dis=none) header.from=example.com policy.dmarc=reject
//	dmarc=none header.from=example.com
//	dmarc=temperror header.from=example.com
//	dmarc=permerror (no From header field)
//
// p= is the declared policy that applies (Policy), dis= what was done
// with the message (Action, none unless set), policy.dmarc the policy
// DMARC asks for after t= and pct= (Disposition, RFC 7489 §11.2). ok is
// false when verification is off: there is nothing to report.
func (o Outcome) AuthResult() (ar authres.Result, ok bool) {
	if o.Status == StatusOff || o.Result == "" {
		return authres.Result{}, false
	}
	ar = authres.Result{Method: "dmarc", Result: string(o.Result)}
	switch {
	case o.Result == PermError:
		if o.Err != nil {
			ar.Comment = fromReason(o.Err)
		}
		return ar, true
	case o.Record != nil && (o.Result == Pass || o.Result == Fail):
		action := o.Action
		if action == "" {
			action = PolicyNone
		}
		ar.Comment = policyComment(o.Policy, action)
	}
	ar.Props = make([]authres.Prop, 1, 2)
	ar.Props[0] = authres.P("header", "from", o.FromDomain)
	if o.Result == Fail {
		ar.Props = append(ar.Props, authres.P("policy", "dmarc", string(o.Disposition)))
	}
	return ar, true
}

// policies are the published policies and dispositions, and
// policyComments their "p=… dis=…" comments, written once.
var (
	policies       = [...]Policy{PolicyNone, PolicyQuarantine, PolicyReject}
	policyComments = func() (c [len(policies)][len(policies)]string) {
		for i, p := range policies {
			for j, d := range policies {
				c[i][j] = "p=" + string(p) + " dis=" + string(d)
			}
		}
		return c
	}()
)

// policyComment is the comment "p=… dis=…" of a pass or fail.
func policyComment(p, action Policy) string {
	i, j := slices.Index(policies[:], p), slices.Index(policies[:], action)
	if i < 0 || j < 0 {
		return "p=" + string(p) + " dis=" + string(action)
	}
	return policyComments[i][j]
}

// fromReason is the short reason for a nofrom outcome.
func fromReason(err error) string {
	for _, known := range []error{ErrNoFrom, ErrMultipleFrom, ErrNoMailbox, ErrMultipleDomain, ErrBadFrom} {
		if errors.Is(err, known) {
			return known.Error()
		}
	}
	return "no Author Domain"
}

// ARHeader returns the whole Authentication-Results header field with
// this result only, on one line and without the final CRLF, ready for
// add_header: Exim's $dmarc_ar_header. It is "" when verification is off.
func (o Outcome) ARHeader(authservID string) string {
	ar, ok := o.AuthResult()
	if !ok {
		return ""
	}
	return authres.Field(authservID, []authres.Result{ar})
}
