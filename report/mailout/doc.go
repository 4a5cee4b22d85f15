// Package mailout hands a finished message to an SMTP server — the local
// MTA (report_smtp) — for delivery, as reports are sent (RFC 5321: EHLO,
// STARTTLS when the server offers it (RFC 3207), MAIL, RCPT, DATA). It
// tells a temporary refusal (4xx, a network failure) from a permanent one
// (5xx), so that callers know what to try again.
package mailout
