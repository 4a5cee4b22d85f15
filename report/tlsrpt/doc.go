// Package tlsrpt builds SMTP TLS reports (RFC 8460) from the MTA's mail
// log and the sidecar policy socket's log lines: the log readers (Postfix
// smtp(8) TLS and delivery lines, Exim's main log, the policy socket's "msg=policy" lines)
// turn lines into sessions and policies, the aggregator counts sessions
// per policy domain and UTC day, and the reports are written as gzip'd
// JSON (application/tlsrpt+gzip, RFC 8460 §5.3) or sent to the rua of the
// domain's _smtp._tls TXT record (RFC 8460 §3) by mail or HTTPS POST.
package tlsrpt
