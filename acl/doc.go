// Package acl compiles the ACLs of a configuration into a Program and runs
// them with Exim's semantics at each SMTP stage.
//
// A statement is a verb followed by conditions and modifiers, evaluated in
// order; the first false condition ends the statement. accept, deny, defer,
// discard and drop end the ACL when all their conditions are true; require
// denies when one is false; warn never ends the ACL. An ACL that runs off
// its end denies. A condition that cannot be evaluated (a DNS timeout, an
// expansion error) makes the ACL defer, except on warn, where it is logged
// and the ACL goes on.
//
// Conditions, variables and controls come from a Registry. The core
// registers acl, authenticated, condition, domains, hosts, local_parts,
// recipients, senders and sender_domains; feature packages register theirs
// (spf, dmarc_status, …) so that this package never names them. Everything
// is resolved when the configuration is loaded: an unknown name, or one used
// at a stage where it cannot exist, is a load-time error.
package acl
