package arc

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/mailsidecar/sidecar/authres"
)

// DomainList returns Domains joined with ":", the form of Exim's
// $arc_domains.
func (c *Chain) DomainList() string { return strings.Join(c.Domains, ":") }

// StateWord is the chain state as $arc_state and Authentication-Results
// show it: pass, fail or none, and temperror when a key could not be
// fetched for a temporary DNS reason (the chain is then neither failed
// nor passed).
func (c *Chain) StateWord() string {
	if c.Temp {
		return "temperror"
	}
	return string(c.State)
}

// Resinfo is the chain as the "arc" result of Authentication-Results
// (RFC 8617 §10.1, RFC 8601):
//
//	arc=pass (i=2) header.oldest-pass=1 smtp.remote-ip=192.0.2.1
//	arc=fail (i=1: ARC-Seal: signature did not verify) smtp.remote-ip=192.0.2.1
//	arc=temperror (temporary DNS failure: …) smtp.remote-ip=192.0.2.1
//	arc=none
//
// remoteIP, the address of the SMTP client, is left out when invalid.
func (c *Chain) Resinfo(remoteIP netip.Addr) authres.Result {
	r := authres.Result{Method: "arc", Result: c.StateWord()}
	switch {
	case c.State == None:
		return r
	case c.State == Pass && !c.Temp:
		r.Comment = "i=" + strconv.Itoa(len(c.Instances))
		r.Props = append(r.Props, authres.P("header", "oldest-pass", strconv.Itoa(c.OldestPass)))
	default:
		r.Comment = authres.ReasonText(c.Reason)
	}
	if remoteIP.IsValid() {
		r.Props = append(r.Props, authres.P("smtp", "remote-ip", remoteIP.Unmap().String()))
	}
	return r
}

// AuthResult formats Resinfo on one line; remoteIP may be "".
func (c *Chain) AuthResult(remoteIP string) string {
	ip, _ := netip.ParseAddr(remoteIP)
	return c.Resinfo(ip).String()
}
