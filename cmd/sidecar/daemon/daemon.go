// Package daemon wires sidecar together: it loads and compiles the
// configuration, builds the resolver, opens the milter and policy
// listeners, reloads on request and drains on shutdown. cmd/sidecar adds
// the signals.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/metrics"
	"github.com/mailsidecar/sidecar/milter"
	"github.com/mailsidecar/sidecar/report/forensic/deliver"
	"github.com/mailsidecar/sidecar/resolver"
	"github.com/mailsidecar/sidecar/tlspolicy"
)

// Runtime is one loaded configuration and everything built from it. It is
// replaced as a whole on reload; sessions keep the one they started with.
type Runtime struct {
	Config   *config.Config
	Program  *acl.Program
	Resolver *resolver.Resolver
	Services *acl.Services
	Milter   *milter.Env
	Policy   *tlspolicy.Env
	// Forensic sends the spooled DMARC failure reports.
	Forensic *deliver.Sender

	// stopBackground ends the background work started for this
	// configuration (the MTA-STS refresh) and waits for it; nil when none
	// was started.
	stopBackground func()
}

// startBackground starts the work rt does while it is in force: the
// refresh of the cached MTA-STS policies and the sender of DMARC failure
// reports.
func (rt *Runtime) startBackground() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { rt.Policy.Run(ctx) })
	if rt.Forensic != nil {
		wg.Go(func() { rt.Forensic.Run(ctx) })
	}
	rt.stopBackground = func() { cancel(); wg.Wait() }
}

// stop ends rt's background work, if any was started.
func (rt *Runtime) stop() {
	if rt.stopBackground != nil {
		rt.stopBackground()
		rt.stopBackground = nil
	}
}

// Load reads the configuration at path ("" for the embedded default) and
// compiles it with reg. The error is a config.ErrorList when the file has
// problems.
func Load(path string, reg *acl.Registry) (*config.Config, *acl.Program, error) {
	var cfg *config.Config
	var err error
	if path == "" {
		cfg, err = config.Load(config.DefaultName, config.DefaultText)
	} else {
		cfg, err = config.LoadFile(path)
	}
	if cfg == nil {
		return nil, nil, err // the file could not be read
	}
	warnExposure(cfg)
	checkSockets(cfg)
	if err == nil {
		err = cfg.Reporter.List.Err()
	}
	// Compile the ACLs even when the options have errors, so that one run
	// reports every problem.
	prog, cerr := acl.Compile(cfg, reg)
	if err != nil || cerr != nil {
		all := cfg.Reporter.List
		all.Sort()
		return cfg, nil, all
	}
	cfg.Reporter.List.Sort() // warnings in file order
	return cfg, prog, nil
}

// Build makes a Runtime from a compiled configuration.
func Build(cfg *config.Config, prog *acl.Program, logger *slog.Logger) (*Runtime, error) {
	return build(cfg, prog, logger, nil)
}

// build makes a Runtime whose resolver, milter and policy socket report
// to m (nil: no metrics).
func build(cfg *config.Config, prog *acl.Program, logger *slog.Logger, m *metrics.Metrics) (*Runtime, error) {
	host := cfg.String("primary_hostname")
	if host == "" {
		host, _ = os.Hostname()
	}
	authserv := cfg.String("authserv_id")
	if authserv == "" {
		authserv = host
	}
	cacheSize := int(cfg.Int("dns_cache_size"))
	if cacheSize == 0 {
		cacheSize = -1
	}
	trust := cfg.Get("dns_trust_ad").Nets
	if trust == nil {
		trust = []netip.Prefix{}
	}
	res, err := resolver.New(resolver.Options{
		Servers:   cfg.Get("dns_servers").Addrs,
		TrustAD:   trust,
		Timeout:   cfg.Duration("dns_timeout"),
		Attempts:  int(cfg.Int("dns_retries")),
		CacheSize: cacheSize,
		MaxTTL:    cfg.Duration("dns_cache_max_ttl"),
		Observer:  resolverObserver(m),
	})
	if err != nil {
		return nil, fmt.Errorf("DNS resolver: %w", err)
	}
	logUntrustedResolvConf(cfg, res.Servers(), logger)
	svc := &acl.Services{DNS: res, PrimaryHostname: host, AuthservID: authserv, Now: time.Now}
	policy, err := tlspolicy.NewEnv(cfg, res, logger)
	if err != nil {
		return nil, fmt.Errorf("TLS policy: %w", err)
	}
	rt := &Runtime{
		Config: cfg, Program: prog, Resolver: res, Services: svc,
		Milter: &milter.Env{Program: prog, Services: svc, Logger: logger, AuthservID: authserv, StripIDs: stripIDs(cfg),
			Limits: milter.LimitsFromConfig(cfg)},
		Policy:   policy,
		Forensic: forensicSender(cfg, res, host, logger),
	}
	observe(rt, m)
	return rt, nil
}

