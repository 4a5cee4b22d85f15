package config

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailsidecar/sidecar/internal/binunit"
	"github.com/mailsidecar/sidecar/internal/suggest"
)

// Kind is the type of a main option's value.
type Kind int

// Option kinds.
const (
	KindString     Kind = iota // free text
	KindBool                   // true/false/yes/no, or bare name / no_name
	KindInt                    // decimal integer, optional K/M suffix
	KindDuration               // 30s, 5m, 1h30m, 1d, 500ms
	KindPath                   // an absolute file path, or empty
	KindEnum                   // one of OptionDef.Enum
	KindListen                 // listener addresses: inet:ADDR:PORT, unix:PATH
	KindNetList                // list of IP addresses and CIDR prefixes
	KindServerList             // list of DNS servers: IP or [IP]:port or IP:port
	KindHostList               // Exim host list, matched by the acl package
	KindDomainList             // Exim domain list, matched by the acl package
	KindACLName                // the name of an ACL defined after "begin acl"
)

var kindNames = map[Kind]string{
	KindString: "string", KindBool: "boolean", KindInt: "integer", KindDuration: "duration",
	KindPath: "path", KindEnum: "choice", KindListen: "listener list", KindNetList: "address list",
	KindServerList: "server list", KindHostList: "host list", KindDomainList: "domain list",
	KindACLName: "ACL name",
}

func (k Kind) String() string { return kindNames[k] }

// OptionDef declares a main option. Packages register the options they own
// with RegisterOption, so that unknown names are errors and every option has
// a type, a default and documentation.
type OptionDef struct {
	Name     string
	Kind     Kind
	Default  string   // in configuration-file syntax
	Enum     []string // allowed values for KindEnum
	Min, Max int64    // bounds for KindInt (both zero: unbounded)
	Doc      string   // one line for `sidecar help config`
	// Check, when set, checks a KindString value (unquoted) beyond its
	// kind; its error is reported at the value.
	Check func(value string) error
}

var (
	regMu    sync.RWMutex
	registry = map[string]*OptionDef{}
)

// RegisterOption adds an option to the registry. It panics on a duplicate
// name or an invalid default: both are programming errors.
func RegisterOption(d OptionDef) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[d.Name]; dup {
		panic("config: option registered twice: " + d.Name)
	}
	if _, err := parseSetting(&d, NewValue(d.Default, Pos{File: "default"})); err != nil {
		panic(fmt.Sprintf("config: bad default for %s: %v", d.Name, err))
	}
	registry[d.Name] = &d
}

// Registered returns every registered option, sorted by name.
func Registered() []*OptionDef {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]*OptionDef, 0, len(registry))
	for _, d := range registry {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func lookupOption(name string) *OptionDef {
	regMu.RLock()
	defer regMu.RUnlock()
	return registry[name]
}

func optionNames() []string {
	var names []string
	for _, d := range Registered() {
		names = append(names, d.Name)
	}
	return names
}

// Listen is one listener address.
type Listen struct {
	Network string // "tcp" or "unix"
	Address string // host:port or a socket path
}

func (l Listen) String() string {
	if l.Network == "unix" {
		return "unix:" + l.Address
	}
	return "inet:" + l.Address
}

// Setting is the typed value of one main option.
type Setting struct {
	Def   *OptionDef
	Value Value // the text as written (or the default)
	Set   bool  // false when the default is in force
	Str   string
	Bool  bool
	Int   int64
	Dur   time.Duration
	Nets  []netip.Prefix
	Addrs []string // server list: host:port
	Lis   []Listen
}

// settingError is a value error at an offset of the value text.
type settingError struct {
	off int
	msg string
}

func (e *settingError) Error() string { return e.msg }

func errAt(off int, format string, args ...any) error {
	return &settingError{off, fmt.Sprintf(format, args...)}
}

func parseSetting(d *OptionDef, v Value) (*Setting, error) {
	s := &Setting{Def: d, Value: v, Str: v.Text}
	text := v.Text
	switch d.Kind {
	case KindString, KindHostList, KindDomainList, KindACLName:
		if len(text) >= 2 && text[0] == '"' && text[len(text)-1] == '"' {
			uq, err := strconv.Unquote(text)
			if err != nil {
				return nil, errAt(0, "bad quoted string: %v", err)
			}
			s.Str = uq
		}
		if d.Check != nil && s.Str != "" {
			if err := d.Check(s.Str); err != nil {
				return nil, errAt(0, "%s: %v", d.Name, err)
			}
		}
	case KindPath:
		if text != "" && !strings.HasPrefix(text, "/") {
			return nil, errAt(0, "%s must be an absolute path, found %q", d.Name, text)
		}
	case KindBool:
		b, ok := ParseBool(text)
		if !ok {
			return nil, errAt(0, "%s is a boolean: write true or false, found %q", d.Name, text)
		}
		s.Bool = b
	case KindInt:
		n, err := ParseInt(text)
		if err != nil {
			return nil, errAt(0, "%s: %v", d.Name, err)
		}
		if (d.Min != 0 || d.Max != 0) && (n < d.Min || n > d.Max) {
			return nil, errAt(0, "%s must be between %d and %d, found %d", d.Name, d.Min, d.Max, n)
		}
		s.Int = n
	case KindDuration:
		dur, err := ParseDuration(text)
		if err != nil {
			return nil, errAt(0, "%s: %v", d.Name, err)
		}
		s.Dur = dur
	case KindEnum:
		for _, e := range d.Enum {
			if strings.EqualFold(e, text) {
				s.Str = e
				return s, nil
			}
		}
		return nil, errAt(0, "%s must be one of %s, found %q%s", d.Name, strings.Join(d.Enum, ", "), text, suggest.Hint(text, "", d.Enum))
	case KindListen:
		for _, it := range splitWords(text) {
			l, err := ParseListen(it.text)
			if err != nil {
				return nil, errAt(it.off, "%v", err)
			}
			s.Lis = append(s.Lis, l)
		}
	case KindNetList:
		for _, it := range SplitList(v) {
			if it.Text == "" {
				continue
			}
			p, err := ParsePrefix(it.Text)
			if err != nil {
				return nil, errAt(it.Off, "%v", err)
			}
			s.Nets = append(s.Nets, p)
		}
	case KindServerList:
		for _, it := range splitWords(strings.ReplaceAll(text, ",", " ")) {
			a, err := ParseServer(it.text)
			if err != nil {
				return nil, errAt(it.off, "%v", err)
			}
			s.Addrs = append(s.Addrs, a)
		}
	}
	return s, nil
}

type wordAt struct {
	text string
	off  int
}

// splitWords splits on white space, commas and semicolons, and accepts a
// leading Exim separator change "<;".
func splitWords(s string) []wordAt {
	var out []wordAt
	i := 0
	if strings.HasPrefix(s, "<") && len(s) > 1 {
		i = 2
	}
	for i < len(s) {
		for i < len(s) && (isSpace(s[i]) || s[i] == ',' || s[i] == ';') {
			i++
		}
		j := i
		for j < len(s) && !(isSpace(s[j]) || s[j] == ',' || s[j] == ';') {
			j++
		}
		if j > i {
			out = append(out, wordAt{s[i:j], i})
		}
		i = j
	}
	return out
}

// ParseBool accepts true/false, yes/no, on/off and 1/0.
func ParseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "yes", "on", "1":
		return true, true
	case "false", "no", "off", "0":
		return false, true
	}
	return false, false
}

