package tlspolicy

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DefaultPort is the SMTP port of next hops without a :port suffix.
const DefaultPort = 25

// NextHop is a parsed SMTP next-hop destination, as Postfix writes it in
// transport maps and uses as the key of smtp_tls_policy_maps.
type NextHop struct {
	// Name is the domain (MX lookup) or the host ([host] forms), lower
	// case, without a trailing dot. Empty for IP literals.
	Name string
	// NoMX is true for the [host] forms: the host itself, no MX lookup.
	NoMX bool
	// Port is the TCP port, DefaultPort unless a :port suffix was given.
	Port int
	// IP is set for address literals such as [192.0.2.1] or [ipv6:2001:db8::1].
	IP netip.Addr
}

// ErrBadNextHop is wrapped by ParseNextHop's errors.
var ErrBadNextHop = errors.New("bad next hop")

// ParseNextHop reads "domain", "domain:port", "[host]" or "[host]:port"
// (also "[192.0.2.1]" and "[ipv6:2001:db8::1]"). Names are lower-cased and
// a trailing dot is removed.
func ParseNextHop(s string) (NextHop, error) {
	bad := func(why string) (NextHop, error) {
		return NextHop{}, fmt.Errorf("%w %q: %s", ErrBadNextHop, s, why)
	}
	h := NextHop{Port: DefaultPort}
	rest := strings.TrimSpace(s)
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return bad("missing ]")
		}
		h.NoMX = true
		inner, tail := rest[1:end], rest[end+1:]
		rest = inner
		if tail != "" {
			p, ok := strings.CutPrefix(tail, ":")
			if !ok {
				return bad("unexpected text after ]")
			}
			port, err := parsePort(p)
			if err != nil {
				return bad(err.Error())
			}
			h.Port = port
		}
		lit := inner
		if v6, ok := cutPrefixFold(inner, "ipv6:"); ok {
			lit = v6
		}
		if ip, err := netip.ParseAddr(lit); err == nil {
			h.IP = ip.Unmap()
			return h, nil
		}
	} else if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		port, err := parsePort(rest[i+1:])
		if err != nil {
			return bad(err.Error())
		}
		h.Port, rest = port, rest[:i]
	}
	name := strings.ToLower(strings.TrimSuffix(rest, "."))
	if err := checkHostName(name); err != nil {
		return bad(err.Error())
	}
	h.Name = name
	return h, nil
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 || p[0] == '+' {
		return 0, fmt.Errorf("bad port %q", p)
	}
	return n, nil
}

// checkHostName accepts LDH host names (and "_", which some MX hosts use),
// 1 to 253 octets, labels of 1 to 63 octets.
func checkHostName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 253 {
		return errors.New("name longer than 253 octets")
	}
	label := 0 // octets of the label so far; the name is walked once, without splitting it (every request parses one)
	for i := 0; i <= len(name); i++ {
		if i == len(name) || name[i] == '.' {
			if label == 0 || label > 63 {
				return errors.New("empty label or label longer than 63 octets")
			}
			label = 0
			continue
		}
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("invalid character %q in name", c)
		}
		label++
	}
	return nil
}

// String returns the next hop in Postfix's notation: "example.com",
// "example.com:2525", "[mx.example.com]", "[mx.example.com]:587".
func (h NextHop) String() string {
	s := h.Name
	if h.IP.IsValid() {
		s = h.IP.String()
		if h.IP.Is6() {
			s = "ipv6:" + s
		}
	}
	if h.NoMX {
		s = "[" + s + "]"
	}
	if h.Port != DefaultPort {
		s += ":" + strconv.Itoa(h.Port)
	}
	return s
}

// TLSABase returns the TLSA query name for a host and port: _PORT._tcp.HOST
// (RFC 6698 §3, RFC 7672 §2.2.3).
func TLSABase(host string, port int) string {
	return "_" + strconv.Itoa(port) + "._tcp." + host
}