func stripIDs(cfg *config.Config) []string {
	var ids []string
	for _, it := range config.SplitList(cfg.Get("authres_strip_ids").Value) {
		if it.Text != "" {
			ids = append(ids, it.Text)
		}
	}
	return ids
}

// NewLogger returns the slog logger the configuration asks for.
func NewLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Daemon is a running sidecar.
type Daemon struct {
	path   string
	reg    *acl.Registry
	stderr io.Writer
	logger *slog.Logger

	rt      atomic.Pointer[Runtime]
	milter  *milter.Server
	policy  *tlspolicy.Server
	mu      sync.Mutex
	started bool // Start ran: reloaded configurations start their background work
	lis     []net.Listener
	addrs   map[string][]net.Addr // option -> bound addresses
	serveWG sync.WaitGroup
	metrics *metrics.Metrics // nil when metrics_listen is empty
	mserver *metrics.Server
}

// New loads the configuration at path ("" for the embedded default) and
// prepares a daemon; nothing listens until Start.
func New(path string, reg *acl.Registry, stderr io.Writer) (*Daemon, error) {
	cfg, prog, err := Load(path, reg)
	if err != nil {
		return nil, err
	}
	logger := NewLogger(stderr, cfg.String("log_format"), cfg.String("log_level"))
	for _, w := range cfg.Reporter.List.Warnings() {
		logger.Warn("configuration: " + w.Error())
	}
	m := newMetrics(cfg)
	rt, err := build(cfg, prog, logger, m)
	if err != nil {
		return nil, err
	}
	// The features' files (the DMARC history file) are taken now; one
	// already open for the same path is reopened (rotation on SIGHUP).
	if err := prog.Attach(); err != nil {
		prog.Detach()
		return nil, err
	}
	d := &Daemon{path: path, reg: reg, stderr: stderr, logger: logger, addrs: map[string][]net.Addr{}}
	d.rt.Store(rt)
	d.milter = milter.NewServer(func() *milter.Env { return d.rt.Load().Milter })
	d.policy = tlspolicy.NewServer(func() *tlspolicy.Env { return d.rt.Load().Policy })
	d.startMetrics(m, rt)
	return d, nil
}

// Logger returns the daemon's logger.
func (d *Daemon) Logger() *slog.Logger { return d.logger }

// Runtime returns the configuration in force.
func (d *Daemon) Runtime() *Runtime { return d.rt.Load() }

// Addrs returns the addresses bound for "milter_listen" or "policy_listen".
func (d *Daemon) Addrs(option string) []net.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addrs[option]
}

