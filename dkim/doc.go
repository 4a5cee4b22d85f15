// Package dkim verifies the DKIM signatures of a message: RFC 6376
// (DomainKeys Identified Mail), RFC 8463 (Ed25519) and RFC 8301 (no
// rsa-sha1, RSA keys of 1024 bits at least), with results named and
// rendered as RFC 8601 (Authentication-Results) writes them, header.b as
// RFC 6008 defines it.
//
// Verification runs on the DKIM verification core shared with package
// arc (internal/dkimcore): canonicalisation, header selection, body
// hashes, key records and the signature checks are ours, not
// go-msgauth's, which stays in the tests as the reference the
// differential test (differential_test.go) compares against. The
// reasons, and the order in which the checks run, are go-msgauth's, so
// that results did not change when the core replaced it. On top:
//
//   - Key queries go through a resolver.Querier (resolver.TXTLookup) under
//     the caller's context, so a DNS timeout or SERVFAIL gives temperror,
//     and NXDOMAIN, NODATA or a revoked key (empty p=) gives permerror.
//     A key record is parsed once per record text and kept in a bounded
//     cache shared with package arc.
//   - Each DKIM-Signature field gives the selector (s=), algorithm (a=),
//     the first 8 characters of b=, x= against an injectable clock (and
//     the real one, as before: expired gives fail) and x= after t= (else
//     permerror). The key record's flags: t=y sets Result.Testing, t=s
//     demands that the i= domain equal d= (permerror).
//   - rsa-sha1 and RSA keys under 1024 bits are refused (RFC 8301), and so
//     are RSA keys over 8192 bits (to bound the CPU a key can cost).
//   - A body length limit (l=) is refused as local policy: status policy.
//   - At most MaxSignatures (default 8) signatures are verified, the top
//     ones first; the others cost nothing and are reported as policy with
//     reason "too many signatures".
//   - A Stream takes the message as a milter receives it (header fields,
//     then body chunks) in bounded memory: the header is buffered, the
//     body hashed as it arrives, once per distinct body canonicalisation.
//
// # Cost bound
//
// Verifying a message costs time linear in its size, whatever its shape:
// O(H + S·(H + N) + D·B) for a header of H bytes, S ≤ MaxSignatures
// signatures verified with at most N names in h= each (N ≤ H), D ≤ S
// distinct body canonicalisations and a body of B bytes, plus S public-key
// operations; that is O(H + B) with the constant set by MaxSignatures.
// Signatures beyond the cap cost only the reading of their tags. Header
// fields are selected through an index built once per message, never by
// rescanning the header per name (which made go-msgauth quadratic: 45 s
// of CPU for a 1 MB header). TestCostIsLinear measures it on hostile
// shapes; BenchmarkHostile reports the figures.
//
// Results come one per DKIM-Signature field, in header order. Statuses:
// pass, fail (hash mismatch, expired), policy (l=, over the cap),
// temperror (key unavailable), permerror (bad tags, no or bad key, From
// not signed, unsupported or weak algorithm). Result.AuthResult renders
//
//	dkim=pass header.d=example.com header.i=@example.com header.s=sel header.a=rsa-sha256 header.b=icKcLSEZ
//	dkim=fail (body hash did not verify) header.d=example.com …
package dkim
