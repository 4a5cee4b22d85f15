package daemon

// The wiring of metrics_listen: the metrics package observes the
// resolver, the milter and the policy socket through their observer
// interfaces, and serves /metrics, /healthz and /readyz. Without
// metrics_listen nothing is observed.

import (
	"context"
	"net"
	"os"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/metrics"
	"github.com/mailsidecar/sidecar/report/forensic"
	"github.com/mailsidecar/sidecar/resolver"
)

// newMetrics returns the collectors when metrics_listen is set, else nil.
func newMetrics(cfg *config.Config) *metrics.Metrics {
	if len(cfg.Get(metrics.OptListen).Lis) == 0 {
		return nil
	}
	return metrics.New()
}

// resolverObserver is m as a resolver.Observer; nil (not a nil pointer in
// an interface) without metrics.
func resolverObserver(m *metrics.Metrics) resolver.Observer {
	if m == nil {
		return nil
	}
	return m
}

// observe makes the runtime's milter and policy socket report to m.
func observe(rt *Runtime, m *metrics.Metrics) {
	if m == nil {
		return
	}
	rt.Milter.Observer = m
	rt.Policy.SetObserver(m)
}

// Metrics returns the daemon's collectors, nil without metrics_listen.
func (d *Daemon) Metrics() *metrics.Metrics { return d.metrics }

// startMetrics prepares the metrics endpoint for the first runtime.
func (d *Daemon) startMetrics(m *metrics.Metrics, rt *Runtime) {
	if m == nil {
		return
	}
	d.metrics = m
	d.mserver = metrics.NewServer(m.Handler())
	m.WatchConnections("milter", d.milter.Sessions)
	m.WatchConnections("policy", d.policy.Active)
	m.WatchReports("failure", forensic.Results[:], d.spoolDepth, forensic.Counted)
	m.ConfigLoaded(configSource(d.path), false)
	m.SetDNSProbe(rt.Resolver.Probe, rt.Config.Duration(metrics.OptReadyInterval))
}

// serveMetrics serves one metrics_listen listener.
func (d *Daemon) serveMetrics(l net.Listener) error {
	if d.mserver == nil {
		return nil
	}
	return d.mserver.Serve(l, d.rt.Load().Config.Get(metrics.OptAllow).Nets)
}

// reloaded records a reload: rt is the new runtime, nil when the reload
// failed.
func (d *Daemon) reloaded(rt *Runtime) {
	m := d.metrics
	if m == nil {
		return
	}
	if rt == nil {
		m.ReloadFailed()
		return
	}
	m.ConfigLoaded(configSource(d.path), true)
	m.SetDNSProbe(rt.Resolver.Probe, rt.Config.Duration(metrics.OptReadyInterval))
}

// stopMetrics stops the metrics endpoint, after the sessions drained.
func (d *Daemon) stopMetrics(ctx context.Context) {
	if d.mserver == nil {
		return
	}
	d.metrics.SetUp("shutting down")
	_ = d.mserver.Shutdown(ctx)
}

// configSource is the text of the configuration at path ("" for the
// embedded default), for the configuration hash.
func configSource(path string) []byte {
	if path == "" {
		return []byte(config.DefaultText)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return src
}
