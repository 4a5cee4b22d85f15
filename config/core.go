package config

import (
	"fmt"
	"strings"
)

// The main options of the core. Feature packages register their own.
func init() {
	for _, d := range []OptionDef{
		{Name: "primary_hostname", Kind: KindString, Check: checkHostName, Doc: "this host's name; default: the system host name"},
		{Name: "authserv_id", Kind: KindString, Check: checkAuthservID, Doc: "authserv-id of Authentication-Results headers (RFC 8601); default: primary_hostname"},
		{Name: "authres_strip_ids", Kind: KindString, Check: checkAuthservIDList, Doc: "other authserv-ids (colon-separated) whose Authentication-Results headers are removed from incoming mail, besides authserv_id's own"},
		{Name: "milter_listen", Kind: KindListen, Default: "inet:127.0.0.1:8894", Doc: "milter listeners, separated by spaces: inet:ADDR:PORT, inet:PORT@ADDR, unix:PATH; empty disables"},
		{Name: "policy_listen", Kind: KindListen, Default: "inet:127.0.0.1:8895", Doc: "TLS policy listeners (socketmap, tcp_table, line protocol); empty disables"},
		{Name: "dns_servers", Kind: KindServerList, Doc: "DNS resolvers to ask, separated by spaces: IP, IP:PORT, [IPv6]:PORT; default: nameserver lines of /etc/resolv.conf"},
		{Name: "dns_trust_ad", Kind: KindNetList, Default: "<; 127.0.0.0/8 ; ::1", Doc: "resolvers whose AD bit (DNSSEC validated) is trusted; others never give secure answers"},
		{Name: "dns_timeout", Kind: KindDuration, Default: "2s", Doc: "time to wait for one DNS server before trying the next"},
		{Name: "dns_retries", Kind: KindInt, Default: "2", Min: 1, Max: 10, Doc: "rounds across dns_servers before a lookup is a temporary error"},
		{Name: "dns_cache_size", Kind: KindInt, Default: "10000", Min: 0, Max: 10_000_000, Doc: "DNS answers kept in the cache; 0 disables it"},
		{Name: "dns_cache_max_ttl", Kind: KindDuration, Default: "1d", Doc: "longest time a DNS answer is cached, whatever its TTL"},
		{Name: "log_format", Kind: KindEnum, Default: "text", Enum: []string{"text", "json"}, Doc: "log line format on stderr"},
		{Name: "log_level", Kind: KindEnum, Default: "info", Enum: []string{"debug", "info", "warn", "error"}, Doc: "lowest level logged"},
		{Name: "shutdown_timeout", Kind: KindDuration, Default: "30s", Doc: "on SIGTERM, how long open sessions may take to finish"},
		{Name: "acl_timeout", Kind: KindDuration, Default: "20s", Doc: "longest time one ACL run (with its DNS lookups) may take before it defers; keep it below the MTA's milter command timeout"},
		{Name: "expansion_max_size", Kind: KindInt, Default: "64K", Min: 1024, Max: 16 << 20, Doc: "largest result of one string expansion"},
		{Name: "acl_smtp_connect", Kind: KindACLName, Doc: "ACL run when a client connects"},
		{Name: "acl_smtp_helo", Kind: KindACLName, Doc: "ACL run at HELO/EHLO"},
		{Name: "acl_smtp_mail", Kind: KindACLName, Doc: "ACL run at MAIL FROM"},
		{Name: "acl_smtp_rcpt", Kind: KindACLName, Doc: "ACL run at each RCPT TO"},
		{Name: "acl_smtp_data", Kind: KindACLName, Doc: "ACL run at the end of the message (after the headers and body)"},
	} {
		RegisterOption(d)
	}
}

// checkHostName accepts a host name: labels of letters, digits, "-" and
// "_" (and UTF-8), separated by single dots.
func checkHostName(s string) error {
	if len(s) > 253 {
		return fmt.Errorf("host name %q is longer than 253 octets", s)
	}
	for label := range strings.SplitSeq(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host name %q has an empty label or one longer than 63 octets", s)
		}
		if c, bad := nonTokenByte(label); bad {
			return fmt.Errorf("host name %q has the character %q", s, c)
		}
	}
	return nil
}

// checkAuthservID accepts an authserv-id that Authentication-Results can
// carry as it is (RFC 8601 §2.2: an RFC 2045 token; in practice a host
// name): no white space, control characters or tspecials.
func checkAuthservID(s string) error {
	if c, bad := nonTokenByte(s); bad {
		return fmt.Errorf("authserv-id %q has the character %q, which Authentication-Results cannot carry unquoted (RFC 8601 §2.2)", s, c)
	}
	return nil
}

// nonTokenByte returns the first byte of s that an RFC 2045 token cannot
// hold: white space, control characters and tspecials.
func nonTokenByte(s string) (byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?=", c) >= 0 {
			return c, true
		}
	}
	return 0, false
}

// checkAuthservIDList checks each authserv-id of a colon-separated list.
func checkAuthservIDList(s string) error {
	for _, it := range SplitList(NewValue(s, Pos{})) {
		if err := checkAuthservID(it.Text); err != nil {
			return err
		}
	}
	return nil
}
