package dkim

import (
	"github.com/mailsidecar/sidecar/internal/authres"
	"strings"
)

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

// AuthResult is one resinfo of an Authentication-Results header field
// (RFC 8601 §2.2): "method=result (comment) ptype.property=value …".
type AuthResult struct {
	Method string // "dkim"
	Result string // the Status token
	// Comment is free text written in parentheses after the result; for
	// DKIM it says why a signature did not pass.
	Comment string
	// Props are the ptype.property=value items in order, each as
	// {ptype, property, value}, e.g. {"header", "d", "example.com"}.
	Props [][3]string
}

// AuthResult returns the Authentication-Results resinfo for the
// signature: dkim=pass header.d=… header.i=… header.s=… header.a=…
// header.b=…, with the reason as a comment when it did not pass. Empty
// tag values are left out.
func (r Result) AuthResult() AuthResult {
	ar := AuthResult{Method: "dkim", Result: string(r.Status)}
	if r.Status != Pass {
		ar.Comment = r.Reason
	}
	for _, p := range [][2]string{
		{"d", r.Domain}, {"i", r.Identifier}, {"s", r.Selector}, {"a", r.Algorithm}, {"b", r.BPrefix},
	} {
		if p[1] != "" {
			ar.Props = append(ar.Props, [3]string{"header", p[0], p[1]})
		}
	}
	return ar
}

// String renders the resinfo as it appears in the header field, e.g.
// "dkim=fail (body hash did not verify) header.d=example.com header.s=sel".
// Property values that are not RFC 2045 tokens or addresses are quoted.
func (a AuthResult) String() string {
	var b strings.Builder
	b.WriteString(a.Method)
	b.WriteByte('=')
	b.WriteString(a.Result)
	if a.Comment != "" {
		b.WriteString(" " + authres.Comment(a.Comment))
	}
	for _, p := range a.Props {
		b.WriteByte(' ')
		b.WriteString(p[0])
		b.WriteByte('.')
		b.WriteString(p[1])
		b.WriteByte('=')
		b.WriteString(authres.PValue(p[2]))
	}
	return b.String()
}
