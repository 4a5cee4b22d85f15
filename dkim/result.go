package dkim

import "github.com/mailsidecar/sidecar/authres"

// Status is the result of verifying one DKIM signature, named by its RFC
// 8601 §2.7.1 token, as Authentication-Results writes it.
type Status string

// The DKIM results of RFC 8601 §2.7.1.
const (
	// Pass: the signature verified.
	Pass Status = "pass"
	// Fail: the signature was acceptable but did not verify (body or
	// header hash mismatch, expired x=).
	Fail Status = "fail"
	// Neutral: the signature could not be processed for a reason that
	// is neither a failure nor an error. This package does not produce it.
	Neutral Status = "neutral"
	// Policy: the signature was not accepted by local policy: a body
	// length limit (l=), or a signature beyond MaxSignatures.
	Policy Status = "policy"
	// TempError: the key could not be retrieved for a transient reason,
	// typically a DNS timeout or SERVFAIL.
	TempError Status = "temperror"
	// PermError: the signature or its key cannot be used: malformed tags,
	// missing or revoked key, unsupported algorithm, From not signed.
	PermError Status = "permerror"
	// None: the message has no signature. A Result never carries None;
	// it is the value Exim's $dkim_verify_status takes without results.
	None Status = "none"
)

// String returns the RFC 8601 token.
func (s Status) String() string { return string(s) }

// Result is the outcome of verifying one DKIM-Signature header field. The
// tag values come from the signature itself, so they are set even when
// verification failed early (when the tags could be read at all).
type Result struct {
	Status Status
	// Domain is the signing domain (d=), lower-cased.
	Domain string
	// Identifier is the AUID (i=), or "@" + Domain when i= is absent.
	Identifier string
	// Selector is s=.
	Selector string
	// Algorithm is a=, such as "rsa-sha256" or "ed25519-sha256".
	Algorithm string
	// BPrefix is the first 8 characters of b= with whitespace removed
	// (RFC 6008), which tells apart signatures of the same domain.
	BPrefix string
	// Reason says why the signature did not pass; "" on pass.
	Reason string
	// Testing is true when the key record has the flag t=y (RFC 6376
	// §3.6.1): the signer is testing DKIM. Status is not changed.
	Testing bool
	// Err is the error behind a status other than pass, if any.
	Err error
}

// Passed reports whether the signature verified.
func (r Result) Passed() bool { return r.Status == Pass }

// AuthResult returns the Authentication-Results resinfo for the
// signature: dkim=pass header.d=… header.i=… header.s=… header.a=…
// header.b=…, with the reason as a comment when it did not pass. Empty
// tag values are left out.
func (r Result) AuthResult() authres.Result {
	ar := authres.Result{Method: "dkim", Result: string(r.Status), Props: make([]authres.Prop, 0, 5)}
	if r.Status != Pass {
		ar.Comment = r.Reason
	}
	for _, p := range [][2]string{
		{"d", r.Domain}, {"i", r.Identifier}, {"s", r.Selector}, {"a", r.Algorithm}, {"b", r.BPrefix},
	} {
		if p[1] != "" {
			ar.Props = append(ar.Props, authres.P("header", p[0], p[1]))
		}
	}
	return ar
}
