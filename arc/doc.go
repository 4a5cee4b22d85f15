// Package arc implements the Authenticated Received Chain, RFC 8617:
// validating the ARC chain of a received message and sealing a message
// with a new ARC Set.
//
// # Validation
//
// Validator.Validate (or a Stream, for a message that arrives in pieces)
// runs the validator actions of RFC 8617 §5.2:
//
//  1. collect the ARC-Authentication-Results, ARC-Message-Signature and
//     ARC-Seal fields by instance; none gives State None; more than 50
//     instances, an instance number outside 1..50, a field whose tags or
//     instance do not parse, or a duplicate field gives Fail;
//  2. a newest ARC-Seal saying cv=fail gives Fail;
//  3. the structure: every instance from 1 to N present with exactly one
//     of each field, cv=none at i=1 and cv=pass above it;
//  4. the newest ARC-Message-Signature must verify (body hash and
//     signature, DKIM rules of RFC 6376 with the "i" tag as instance);
//  5. the oldest-pass: going down from N-1, the AMSs that still verify;
//  6. every ARC-Seal must verify, over the ARC Sets up to its own;
//  7. then the chain passes.
//
// Keys come from DNS (selector._domainkey.domain TXT) through a
// resolver.Querier. rsa-sha256 (keys of 1024 bits or more, RFC 8301) and
// ed25519-sha256 (RFC 8463) are supported; SHA-1 is not (RFC 8617 §4.1).
// A key lookup that fails for a temporary reason leaves the chain failed
// with Chain.Temp set, which callers treat as a temporary error.
//
// Canonicalisation (RFC 6376 §3.4) and the tag-list, key-record and
// header-selection rules are implemented here; go-msgauth is not used.
// A milter feeds a Stream (Validator.NewStream): Header for each field,
// Write for the body, Finish at the end. The body is hashed as it
// arrives, so memory is bounded by the header.
//
// # Sealing
//
// Signer.Seal returns the ARC-Seal, ARC-Message-Signature and
// ARC-Authentication-Results to put at the top of a message, for instance
// N+1 with cv= taken from the validation result (RFC 8617 §5.1). A cv=fail
// seal covers only its own set (§5.1.2); nothing is added to a chain whose
// newest seal already says fail, nor beyond 50 instances, nor when the
// validation hit a temporary DNS failure. ParsePrivateKey reads the key
// file; AuthResultsFor gathers a message's Authentication-Results for the
// new ARC-Authentication-Results.
//
// # Results and Exim's variables
//
// The Chain maps onto the variables Exim defines for ARC: State is
// $arc_state (pass, fail, none), Reason is $arc_state_reason, Domains
// joined with ":" is $arc_domains (the sealers' d=, in chain order) and
// OldestPass is $arc_oldest_pass. Chain.AuthResult formats the "arc"
// method of an Authentication-Results field (RFC 8617 §10.1).
//
// Conformance: the ValiMail ARC test suite (see conformance_test.go).
package arc
