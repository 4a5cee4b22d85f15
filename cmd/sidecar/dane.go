package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/tlspolicy"
)

func cmdDane(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("dane", `Arguments: NEXTHOP

Shows the TLS policy the daemon would answer for NEXTHOP (a domain,
domain:port, [host] or [host]:port), from the same code: the MX hosts in
preference order with the security of their records, each host's TLSA
records with their usability, and the final policy with its reason.
Exit status 0 when a policy was decided, 1 on a temporary failure (the
MTA would defer), 2 on a usage or configuration error.`, stderr)
	port := fs.Int("port", 0, "SMTP `port` of the next hop (default 25, or the :port of NEXTHOP)")
	dns := fs.String("dns", "", "DNS resolver to ask, `ADDR:PORT` (default: dns_servers or /etc/resolv.conf); its AD bit counts only if dns_trust_ad allows it")
	path := fs.String("config", "", "configuration `file` whose DANE and OCSP options apply (default: the embedded default configuration)")
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() != 1 || *port < 0 || *port > 65535 {
		fs.Usage()
		return 2
	}
	h, err := tlspolicy.ParseNextHop(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "sidecar dane: %v\n", err)
		return 2
	}
	if *port != 0 {
		h.Port = *port
	}
	cfg, prog, err := daemon.Load(*path, acl.Default)
	if err != nil {
		printConfigError(stderr, err)
		return 2
	}
	if *dns != "" {
		addr, err := config.ParseServer(*dns)
		if err != nil {
			fmt.Fprintf(stderr, "sidecar dane: -dns: %v\n", err)
			return 2
		}
		cfg.Get("dns_servers").Addrs = []string{addr}
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	rt, err := daemon.Build(cfg, prog, logger)
	if err != nil {
		fmt.Fprintf(stderr, "sidecar dane: %v\n", err)
		return 2
	}
	d := rt.Policy.Decider.DecideNextHop(context.Background(), h)
	fmt.Fprint(stdout, d.Explain())
	if d.Level == tlspolicy.LevelTemp {
		return 1
	}
	return 0
}
