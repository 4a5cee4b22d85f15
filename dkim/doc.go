// Package dkim verifies the DKIM signatures of a message: RFC 6376
// (DomainKeys Identified Mail), RFC 8463 (Ed25519) and RFC 8301 (no
// rsa-sha1, RSA keys of 1024 bits at least), with results named and
// rendered as RFC 8601 (Authentication-Results) writes them, header.b as
// RFC 6008 defines it.
//
// The cryptography and canonicalization are github.com/emersion/go-msgauth's;
// this package adds what it lacks:
//
//   - Key queries go through a resolver.Querier (resolver.TXTLookup) under
//     the caller's context, so a DNS timeout or SERVFAIL gives temperror,
//     and NXDOMAIN, NODATA or a revoked key (empty p=) gives permerror.
//   - Each DKIM-Signature field is read here too, for the selector (s=),
//     algorithm (a=), the first 8 characters of b=, x= against an
//     injectable clock (expired: fail) and x= after t= (else permerror).
//     The key record's flags are read from the same answer: t=y sets
//     Result.Testing, t=s demands that the i= domain equal d= (permerror).
//   - A body length limit (l=) is refused as local policy: status policy.
//   - At most MaxSignatures (default 8) signatures are verified, the top
//     ones first; the others cost nothing and are reported as policy with
//     reason "too many signatures".
//   - A Stream takes the message as a milter receives it (header fields,
//     then body chunks) in bounded memory: a body up to BodyBuffer (64 KiB)
//     is kept and verified at End without any goroutine; a longer one is
//     streamed through go-msgauth's hashers.
//
// Results come one per DKIM-Signature field, in header order. Statuses:
// pass, fail (hash mismatch, expired), policy (l=, over the cap),
// temperror (key unavailable), permerror (bad tags, no or bad key, From
// not signed, unsupported or weak algorithm). Result.AuthResult renders
//
//	dkim=pass header.d=example.com header.i=@example.com header.s=sel header.a=rsa-sha256 header.b=icKcLSEZ
//	dkim=fail (body hash did not verify) header.d=example.com …
package dkim
