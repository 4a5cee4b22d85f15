// Package forensic is the DMARC failure report wing (RFC 9991), off the
// message path: the decision whether a failing message is reported (the
// policy's fo= tag, RFC 9991 section 3 and RFC 9989's fo=), the report
// itself in the Abuse Reporting Format for authentication failures
// (RFC 5965, RFC 6591), the spool directory the daemon writes reports to
// (one file per report, written whole or not at all) and the per-domain
// rate limit that keeps a spoofing wave from turning sidecar into a mail
// cannon. ParseARF reads such reports back (tests, fuzzing, operators).
//
// The delivery of spooled reports lives in package report/forensic/deliver,
// so that the message path (package checks) does not link the report
// store.
package forensic
