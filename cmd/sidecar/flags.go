package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
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
