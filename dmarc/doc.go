// Package dmarc evaluates DMARC: RFC 9989 (DMARCbis, which obsoletes RFC
// 7489 and RFC 9091), with an RFC 7489 mode, and writes OpenDMARC 1.4's
// history file for opendmarc-import (aggregate reports, RFC 9990).
//
// # Author Domain
//
// FromDomain extracts the Author Domain from the From header field (RFC
// 9989 §5.3.1, RFC 5322 §3.6.2): exactly one From field whose mailboxes
// share one domain; U-labels become A-labels (RFC 5890, Punycode RFC
// 3492). Anything else is an error: Exim's "nofrom", dmarc=permerror.
//
// # Records
//
// ParseRecord parses a DMARC Policy Record (RFC 9989 §4.7, §4.8): v first
// and exactly "DMARC1"; tags p sp np psd t adkim aspf rua ruf fo and the
// RFC 7489 tags pct rf ri; unknown tags are ignored, bad values give way
// to defaults and are listed as typed TagErrors.
//
// # Discovery and evaluation
//
// Evaluator.Evaluate discovers the policy, checks identifier alignment and
// applies the policy.
//
// TreeWalk mode (the default) is RFC 9989's DNS Tree Walk (§4.10), at most
// 8 queries per walk: the Author Domain's record, else its Organizational
// Domain's, else its Public Suffix Domain's (psd=y). Several records at one
// name are discarded and the walk goes on. Organizational Domains follow
// §4.10.2 (psd=n, psd=y, fewest labels).
//
// PSLMode is RFC 7489 §3.2 and §6.6.3: the Organizational Domain is the
// public suffix plus one label, from a Public Suffix List (EmbeddedPSL,
// the golang.org/x/net snapshot, or LoadPSL for a public_suffix_list.dat,
// Exim's dmarc_tld_file); several records at a name end discovery.
//
// Both modes align the SPF-authenticated MAIL FROM domain and DKIM d=
// domains relaxed or strict (RFC 9989 §4.4); take p= for the policy domain
// itself, sp= for its existing subdomains and np= for non-existent ones
// (NXDOMAIN, RFC 8020); lower the policy one level for t=y (RFC 9989
// §4.7), or when pct= sampling leaves the message out (RFC 7489 §6.6.4,
// Evaluator.Rand is injectable); count a record without a valid p= as
// p=none only when it has a valid rua= (RFC 9989 §4.10.1). A temporary DNS
// failure gives temperror (RFC 9989 §5.3.6).
//
// # Results
//
// An Outcome carries Exim's words (accept reject quarantine none norecord
// nofrom temperror off), the RFC 8601 result (pass fail none temperror
// permerror), and renders Authentication-Results in OpenDMARC's form:
//
//	dmarc=fail (p=reject dis=none) header.from=example.com policy.dmarc=reject
//
// # History file
//
// NewHistoryRecord and HistoryRecord.AppendFormat write one record of the
// history file; HistoryFile appends records atomically and follows
// rotation.
//
// The package does no logging and reads no configuration.
package dmarc
