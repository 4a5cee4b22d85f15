// Package eximlist implements Exim's lists: domain, host, address and
// local-part lists, as the acl conditions (domains, hosts, senders …) and
// the TLS policy options (dane_domains, hosts_try_dane …) use them.
//
// A list is compiled once, when the configuration is loaded: every
// mistake is a *config.Error at its file:line:col, with a suggestion where
// one is known. Named lists ("domainlist local = …", referenced as +local)
// are compiled once per configuration and shared by every list that
// refers to them. A compiled list is immutable and safe for concurrent
// use; matching it does a bounded amount of work (see MaxCost).
package eximlist
