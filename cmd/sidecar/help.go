package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/config"
)

func cmdHelp(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("help", "Topics: a command name, \"config\" (main options), \"acl\" (verbs, conditions,\nmodifiers, controls and variables), or \"default\" (the embedded configuration).", stderr)
	if code, done := parse(fs, args); done {
		return code
	}
	switch topic := fs.Arg(0); topic {
	case "":
		usage(stdout)
	case "config", "options":
		helpConfig(stdout)
	case "acl", "acls", "conditions", "variables":
		helpACL(stdout, acl.Default)
	case "default":
		stdout.Write(config.DefaultText)
	case "man":
		helpMan(stdout)
	default:
		for _, c := range commands() {
			if c.name == topic {
				return c.run([]string{"-h"}, stdout, stdout)
			}
		}
		fmt.Fprintf(stderr, "sidecar help: no help on %q\n", topic)
		return 2
	}
	return 0
}

func helpConfig(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "OPTION\tTYPE\tDEFAULT\tMEANING")
	for _, d := range config.Registered() {
		def := d.Default
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Name, d.Kind, def, d.Doc)
	}
	tw.Flush()
}

func helpACL(w io.Writer, reg *acl.Registry) {
	fmt.Fprintf(w, "Verbs: %s\n\n", strings.Join(config.Verbs, ", "))
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "CONDITION\tSTAGES\tMEANING")
	for _, d := range reg.Conditions() {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Name, stagesOf(d.Stages), d.Doc)
	}
	fmt.Fprintln(tw, "\t\t")
	fmt.Fprintln(tw, "MODIFIER\t\tMEANING")
	for _, m := range []struct{ name, doc string }{
		{"message", "SMTP text of a deny/defer/drop (or of a failing require)"},
		{"log_message", "logged when the statement's verb takes effect (warn: when its conditions are true)"},
		{"logwrite", "logged at once when reached"},
		{"add_header", "adds a header at end of message (:at_start: puts it on top)"},
		{"remove_header", "removes headers by name at end of message (colon-separated list)"},
		{"set", "set acl_c_NAME (connection) or acl_m_NAME (message) = value"},
		{"control", "control = NAME[/ARG]: see CONTROL below"},
		{"delay", "waits, e.g. delay = 2s (at most 5m)"},
	} {
		fmt.Fprintf(tw, "%s\t\t%s\n", m.name, m.doc)
	}
	if ctrls := reg.Controls(); len(ctrls) > 0 {
		fmt.Fprintln(tw, "\t\t")
		fmt.Fprintln(tw, "CONTROL\tSTAGES\tMEANING")
		for _, d := range ctrls {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Name, stagesOf(d.Stages), d.Doc)
		}
	}
	fmt.Fprintln(tw, "\t\t")
	fmt.Fprintln(tw, "VARIABLE\tSTAGES\tMEANING")
	for _, d := range reg.Variables() {
		fmt.Fprintf(tw, "$%s\t%s\t%s\n", d.Name, stagesOf(d.Stages), d.Doc)
	}
	fmt.Fprintf(tw, "$h_NAME:\tDATA\tthe header NAME, trimmed and decoded ($rh_NAME: raw)\n")
	fmt.Fprintf(tw, "$acl_c_NAME, $acl_m_NAME\tall\tvariables set with \"set\"\n")
	tw.Flush()
}

func stagesOf(s acl.StageSet) string {
	if s == 0 || s == acl.AllStages {
		return "all"
	}
	return s.String()
}
