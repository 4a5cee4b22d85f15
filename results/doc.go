// Package results holds the authentication results of one message: the
// Author Domain, the SPF checks, every DKIM signature, the DMARC
// evaluation and the ARC chain, each as the RFC package that produced it
// typed it. One Message lives from MAIL FROM to the end of the
// transaction: the next MAIL, an abort or the end of the connection closes
// it, and closing cancels whatever still works for it in the background
// (DKIM key lookups and body hashing, the ARC stream).
//
// The checks fill it; the Authentication-Results header, the log line,
// the DMARC history record and the reports read it. It evaluates nothing.
package results
