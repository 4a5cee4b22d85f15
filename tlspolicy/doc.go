// Package tlspolicy is the TCP policy socket that tells an MTA's SMTP client
// whether DANE (RFC 7672) or OCSP stapling is required for a next hop. It
// speaks the Postfix/Sendmail socketmap protocol (netstrings), Postfix's
// tcp_table protocol, and a line protocol for Exim's ${readsocket}.
//
// This first version frames and answers the three protocols with "no
// policy known" so that MTAs can be wired to it; the per-next-hop DANE and
// OCSP decisions arrive with their own change.
package tlspolicy
