package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 §5). Its String is the RFC token.
type Mode string

// Policy modes.
const (
	// ModeEnforce: deliver only over TLS to an MX host that matches a
	// pattern and presents a PKIX-valid certificate for its name.
	ModeEnforce Mode = "enforce"
	// ModeTesting: deliver as without a policy, but report failures
	// (RFC 8460).
	ModeTesting Mode = "testing"
	// ModeNone: the domain has withdrawn its policy.
	ModeNone Mode = "none"
)

func (m Mode) String() string { return string(m) }

// Bounds of a policy.
const (
	// MaxPolicySize is the largest policy body accepted, in octets.
	MaxPolicySize = 64 << 10
	// MaxMaxAge is the largest max_age (RFC 8461 §3.2: 31557600 seconds,
	// about a year).
	MaxMaxAge = 31557600 * time.Second
	// MaxPatterns bounds the mx patterns of one policy, so that the
	// answer to the MTA stays small (Postfix's socketmap_max_reply).
	MaxPatterns = 64
)

// ErrPolicy is wrapped by every error of ParsePolicy.
var ErrPolicy = errors.New("invalid MTA-STS policy")

// Policy is a parsed MTA-STS policy (RFC 8461 §3.2).
type Policy struct {
	Mode   Mode
	MX     []Pattern // in the order of the policy; empty only for ModeNone
	MaxAge time.Duration
}

// Pattern is an mx pattern: a host name, or "*." and a domain, matching
// a host name with exactly one more label on the left (RFC 8461 §4.1).
// Patterns are lower case and without a trailing dot.
type Pattern string

func (p Pattern) String() string { return string(p) }

// Wildcard reports whether p is "*." and a domain.
func (p Pattern) Wildcard() bool { return strings.HasPrefix(string(p), "*.") }

// Match reports whether the MX host name matches p: equal names, or for
// "*.example.com" a name with one label before "example.com"
// ("mail.example.com", not "example.com" nor "a.b.example.com").
func (p Pattern) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if !p.Wildcard() {
		return host == string(p)
	}
	label, rest, ok := strings.Cut(host, ".")
	return ok && label != "" && rest == string(p[2:])
}

// ParsePattern checks and normalises one mx pattern: a domain of LDH
// labels, optionally preceded by "*." (the wildcard is allowed only as
// the whole leftmost label).
func ParsePattern(s string) (Pattern, error) {
	p := strings.ToLower(strings.TrimSuffix(s, "."))
	name := strings.TrimPrefix(p, "*.")
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("mx pattern %q: a wildcard may only be the whole leftmost label (\"*.example.com\")", s)
	}
	if err := checkDomain(name); err != nil {
		return "", fmt.Errorf("mx pattern %q: %v", s, err)
	}
	return Pattern(p), nil
}

// checkDomain accepts RFC 5321 domains: LDH labels of 1 to 63 octets, not
// beginning or ending with "-", at most 253 octets in all.
func checkDomain(name string) error {
	if name == "" {
		return errors.New("empty domain")
	}
	if len(name) > 253 {
		return errors.New("longer than 253 octets")
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("empty label or label longer than 63 octets")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q begins or ends with a hyphen", label)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnumByte(c) && c != '-' {
				return fmt.Errorf("invalid character %q", c)
			}
		}
	}
	return nil
}

// ParsePolicy parses a policy body (RFC 8461 §3.2): "key: value" lines
// ended by LF or CRLF. version (STSv1), mode and max_age are required,
// and at least one mx unless the mode is none; of repeated keys other
// than mx the first counts; unknown keys and blank lines are ignored.
// Anything else —
// a line without a colon, a value outside the grammar, more than
// MaxPolicySize octets or MaxPatterns patterns — makes the policy
// invalid. The error wraps ErrPolicy.
func ParsePolicy(body []byte) (*Policy, error) {
	bad := func(format string, a ...any) (*Policy, error) {
		return nil, fmt.Errorf("%w: %s", ErrPolicy, fmt.Sprintf(format, a...))
	}
	if len(body) > MaxPolicySize {
		return bad("larger than %d octets", MaxPolicySize)
	}
	var (
		p                     Policy
		version, mode, maxAge bool
		lineNo                int
		seen                  = map[Pattern]bool{}
	)
	for text := string(body); text != ""; {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		lineNo++
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimRight(line, " \t") == "" {
			continue // blank lines, as many published policies have
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok || !isFieldName(key) {
			return bad("line %d is not \"key: value\"", lineNo)
		}
		value = strings.Trim(value, " \t")
		for i := 0; i < len(value); i++ {
			if c := value[i]; (c < 0x20 || c > 0x7e) && c != '\t' {
				return bad("line %d: control or non-ASCII character in the value", lineNo)
			}
		}
		switch key {
		case "version":
			if version {
				continue
			}
			if value != "STSv1" {
				return bad("version %q, want STSv1", value)
			}
			version = true
		case "mode":
			if mode {
				continue
			}
			switch m := Mode(value); m {
			case ModeEnforce, ModeTesting, ModeNone:
				p.Mode, mode = m, true
			default:
				return bad("mode %q, want enforce, testing or none", value)
			}
		case "max_age":
			if maxAge {
				continue
			}
			if value == "" || len(value) > 10 || strings.Trim(value, "0123456789") != "" {
				return bad("max_age %q is not 1 to 10 digits", value)
			}
			n, _ := strconv.ParseInt(value, 10, 64)
			if d := time.Duration(n) * time.Second; d > MaxMaxAge {
				return bad("max_age %d is above %d seconds", n, int64(MaxMaxAge/time.Second))
			}
			p.MaxAge, maxAge = time.Duration(n)*time.Second, true
		case "mx":
			pat, err := ParsePattern(value)
			if err != nil {
				return bad("line %d: %v", lineNo, err)
			}
			if seen[pat] {
				continue
			}
			if len(p.MX) == MaxPatterns {
				return bad("more than %d mx patterns", MaxPatterns)
			}
			seen[pat] = true
			p.MX = append(p.MX, pat)
		}
	}
	switch {
	case !version:
		return bad("no version field")
	case !mode:
		return bad("no mode field")
	case !maxAge:
		return bad("no max_age field")
	case len(p.MX) == 0 && p.Mode != ModeNone:
		return bad("no mx field in a %s policy", p.Mode)
	}
	return &p, nil
}

// MatchMX returns the first pattern that host matches, and false when
// none does.
func (p *Policy) MatchMX(host string) (Pattern, bool) {
	for _, pat := range p.MX {
		if pat.Match(host) {
			return pat, true
		}
	}
	return "", false
}

// String writes the policy back in its text form (LF line ends).
func (p *Policy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: STSv1\nmode: %s\n", p.Mode)
	for _, m := range p.MX {
		fmt.Fprintf(&b, "mx: %s\n", m)
	}
	fmt.Fprintf(&b, "max_age: %d\n", int64(p.MaxAge/time.Second))
	return b.String()
}
