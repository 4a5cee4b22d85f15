// Package milter is sidecar's front end for Postfix and Sendmail: it speaks
// the milter protocol (Sendmail's libmilter protocol, version 6, as
// implemented by github.com/emersion/go-milter) and runs the ACLs of the
// configuration at each SMTP stage.
//
// go-milter is wrapped so that none of its traps reach users:
//
//   - a frame guard (frameConn) reads every packet before the library does:
//     zero-length and oversized frames close the connection; option
//     negotiation, macros, header fields, end of headers, body chunks and
//     the DATA/UNKNOWN commands are handled here, in order, so that macros
//     are kept per stage, header values keep their exact bytes (RFC 6376
//     c=simple), stages negotiated as no-reply get no reply, and replies are
//     coalesced into one write per stage;
//   - connection and transaction state live in a session that outlives the
//     library's handler object, and replies never let the library replace
//     the handler;
//   - per-message state is reset at MAIL, with or without ABORT;
//   - Sendmail's "IPv6:" client addresses are parsed;
//   - header edits are queued until end of message; forged
//     Authentication-Results headers carrying our authserv-id are removed and
//     ours is inserted at the top (RFC 8601);
//   - every listener gets its own go-milter server.
//
// Each stage costs one write, and packets that get no reply are
// acknowledged at once (TCP_QUICKACK on Linux), so the MTA's next small
// packet does not wait ~40 ms on Nagle for our delayed ACK.
//
// A panic or an evaluation error in a rule answers tempfail (4xx) and logs the
// ACL and position; nothing fails open.
package milter
