// Package dnstest gives every package hermetic DNS for its tests: Zone, an
// in-process zone map that implements resolver.Querier, and Server, a
// loopback DNS server (UDP and TCP on 127.0.0.1) that serves a Zone on the
// wire for tests of the resolver itself. Nothing here reaches the network.
package dnstest
