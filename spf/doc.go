// Package spf implements the Sender Policy Framework, RFC 7208: the
// check_host() function (§4) with every mechanism and modifier, macro
// expansion (§7), the processing limits of §4.6.4, and the HELO and MAIL
// FROM identities (§2.3, §2.4).
//
// A Checker makes all DNS queries through the resolver.Querier it is
// given, never queries the obsolete SPF RR type (99), logs nothing and
// reads no configuration:
//
//	c := &spf.Checker{DNS: res, Receiver: "mx.example.org"}
//	out := c.CheckMailFrom(ctx, spf.Request{IP: ip, Helo: helo, Sender: from})
//	if out.Result == spf.Fail {
//		reject(out.SMTPComment())
//	}
//	hdr := "Received-SPF: " + out.ReceivedSPF("", req)
//
// Results are typed with their RFC tokens (pass, fail, softfail, neutral,
// none, permerror, temperror). Outcome also renders Exim's views of a
// result: HeaderComment ($spf_header_comment), SMTPComment
// ($spf_smtp_comment) and, through ParseResult, Exim's deprecated
// err_perm/err_temp names.
//
// Bounds. One check makes at most 123 DNS queries with the default
// Limits: 1 TXT query for the checked domain; at most 10 DNS-querying
// terms (include, a, mx, ptr, exists, redirect), each making at most 11
// queries (an mx term: 1 MX query and at most 10 address queries; every
// other term makes 1 query, ptr's sharing the cache below); at most 11
// queries for the PTR lookup and the validation of its first 10 names,
// made once per check and shared by every ptr term and %{p} macro; and 1
// TXT query for the explanation of a fail. The caller's context bounds
// elapsed time (§4.6.4 suggests at least 20 seconds); a query failing
// because the context ended gives temperror.
//
// Choices where RFC 7208 leaves room:
//   - A target-name that cannot be queried after macro expansion (an empty
//     label, a label over 63 octets) names no host: the mechanism does not
//     match, and no query is made (§4.8; the suite accepts fail or
//     permerror). For include and redirect it is permerror, as check_host()
//     of such a name gives none (§4.3, §5.2, §6.1).
//   - ptr and %{p} validate only names among the first 10 PTR names; ptr
//     validates only names at or below its target, the others could not
//     match. A DNS error on the PTR query makes ptr not match (§5.5).
//   - The mx limit is checked before any address query: more than 10 MX
//     records is permerror even if an early one would match (§4.6.4).
//   - Void lookups are counted for the first query of a, mx, ptr, exists
//     and include terms; address queries for MX and PTR names and the exp
//     lookup are not counted (§4.6.4).
//   - %{i} writes IPv6 nibbles in upper case, as the OpenSPF suite
//     expects; DNS names compare case-insensitively.
package spf
