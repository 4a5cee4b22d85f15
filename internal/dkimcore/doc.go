// Package dkimcore is the one DKIM verification core of sidecar, shared by
// DKIM-Signature verification (package dkim) and ARC-Message-Signature and
// ARC-Seal validation (package arc): the parts of RFC 6376 (DomainKeys
// Identified Mail) that both need, with RFC 8463 (Ed25519) and RFC 8301
// (no rsa-sha1, RSA keys of 1024 bits at least).
//
//   - header.go: header fields split from a header block, as written.
//   - tags.go: the tag=value lists of signatures and key records (§3.2).
//   - canon.go: simple and relaxed header canonicalisation (§3.4.1, §3.4.2)
//     and the signature field with its b= value removed (§3.7).
//   - body.go: simple and relaxed body canonicalisation (§3.4.3, §3.4.4)
//     and its SHA-256 hash with or without l= (§3.4.5), streamed: the body
//     is hashed as it arrives, once per distinct (canonicalisation, l=)
//     pair however many signatures share it (BodyHashes).
//   - select.go: the signed fields of h=, chosen bottom-up per name, a
//     name listed more often than fields exist (over-signing) or naming no
//     field contributing nothing (§5.4.2).
//   - key.go: key records (§3.6.1, RFC 8463 §4) parsed once per TXT text
//     and kept in a bounded LRU cache shared by every verifier.
//   - verify.go: rsa-sha256 and ed25519-sha256 signature checks.
//
// It lives under internal/ rather than in package dkim so that package
// dkim keeps its small public API (Verifier, Stream, Result) and package
// arc can share the core without importing the DKIM verifier.
//
// # Cost bound
//
// Every function here runs in time linear in its input: for a message of
// H header bytes in F fields, a body of B bytes and S signatures verified,
// each listing at most N names in h=, the work is
//
//	O(H)          splitting the header (each byte looked at a bounded number of times)
//	O(S·(N + H))  header selection and canonicalisation: per signature, one
//	              index of the fields by name (built once per message when
//	              F·N is large) and one pass over the names, each selected
//	              field canonicalised once
//	O(D·B)        body hashing, D ≤ S distinct (canonicalisation, l=) pairs
//	O(S)          public-key operations, at most one per signature
//
// S is capped by the callers (8 DKIM signatures by default, 50 ARC
// instances), N by the length of the signature field, itself part of H:
// the whole verification is O(H + B) with a constant set by those caps,
// whatever the shape of the header. TestCostIsLinear in package dkim
// checks it on hostile shapes (80,000 fields against an h= of 8,000
// names, 500 signatures, a 4 MiB header).
package dkimcore
