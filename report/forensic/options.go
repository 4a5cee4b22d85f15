package forensic

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/config"
)

// The main options of failure reports. dmarc_forensic_sender belongs to
// the DMARC feature (package checks), as Exim names it.
const (
	OptSpool       = "dmarc_forensic_spool"
	OptRate        = "dmarc_forensic_rate"
	OptIncludeBody = "dmarc_forensic_include_body"
	OptRedact      = "dmarc_forensic_redact"
)

// DefaultRate is dmarc_forensic_rate's default: ten reports an hour per
// policy domain.
const DefaultRate = "10/1h"

func init() {
	for _, d := range []config.OptionDef{
		{Name: OptSpool, Kind: config.KindPath, Default: "/var/spool/sidecar/forensic",
			Doc: "directory where the daemon spools DMARC failure reports until they are sent over report_smtp"},
		{Name: OptRate, Kind: config.KindString, Default: DefaultRate, Check: func(s string) error { _, err := ParseRate(s); return err },
			Doc: "most DMARC failure reports per policy domain: COUNT/PERIOD (token bucket; 10/1h: ten at once, then one every 6 minutes)"},
		{Name: OptIncludeBody, Kind: config.KindBool, Default: "false",
			Doc: "include the start of the message body (at most 64 KiB) in DMARC failure reports; default: the header only"},
		{Name: OptRedact, Kind: config.KindBool, Default: "false",
			Doc: "hide the recipients in DMARC failure reports (RFC 6590): their local-parts become keyed hashes, display names are dropped"},
	} {
		config.RegisterOption(d)
	}
}

// Rate is a token bucket: at most Count reports at once, refilled at
// Count per Period.
type Rate struct {
	Count  int
	Period time.Duration
}

func (r Rate) String() string { return fmt.Sprintf("%d/%s", r.Count, r.Period) }

// MaxRateCount bounds the count of a rate: a limit above it is no limit.
const MaxRateCount = 1_000_000

// ParseRate parses COUNT/PERIOD: a positive count and a duration in
// Exim's units (30s, 5m, 1h, 2d, 1w) or Go's (90m, 1h30m).
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q is not COUNT/PERIOD (for example 10/1h)", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count < 1 || count > MaxRateCount {
		return Rate{}, fmt.Errorf("count %q is not a number from 1 to %d", strings.TrimSpace(n), MaxRateCount)
	}
	d, err := parsePeriod(strings.TrimSpace(per))
	if err != nil {
		return Rate{}, fmt.Errorf("period %q: %v (for example 1h, 30m or 1d)", strings.TrimSpace(per), err)
	}
	return Rate{Count: count, Period: d}, nil
}

// parsePeriod reads a duration of at least one second and at most a
// year: Exim's single-unit form (5m, 2d, 1w) or Go's.
func parsePeriod(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	var d time.Duration
	if last := s[len(s)-1]; last == 'd' || last == 'w' {
		n, err := strconv.Atoi(s[:len(s)-1])
		if err != nil || n < 1 || n > 366 {
			return 0, errors.New("not a duration")
		}
		d = time.Duration(n) * 24 * time.Hour
		if last == 'w' {
			d *= 7
		}
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, errors.New("not a duration")
		}
	}
	if d < time.Second || d > 366*24*time.Hour {
		return 0, errors.New("must be from 1s to 366d")
	}
	return d, nil
}
