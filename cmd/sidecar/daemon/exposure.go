package daemon

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"github.com/mailsidecar/sidecar/config"
)

// Settings that load without error but expose the daemon, or silently
// weaken what it decides, are reported as warnings (file:line:col with a
// caret in check-config, a log line at start and on reload):
//
//   - a TCP listener bound beyond loopback (a wildcard, a host name other
//     than localhost, or an address that is not loopback) whose allow-list
//     (milter_allow, policy_allow) admits the Internet at large: a prefix
//     shorter than /8 for IPv4 or /16 for IPv6, as 0.0.0.0/0 and ::/0 are.
//     No site has its MTAs spread wider, so such a list is no allow-list;
//   - such a listener whose allow-list admits loopback only: every remote
//     client will be refused;
//   - dns_trust_ad naming addresses beyond loopback: the AD bit crosses
//     the network unauthenticated, and anyone on the path can forge
//     "validated" TLSA records (RFC 7672 §1.3);
//   - dns_servers naming a server that dns_trust_ad does not trust, while
//     the policy socket is in use: its answers are never DNSSEC-secure, so
//     DANE is off (policy none or may) for every destination they answer.

// allowOptions pairs each listener option with its allow-list.
var allowOptions = [...]struct{ listen, allow, what string }{
	{"milter_listen", "milter_allow", "connect to the milter and have mail accepted"},
	{"policy_listen", "policy_allow", "query TLS policies"},
	{"metrics_listen", "metrics_allow", "read the metrics"},
}

// warnExposure adds the warnings above to cfg.Reporter.
func warnExposure(cfg *config.Config) {
	for _, o := range allowOptions {
		warnListeners(cfg, o.listen, o.allow, o.what)
	}
	warnTrustAD(cfg)
	warnUntrustedServers(cfg)
}

func warnListeners(cfg *config.Config, listen, allow, what string) {
	s := cfg.Get(listen)
	nets := cfg.Get(allow).Nets
	fields := fieldOffsets(s.Value.Text)
	for i, l := range s.Lis {
		if l.Network != "tcp" || !beyondLoopback(l.Address) {
			continue
		}
		pos := s.Value.Pos
		if len(fields) == len(s.Lis) {
			pos = s.Value.PosAt(fields[i])
		}
		switch {
		case anyBroad(nets):
			cfg.Reporter.Warnf(pos, "%s binds %s beyond loopback and %s admits the Internet at large: any host that reaches the port may %s; list the MTAs' addresses in %s",
				listen, l.Address, allow, what, allow)
		case allLoopback(nets):
			cfg.Reporter.Warnf(pos, "%s binds %s beyond loopback, but %s admits loopback addresses only: every remote client is refused; list the MTAs' addresses in %s",
				listen, l.Address, allow, allow)
		}
	}
}

func warnTrustAD(cfg *config.Config) {
	s := cfg.Get("dns_trust_ad")
	for _, it := range config.SplitList(s.Value) {
		p, ok := parsePrefix(it.Text)
		if !ok || isLoopbackPrefix(p) {
			continue
		}
		how := "beyond loopback"
		if broad(p) {
			how = "anywhere"
		}
		cfg.Reporter.Warnf(it.Pos, "dns_trust_ad trusts the AD bit of resolvers %s (%s): it crosses the network unauthenticated, so anyone on the path can make a forged TLSA record look DNSSEC-validated; trust only a validating resolver on loopback (RFC 7672 §1.3)",
			how, it.Text)
	}
}

func warnUntrustedServers(cfg *config.Config) {
	if len(cfg.Get("policy_listen").Lis) == 0 {
		return // DANE is not in use
	}
	servers := cfg.Get("dns_servers")
	trust := cfg.Get("dns_trust_ad").Nets
	items := strings.Fields(servers.Value.Text)
	offs := fieldOffsets(servers.Value.Text)
	for i, addr := range servers.Addrs {
		if trusted(addr, trust) {
			continue
		}
		pos := servers.Value.Pos
		if len(items) == len(servers.Addrs) {
			pos = servers.Value.PosAt(offs[i])
		}
		cfg.Reporter.Warnf(pos, "%s", untrustedServerMessage(addr))
	}
}

func untrustedServerMessage(addr string) string {
	return "DNS server " + addr + " is not in dns_trust_ad: its answers are never DNSSEC-secure, so DANE is off (policy none or may, never dane) for every destination it answers; run a validating resolver on loopback and list it in dns_servers"
}

// logUntrustedResolvConf warns at start about servers taken from
// /etc/resolv.conf (dns_servers unset) that dns_trust_ad does not trust:
// there is no line of the configuration to point at.
func logUntrustedResolvConf(cfg *config.Config, servers []string, logger *slog.Logger) {
	if cfg.Get("dns_servers").Set || len(cfg.Get("policy_listen").Lis) == 0 {
		return
	}
	for _, addr := range servers {
		if !trusted(addr, cfg.Get("dns_trust_ad").Nets) {
			logger.Warn("configuration: /etc/resolv.conf: " + untrustedServerMessage(addr))
		}
	}
}

// trusted reports whether a server address (host:port) is in trust.
func trusted(addr string, trust []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return false
	}
	for _, p := range trust {
		if p.Contains(ap.Addr().Unmap()) {
			return true
		}
	}
	return false
}

// beyondLoopback reports whether a listener address (host:port) can be
// reached from other hosts.
func beyondLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.Unmap().IsLoopback()
}

// broad reports whether a prefix is wider than any site's MTAs: shorter
// than /8 (IPv4) or /16 (IPv6).
func broad(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return p.Bits() < 8
	}
	return p.Bits() < 16
}

func anyBroad(nets []netip.Prefix) bool {
	for _, p := range nets {
		if broad(p) {
			return true
		}
	}
	return false
}

func allLoopback(nets []netip.Prefix) bool {
	for _, p := range nets {
		if !isLoopbackPrefix(p) {
			return false
		}
	}
	return true
}

func isLoopbackPrefix(p netip.Prefix) bool {
	if p.Addr().Is4() {
		return p.Bits() >= 8 && p.Addr().IsLoopback()
	}
	return p.Bits() == 128 && p.Addr().IsLoopback()
}

// parsePrefix reads an address or CIDR prefix of a net list item.
func parsePrefix(s string) (netip.Prefix, bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), true
	}
	return netip.Prefix{}, false
}

// fieldOffsets returns the byte offsets of the space-separated fields of s.
func fieldOffsets(s string) []int {
	var offs []int
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' && s[i] != '\t' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			offs = append(offs, i)
		}
	}
	return offs
}
