// Package checks plugs the mail-authentication features into the ACL
// language: it registers their conditions, variables, hooks, expansion
// lookups and main options. Importing it registers everything into
// acl.Default, the registry the daemon compiles with; Register adds the
// same to another registry (tests use acl.NewRegistry and Register).
//
// # SPF
//
// Exim's SPF support (experimental-spec.txt, "SPF"), on the spf package:
//
//	acl_smtp_rcpt = check_rcpt
//	begin acl
//	check_rcpt:
//	  deny    spf       = fail
//	          message   = $spf_smtp_comment
//	  defer   spf       = temperror
//	          message   = temporary SPF error, try again later
//	  warn    spf_guess = !pass
//	          log_message = SPF $spf_result for $spf_used_domain (guessed: $spf_result_guessed)
//	  accept
//
// What it provides:
//
//   - Conditions spf = LIST and spf_guess = LIST (MAIL, RCPT, DATA): true
//     when the result is in the list of words pass, fail, softfail,
//     neutral, none, permerror, temperror (err_perm and err_temp are
//     accepted for the last two). Items are tried left to right and the
//     first that matches decides; "!word" matches every other result, so
//     "spf = !fail" is true unless the result is fail. An unknown word in a
//     constant list is a load-time error at its position.
//   - The identity is MAIL FROM; for the null sender it is the HELO name
//     (RFC 7208 §2.3), and Authentication-Results says smtp.helo.
//   - The check runs once per transaction, at first use (a condition, a
//     variable or the DATA hook), with the ACL run's context and deadline,
//     and is kept in the transaction's state keyed by what it was about
//     (client address, HELO name, sender, guess record). DNS failures give
//     temperror, a result, never an ACL error: "defer spf = temperror". A
//     temperror caused by the run's own deadline is not kept, so the next
//     stage tries again.
//   - spf_guess evaluates the main option spf_guess (default
//     "v=spf1 a/24 mx/24 ptr ?all") as the record of a domain that
//     publishes none; $spf_result_guessed then says yes.
//   - Variables (MAIL, RCPT, DATA) $spf_result, $spf_header_comment,
//     $spf_smtp_comment, $spf_received (a whole "Received-SPF:" header on
//     one line), $spf_used_domain and $spf_result_guessed show the last spf
//     or spf_guess condition evaluated in the transaction, as Exim's do;
//     before any, using one runs the plain spf check.
//   - ${lookup{user@domain}spf{IP}} gives the result word for any sender
//     (or bare domain) and client address, IPv4 or IPv6; an invalid
//     address is an evaluation error (the ACL defers).
//   - A DATA hook checks SPF for every message and adds spf=RESULT
//     smtp.mailfrom=DOMAIN (or smtp.helo=NAME) to Authentication-Results
//     unless spf_authres = false, and, with spf_received_header = true, a
//     folded Received-SPF header on top of the message. The hook always
//     uses the plain check, never the guess.
//
// # Settings
//
// The options spf_guess, spf_authres and spf_received_header are read by
// an acl.Configurer when a configuration is compiled, so an invalid
// spf_guess record is a load-time error with its position, and each
// compiled Program (each reload) carries its own settings: sessions keep
// the settings of the configuration they started with.
package checks
