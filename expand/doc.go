// Package expand implements Exim-style string expansion for sidecar's ACL
// language: a string is compiled once, when the configuration is loaded,
// into a tree of nodes, and evaluated for every SMTP transaction.
//
// # Text and escapes
//
// Text is copied as it is, except for "$" and "\". A backslash gives the
// next character literally (\$ \{ \} \\), except \n, \t and \r, which give
// a newline, a tab and a carriage return. \N...\N copies everything
// between the two \N unchanged, which is convenient for regular
// expressions. Inside the braces of an item a "}" must be escaped; a "{" in
// text needs no escape.
//
// # Variables
//
//	$name, ${name}       a variable of the calling context (sender_address, ...);
//	                     unknown names are rejected by Compile
//	$h_Name:             header field Name: unfolded, RFC 2047 decoded, trimmed;
//	$header_Name:        several fields are joined with newlines
//	$bh_Name:            trimmed, not decoded
//	$bheader_Name:
//	$rh_Name:            raw, as received
//	$rheader_Name:
//	${h_Name:}           braces form of any header variable
//	$0 .. $9             groups of the match condition of the enclosing ${if}
//	                     ("yes" string), or of the current ${sg} match
//	$value               the looked-up value, in the strings of ${lookup}
//
// Header variables are limited to 64 KiB; longer values are truncated.
//
// # Items
//
//	${if COND {yes}{no}}              yes or no; {no} may be left out (""),
//	${if COND}                        and without strings the value is "true" or ""
//	${lc:s} ${uc:s}                   lower / upper case
//	${domain:addr} ${local_part:addr} the parts of an address, split at its last "@"
//	${length_N:s}                     the first N bytes of s
//	${strlen:s}                       the length of s in bytes
//	${sg{s}{regex}{replacement}}      replace every match; $0..$9 in replacement
//	${lookup{key}KIND{arg}}           the value found, or ""
//	${lookup{key}KIND{arg}{yes}{no}}  yes ($value is the value) or no
//
// Lookup kinds are registered with RegisterLookup; this package provides
// lsearch, whose argument is the absolute path of a file of "key: value"
// lines (see the README).
//
// # Conditions
//
//	eq{a}{b} eqi{a}{b} ne{a}{b}        string equality (eqi ignores case)
//	={a}{b} =={a}{b} !={a}{b}          integer comparisons; numbers may end in
//	<{a}{b} <={a}{b} >{a}{b} >={a}{b}  K, M or G; other text is an evaluation error
//	match{subject}{regex}              RE2 regular expression; sets $0..$9
//	def:name def:h_Name:               variable not empty; header present
//	and{{c1}{c2}...} or{{c1}{c2}...}   evaluated left to right, stopping early
//	!COND                              negation
//	isip{s} isip4{s} isip6{s}          s is an IP address (of that family)
//	bool{s}                            true/yes/non-zero number; false/no/0/""
//
// # Limits and errors
//
// Compile reports every problem as an *Error with the byte offset where it
// starts and a message for the administrator (several problems are joined
// with errors.Join). Items may nest MaxNesting deep. Evaluation stops with
// ErrOutputTooLarge when the output passes Limits.MaxOutput; other
// evaluation failures are *EvalError values, which a caller should treat as
// temporary.
//
// Parts that depend on nothing known only at evaluation time are computed
// by Compile; Expr.Constant reports a string that is constant as a whole.
package expand