// ParseInt reads a decimal integer with an optional K (×1024) or M
// (×1024²) suffix, as Exim does.
func ParseInt(s string) (int64, error) {
	t, mult := binunit.Cut(s, "km")
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("expected an integer, found %q", s)
	}
	neg := n < 0
	if neg {
		n = -n
	}
	v, ok := binunit.Scale(n, mult)
	if !ok {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if neg {
		v = -v
	}
	return v, nil
}

// ParseDuration reads Exim-style durations ("30s", "5m", "1h30m", "2d",
// "1w") and Go-style ones ("500ms", "1.5s"). A bare number is seconds.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, fmt.Errorf("expected a duration such as 30s or 5m, found nothing")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, fmt.Errorf("duration %q is negative", s)
		}
		return d, nil
	}
	var total time.Duration
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return 0, fmt.Errorf("expected a duration such as 30s, 5m, 1h30m or 2d, found %q", s)
		}
		n, _ := strconv.ParseInt(rest[:i], 10, 64)
		var unit time.Duration
		switch rest[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			return 0, fmt.Errorf("unknown time unit %q in %q: use s, m, h, d or w", rest[i:i+1], s)
		}
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	return total, nil
}

// ParseListen reads `inet:ADDR:PORT`, `inet:PORT@ADDR` (the Sendmail/milter
// spelling), `inet6:[ADDR]:PORT`, `unix:PATH` or `local:PATH`.
func ParseListen(s string) (Listen, error) {
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Listen{}, fmt.Errorf("listener %q: expected inet:ADDRESS:PORT or unix:PATH", s)
	}
	switch scheme {
	case "unix", "local":
		if !strings.HasPrefix(rest, "/") {
			return Listen{}, fmt.Errorf("listener %q: the socket path must be absolute", s)
		}
		return Listen{Network: "unix", Address: rest}, nil
	case "inet", "inet6", "tcp":
		addr := rest
		if port, host, ok := strings.Cut(rest, "@"); ok {
			addr = joinHostPort(host, port)
		}
		host, port, err := splitHostPort(addr)
		if err != nil {
			return Listen{}, fmt.Errorf("listener %q: %w", s, err)
		}
		if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
			return Listen{}, fmt.Errorf("listener %q: %q is not an IP address", s, host)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return Listen{}, fmt.Errorf("listener %q: bad port %q", s, port)
		}
		return Listen{Network: "tcp", Address: joinHostPort(host, port)}, nil
	}
	return Listen{}, fmt.Errorf("listener %q: unknown scheme %q: use inet: or unix:", s, scheme)
}

func joinHostPort(host, port string) string {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 || end+1 >= len(s) || s[end+1] != ':' {
			return "", "", fmt.Errorf("expected [ADDRESS]:PORT, found %q", s)
		}
		return s[1:end], s[end+2:], nil
	}
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return "", "", fmt.Errorf("expected ADDRESS:PORT, found %q", s)
	}
	return s[:i], s[i+1:], nil
}

// ParsePrefix reads an IP address or a CIDR prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad network %q: expected ADDRESS/BITS", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad IP address %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseServer reads a DNS server address: IP, IP:port or [IPv6]:port.
func ParseServer(s string) (string, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", fmt.Errorf("bad DNS server %q: expected an IP address, IP:PORT or [IPv6]:PORT", s)
	}
	return ap.String(), nil
}
