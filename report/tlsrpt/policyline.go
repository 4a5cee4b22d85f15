package tlsrpt

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// PolicyLine is what one policy socket log line ("msg=policy", text or
// JSON, alone or after a syslog prefix) says about a next-hop domain.
type PolicyLine struct {
	Time     time.Time
	Domain   string
	Type     PolicyType
	Strings  []string // policy-string
	MXHost   []string // mx-host (MTA-STS)
	STSError string   // a failure to fetch the MTA-STS policy
	// STSResult is the failure's RFC 8460 result type: the line's
	// sts_result, sts-policy-fetch-error for older lines without it.
	STSResult ResultType
}

// parsePolicyLine reads a sidecar policy line; fallback is the time of
// its syslog prefix, used when the line has no time attribute.
func parsePolicyLine(s string, fallback time.Time) (PolicyLine, bool) {
	var attrs map[string]string
	if i := strings.Index(s, `{"time"`); i >= 0 && strings.Contains(s, `"msg":"policy"`) {
		attrs = jsonAttrs(s[i:])
	} else if strings.Contains(s, "msg=policy ") {
		attrs = textAttrs(s)
	}
	if attrs["msg"] != "policy" || attrs["type"] == "" || attrs["nexthop"] == "" {
		return PolicyLine{}, false
	}
	pl := PolicyLine{Time: fallback, Type: PolicyType(attrs["type"]), STSError: attrs["sts_error"]}
	if pl.STSError != "" {
		switch r := ResultType(attrs["sts_result"]); r {
		case STSPolicyInvalid, STSWebPKIInvalid:
			pl.STSResult = r
		default:
			pl.STSResult = STSPolicyFetchError
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, attrs["time"]); err == nil {
		pl.Time = t
	}
	nh := strings.ToLower(attrs["nexthop"])
	if strings.HasPrefix(nh, "[") {
		return PolicyLine{}, false // a [host] next hop: no policy domain
	}
	if i := strings.LastIndexByte(nh, ':'); i > 0 {
		nh = nh[:i]
	}
	pl.Domain = strings.TrimSuffix(nh, ".")
	switch pl.Type {
	case PolicyTLSA:
		for _, r := range strings.Split(attrs["tlsa"], ",") {
			if r != "" {
				pl.Strings = append(pl.Strings, r)
			}
		}
	case PolicySTS:
		pl.Strings = []string{"version: STSv1", "mode: " + attrs["sts_mode"]}
		for _, m := range strings.Split(attrs["sts_mx"], ",") {
			if m != "" {
				pl.Strings = append(pl.Strings, "mx: "+m)
				pl.MXHost = append(pl.MXHost, m)
			}
		}
		pl.Strings = append(pl.Strings, "max_age: "+attrs["sts_max_age"])
	case PolicyNotFound:
	default:
		return PolicyLine{}, false
	}
	return pl, true
}

// textAttrs reads slog's text format: key=value, values quoted as Go
// strings when they need it.
func textAttrs(s string) map[string]string {
	m := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		key := s[:eq]
		if i := strings.LastIndexByte(key, ' '); i >= 0 {
			key = key[i+1:] // a syslog prefix before the first key
		}
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				break
			}
			val, _ = strconv.Unquote(q)
			s = s[len(q):]
		} else {
			val, s, _ = strings.Cut(s, " ")
		}
		m[key] = val
	}
	return m
}

// jsonAttrs reads slog's JSON format; non-string values are kept as
// their JSON text.
func jsonAttrs(s string) map[string]string {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		var str string
		if err := json.Unmarshal(v, &str); err == nil {
			m[k] = str
		} else {
			m[k] = string(v)
		}
	}
	return m
}
