// Package stage drives one SMTP connection through the stages sidecar
// sees — connect, HELO, MAIL, RCPT, each header field, the end of the
// header, the body, the end of the message — running each stage's ACL
// with its hooks, feeding the body to the features' body writers, and
// deciding at the end of the message what the MTA is to do: the verdict
// and the header edits (our Authentication-Results, forged ones removed,
// add_header and remove_header, ARC sets, discarded recipients,
// quarantine).
//
// The milter adapts it to the wire, and "sidecar check" calls it on a
// message file: both give the same verdicts and the same edits because
// they run the same code. It does not log; what went wrong lands in the
// transaction's log lines and the caller logs them.
package stage
