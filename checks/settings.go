package checks

import (
	"strings"

	"github.com/mailsidecar/sidecar/acl"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/spf"
)

// DefaultGuess is the default of the spf_guess option, Exim's.
const DefaultGuess = "v=spf1 a/24 mx/24 ptr ?all"

// The main options of the SPF feature.
const (
	OptSPFGuess          = "spf_guess"
	OptSPFAuthRes        = "spf_authres"
	OptSPFReceivedHeader = "spf_received_header"
)

func registerOptions() {
	for _, d := range []config.OptionDef{
		{Name: OptSPFGuess, Kind: config.KindString, Default: DefaultGuess,
			Doc: "SPF record the spf_guess condition evaluates for a domain that publishes none (\"v=spf1\" may be left out)"},
		{Name: OptSPFAuthRes, Kind: config.KindBool, Default: "true",
			Doc: "check SPF at DATA for every message and report it in Authentication-Results (spf=... smtp.mailfrom=/smtp.helo=)"},
		{Name: OptSPFReceivedHeader, Kind: config.KindBool, Default: "false",
			Doc: "add a Received-SPF header (RFC 7208 §9.1) on top of every message, with the SPF check of its MAIL FROM (or HELO)"},
	} {
		config.RegisterOption(d)
	}
}

// Settings are the main options of the SPF feature.
type Settings struct {
	// Guess is the record spf_guess evaluates for a domain without an
	// SPF record, always starting with "v=spf1"; "" makes spf_guess the
	// same as spf.
	Guess string
	// AuthRes: evaluate SPF at DATA and add it to Txn.AuthResults.
	AuthRes bool
	// ReceivedHeader: add a Received-SPF header at DATA.
	ReceivedHeader bool
}

// DefaultSettings are the settings of a configuration that sets none of
// the SPF options.
func DefaultSettings() Settings {
	return Settings{Guess: DefaultGuess, AuthRes: true}
}

// SettingsFrom reads the SPF options of a loaded configuration. The error,
// a config.ErrorList, points at a spf_guess value that is not a valid SPF
// record.
func SettingsFrom(cfg *config.Config) (Settings, error) {
	s := Settings{
		Guess:          normalizeGuess(cfg.String(OptSPFGuess)),
		AuthRes:        cfg.Bool(OptSPFAuthRes),
		ReceivedHeader: cfg.Bool(OptSPFReceivedHeader),
	}
	if s.Guess != "" {
		if _, err := spf.ParseRecord(s.Guess); err != nil {
			e := cfg.ErrorAt(cfg.Get(OptSPFGuess).Value.Pos,
				"%s is not a valid SPF record: %v (for example: %s = %s)", OptSPFGuess, err, OptSPFGuess, DefaultGuess)
			return DefaultSettings(), config.ErrorList{e}
		}
	}
	return s, nil
}

// normalizeGuess trims a guess record and puts "v=spf1" in front of it
// when it is left out.
func normalizeGuess(g string) string {
	g = strings.TrimSpace(g)
	if g == "" {
		return ""
	}
	if len(g) < 6 || !strings.EqualFold(g[:6], "v=spf1") || (len(g) > 6 && g[6] != ' ') {
		g = "v=spf1 " + g
	}
	return g
}

// featureName is the name under which the SPF settings are kept on a
// compiled acl.Program.
const featureName = "spf"

// settingsOf returns the SPF settings of the Program running t.
func settingsOf(t *acl.Txn) Settings {
	if s, ok := t.Feature(featureName).(Settings); ok {
		return s
	}
	return DefaultSettings()
}

func registerConfigurer(reg *acl.Registry) {
	reg.AddConfigurer(acl.Configurer{Name: featureName, Configure: func(cfg *config.Config) (any, error) {
		s, err := SettingsFrom(cfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	}})
}
