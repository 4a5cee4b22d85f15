// Package tlspolicy decides, for one SMTP next hop, whether the MTA's SMTP
// client must use DANE (RFC 7672, with RFC 6698 and RFC 7671 for TLSA
// records) and whether it should request or require OCSP stapling, and
// serves those decisions on a TCP or unix socket to Postfix
// (smtp_tls_policy_maps over socketmap or tcp_table), Sendmail (socket map)
// and Exim (${readsocket} line protocol).
//
// The decision (Decide) follows RFC 7672 §2.2: the security of the MX
// RRset decides between mandatory DANE and "DANE may be used" (§2.2.1), MX
// preference order is kept whatever the security of each host; each host
// needs secure address records (§2.2.2) before its TLSA RRset at
// _PORT._tcp.HOST is looked up, at the CNAME-expanded name first and then
// at the original name (§2.2.3); only usable TLSA records count (§3.1,
// RFC 7671 §4), and a secure TLSA RRset without usable records makes TLS
// mandatory but unauthenticated (§2.2). Any SERVFAIL, bogus answer or
// timeout on a lookup that matters is a temporary failure, never a
// downgrade (§2.1.1).
//
// Decisions are cached (Decider): for the smallest TTL of the answers
// used, between a floor and a ceiling, refreshed ahead of their expiry;
// served stale while refreshing (RFC 8767) only when no fresher answer
// could be stricter (dane-only, temp); failures cached briefly (RFC 2308
// §7, RFC 9520), never replacing a decision still in force.
package tlspolicy
