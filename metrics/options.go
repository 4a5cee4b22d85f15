package metrics

import (
	"github.com/mailsidecar/sidecar/config"
)

// The options this package owns.
func init() {
	for _, d := range []config.OptionDef{
		{Name: OptListen, Kind: config.KindListen, Default: "", Doc: "Prometheus metrics, /healthz and /readyz over HTTP: inet:ADDR:PORT listeners separated by spaces (inet:127.0.0.1:9894, say); empty (the default) disables"},
		{Name: OptAllow, Kind: config.KindNetList, Default: "<; 127.0.0.0/8 ; ::1", Doc: "client addresses allowed to connect to metrics_listen; others are disconnected at once"},
		{Name: OptReadyInterval, Kind: config.KindDuration, Default: "1m", Doc: "/readyz answers ready while a DNS server answered within this interval (a query of the root's NS records is sent when none did)"},
	} {
		config.RegisterOption(d)
	}
	config.RegisterCompiler(config.Compiler{Name: "metrics", Compile: func(cfg *config.Config) (any, error) {
		checkListen(cfg)
		return nil, nil
	}})
}

// Option names.
const (
	OptListen        = "metrics_listen"
	OptAllow         = "metrics_allow"
	OptReadyInterval = "metrics_ready_interval"
)

// checkListen refuses unix sockets for metrics_listen: Prometheus scrapes
// over TCP.
func checkListen(cfg *config.Config) {
	s := cfg.Get(OptListen)
	for _, l := range s.Lis {
		if l.Network != "tcp" {
			cfg.Reporter.Errorf(s.Value.Pos, "%s: %s is not a TCP listener: Prometheus scrapes over TCP; write inet:127.0.0.1:9894", OptListen, l)
		}
	}
}
