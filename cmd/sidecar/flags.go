package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"
)

func newFlags(name, doc string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("sidecar "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: sidecar %s [flags]%s\n", name, argsHint(name))
		if doc != "" {
			fmt.Fprintf(stderr, "\n%s\n", doc)
		}
		var n int
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintf(stderr, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func argsHint(name string) string {
	switch name {
	case "check-config":
		return " [FILE]"
	case "help":
		return " [command | config | acl]"
	case "dsn":
		return " FILE"
	case "report bounces":
		return " [LOGFILE...]"
	}
	return ""
}

// parse parses flags; done is true when the command should exit with code
// (after -h, or on a usage error).
func parse(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	return 0, false
}

// usageError returns a function that prints "sidecar NAME: message" and the
// usage line to stderr and returns exit status 2.
func usageError(stderr io.Writer, name, usage string) func(format string, a ...any) int {
	return func(format string, a ...any) int {
		fmt.Fprintf(stderr, "sidecar "+name+": "+format+"\n", a...)
		fmt.Fprintf(stderr, "usage: %s\n", usage)
		return 2
	}
}

// parseClientIP reads an -ip flag: IPv4 or IPv6, optionally in brackets,
// without a zone.
func parseClientIP(text string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(text, "["), "]"))
	return ip, err == nil && ip.Zone() == ""
}
