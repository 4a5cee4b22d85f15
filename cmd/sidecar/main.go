// Command sidecar is a mail-authentication and TLS-policy daemon that runs
// beside Postfix, Sendmail or Exim. Run "sidecar help" for its commands.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/mailsidecar/sidecar/acl"
	_ "github.com/mailsidecar/sidecar/checks"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
)

// version is set with -ldflags "-X main.version=…" by release builds.
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// command is one sub-command.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run the daemon (the default when no command is given)", cmdRun},
		{"check-config", "check a configuration file and print every problem", cmdCheckConfig},
		{"spf", "check SPF for a client address, HELO name and sender, as the daemon does", cmdSPF},
		{"check", "evaluate a message file as the daemon would: verdicts, SPF, DKIM, DMARC, Authentication-Results", cmdCheck},
		{"dkim-sign", "DKIM-sign a message file as the daemon signs outbound mail", cmdDKIMSign},
		{"arc-sign", "seal a message with an ARC Set (RFC 8617), as a forwarder does", cmdARCSign},
		{"report", "reports: DMARC aggregate (import, aggregate, summary, expire), SMTP TLS (tls), bounces", cmdReport},
		{"dane", "show the DANE/OCSP policy of a next hop, as the policy socket answers it", cmdDane},
		{"dsn", "show what a delivery status notification (bounce) in a message file says", cmdDSN},
		{"help", "show help on commands, options, ACL conditions and variables", cmdHelp},
		{"version", "print the version", cmdVersion},
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (len(args[0]) > 0 && args[0][0] == '-' && args[0] != "-h" && args[0] != "-help" && args[0] != "--help") {
		return cmdRun(args, stdout, stderr)
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		name = "help"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "sidecar: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "usage: sidecar [command] [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun \"sidecar COMMAND -h\" for a command's flags, \"sidecar help config\" for the options,\n\"sidecar help acl\" for ACL conditions, modifiers, controls and variables.\n")
}

func versionString() string {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	goV := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goV = bi.GoVersion
	}
	return fmt.Sprintf("sidecar %s (%s)", v, goV)
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", "", stderr)
	if code, done := parse(fs, args); done {
		return code
	}
	fmt.Fprintln(stdout, versionString())
	writeBuildInfo(stdout)
	return 0
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", "Runs the daemon. Without -config it uses the embedded default configuration.\nSIGHUP reloads the configuration; SIGTERM or SIGINT stops it after open sessions finish.", stderr)
	path := fs.String("config", "", "configuration `file` (default: the embedded default configuration)")
	if code, done := parse(fs, args); done {
		return code
	}
	return runDaemon(*path, acl.Default, stderr, nil)
}

// runDaemon runs until SIGTERM/SIGINT; ready, if not nil, receives the
// daemon once it listens (tests use it).
func runDaemon(path string, reg *acl.Registry, stderr io.Writer, ready chan<- *daemon.Daemon) int {
	d, err := daemon.New(path, reg, stderr)
	if err != nil {
		printConfigError(stderr, err)
		return 1
	}
	log := d.Logger()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if err := d.Start(); err != nil {
		log.Error("cannot start", "error", err)
		return 1
	}
	log.Info("sidecar started", "version", versionString(), "config", cfgLabel(path), "dns_servers", strings.Join(d.Runtime().Resolver.Servers(), " "))
	if ready != nil {
		ready <- d
	}
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			// The goroutine count lets a soak test or an operator watch
			// for leaks (cmd/sidecar-load/soak_test.go reads it).
			log.Info("SIGHUP: reloading the configuration", "goroutines", runtime.NumGoroutine())
			_ = d.Reload()
			continue
		}
		log.Info("stopping: waiting for open sessions", "signal", sig.String())
		if err := d.Shutdown(); err != nil {
			log.Warn("sessions cut short at shutdown_timeout", "error", err)
		}
		log.Info("sidecar stopped")
		return 0
	}
	return 0
}

func cfgLabel(path string) string {
	if path == "" {
		return "(embedded default)"
	}
	return path
}
