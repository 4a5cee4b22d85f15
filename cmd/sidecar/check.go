package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/cmd/sidecar/daemon"
	"github.com/mailsidecar/sidecar/config"
)

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check-config", "Checks a configuration file: the options, the named lists and the ACLs,\nas the daemon would load them. Prints every problem as file:line:col: message\nwith the line and a caret. Exit status 0 when the file is valid, 1 when not.\nWithout FILE it checks the embedded default configuration.", stderr)
	quiet := fs.Bool("q", false, "print nothing when the file is valid")
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	path := fs.Arg(0)
	return checkConfig(path, acl.Default, *quiet, stdout, stderr)
}

func checkConfig(path string, reg *acl.Registry, quiet bool, stdout, stderr io.Writer) int {
	cfg, prog, err := daemon.Load(path, reg)
	name := cfgLabel(path)
	if err != nil {
		list := config.AsList(err)
		fmt.Fprint(stderr, list.Format())
		n := len(list.Errors())
		fmt.Fprintf(stderr, "%s: %d error%s\n", name, n, plural(n))
		return 1
	}
	warnings := cfg.Reporter.List.Warnings()
	fmt.Fprint(stderr, warnings.Format())
	if !quiet {
		var stages []string
		for _, s := range acl.Stages() {
			if a := prog.ACLFor(s); a != "" {
				stages = append(stages, s.String()+"="+a)
			}
		}
		fmt.Fprintf(stdout, "%s: OK (%d ACLs; %s)\n", name, len(cfg.ACLs), strings.Join(stages, " "))
	}
	return 0
}

func printConfigError(w io.Writer, err error) {
	list := config.AsList(err)
	if len(list) > 0 && list[0].Pos.IsValid() {
		fmt.Fprint(w, list.Format())
		return
	}
	fmt.Fprintf(w, "sidecar: %v\n", err)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
