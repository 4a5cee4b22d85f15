// Package dsninfo reads delivery status notifications: bounces, delay
// and success notices.
//
// It parses RFC 6522 multipart/report messages of report-type
// delivery-status with the fields of RFC 3464 (per message and per
// recipient), the RFC 6533 message/global-delivery-status variant, the
// RFC 3463 enhanced status codes with their meaning, and the X- fields
// Exim adds with EXPERIMENTAL_DSN_INFO (X-Remote-MTA-smtp-greeting,
// X-Remote-MTA-helo-response, X-Exim-Diagnostic, Remote-MTA of type
// X-ip). From the returned message (message/rfc822, message/global,
// text/rfc822-headers, message/global-headers) it takes the Message-ID,
// From, To, Subject and Date of the message that bounced.
//
// Old plain-text bounces, which are not RFC 3464 reports, are recognised
// by a conservative scan and reported with Kind Guessed.
//
// The parser streams: it keeps no more than its Limits, whatever the size
// or shape of the input, skips what lies beyond them and says so in the
// Report. A malformed report gives Kind Unparsed with the reason; the
// parser never panics on input. It is pure: no logging, no configuration,
// no network.
package dsninfo
