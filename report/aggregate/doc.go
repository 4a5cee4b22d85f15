// Package aggregate builds DMARC aggregate reports (RFC 9990) from the
// groups of messages of a report store: the XML document (namespace
// urn:ietf:params:xml:ns:dmarc-2.0), its gzip file and file name
// (section 5), and the report mail (section 5 and RFC 9990's mail
// layout), and sends them to the rua destinations after external
// destination verification (RFC 9990 section 4). The same reports may
// be written in RFC 7489's format (Appendix C; section 7.2 for the
// file and the mail) for deployments that evaluate DMARC as RFC 7489
// does.
package aggregate