// Start opens the listeners and serves them in the background.
func (d *Daemon) Start() error {
	cfg := d.rt.Load().Config
	for _, spec := range []struct {
		option string
		serve  func(net.Listener) error
	}{
		{"milter_listen", d.milter.Serve},
		{"policy_listen", d.policy.Serve},
		{metrics.OptListen, d.serveMetrics},
	} {
		var perms socketPerms // metrics_listen has TCP listeners only
		if spec.option != metrics.OptListen {
			perms = socketPermsFor(cfg, spec.option)
		}
		for _, l := range cfg.Get(spec.option).Lis {
			ln, err := listen(l, perms)
			if err != nil {
				d.closeListeners()
				return fmt.Errorf("%s %s: %w", spec.option, l, err)
			}
			d.mu.Lock()
			d.lis = append(d.lis, ln)
			d.addrs[spec.option] = append(d.addrs[spec.option], ln.Addr())
			d.mu.Unlock()
			d.logger.Info("listening", "option", spec.option, "address", l.String(), "bound", ln.Addr().String())
			serve := spec.serve
			d.serveWG.Add(1)
			go func() {
				defer d.serveWG.Done()
				if err := serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
					d.logger.Error("listener stopped", "address", ln.Addr().String(), "error", err)
				}
			}()
		}
	}
	d.mu.Lock()
	d.started = true
	d.rt.Load().startBackground()
	d.mu.Unlock()
	if d.metrics != nil {
		d.metrics.SetUp("")
	}
	return nil
}

func listen(l config.Listen, perms socketPerms) (net.Listener, error) {
	if l.Network == "unix" {
		return listenUnix(l.Address, perms)
	}
	// No TCP keep-alive on accepted connections: the peers are MTAs on
	// this host or the next, both servers end idle connections themselves,
	// and Go's keep-alive set-up costs four setsockopt calls per
	// connection, one connection per SMTP session for the milter.
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), "tcp", l.Address)
}

func (d *Daemon) closeListeners() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, l := range d.lis {
		l.Close()
	}
	d.lis = nil
}

// Reload loads the configuration again. On any error the running
// configuration stays in force and every problem is logged.
func (d *Daemon) Reload() error {
	cfg, prog, err := Load(d.path, d.reg)
	if err != nil {
		for _, e := range config.AsList(err) {
			d.logger.Error("reload failed, keeping the running configuration", "error", e.Error())
		}
		d.reloaded(nil)
		return err
	}
	rt, err := build(cfg, prog, d.logger, d.metrics)
	if err == nil {
		if err = prog.Attach(); err != nil {
			prog.Detach()
		}
	}
	if err != nil {
		d.logger.Error("reload failed, keeping the running configuration", "error", err.Error())
		d.reloaded(nil)
		return err
	}
	old := d.rt.Load().Config
	for _, opt := range []string{"milter_listen", "policy_listen", metrics.OptListen, metrics.OptAllow, "log_format", "log_level"} {
		if old.Get(opt).Value.Text != cfg.Get(opt).Value.Text {
			d.logger.Warn("option changed; it takes effect after a restart", "option", opt)
		}
	}
	for _, w := range cfg.Reporter.List.Warnings() {
		d.logger.Warn("configuration: " + w.Error())
	}
	d.mu.Lock()
	if d.started {
		rt.startBackground()
	}
	prev := d.rt.Swap(rt)
	prev.stop()
	d.mu.Unlock()
	// Sessions still running under the previous configuration keep
	// writing: a history file the new one names too stays open, one it
	// no longer names is opened for each of their records.
	if err := prev.Program.Detach(); err != nil {
		d.logger.Warn("closing the previous configuration's files", "error", err.Error())
	}
	d.reloaded(rt)
	d.logger.Info("configuration reloaded", "file", cfgName(d.path))
	return nil
}

func cfgName(path string) string {
	if path == "" {
		return config.DefaultName
	}
	return path
}

// Shutdown stops accepting, lets open sessions finish until
// shutdown_timeout, and returns.
func (d *Daemon) Shutdown() error {
	timeout := d.rt.Load().Config.Duration("shutdown_timeout")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d.closeListeners()
	var errs []error
	if err := d.milter.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("milter sessions: %w", err))
	}
	if err := d.policy.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("policy sessions: %w", err))
	}
	d.stopMetrics(ctx)
	d.serveWG.Wait()
	d.mu.Lock()
	d.started = false
	d.rt.Load().stop()
	d.mu.Unlock()
	if err := d.rt.Load().Program.Detach(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
