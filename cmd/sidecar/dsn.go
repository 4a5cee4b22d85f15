package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mailsidecar/sidecar/dsninfo"
)

func cmdDSN(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("dsn", `Arguments: FILE

Prints what the daemon reads from a delivery status notification (a
bounce, delay or success notice) in FILE, a whole message ("-" for
standard input): the report's per-message fields, each recipient with
its action, status and meaning, remote MTA and diagnostic, Exim's X-
fields, and the Message-ID, From, To, Subject and Date of the message
it is about. Exit status 0 for a report (RFC 3464, or a plain-text
bounce guessed), 1 for a message that is not one or whose report could
not be read, 2 for usage errors.`, stderr)
	if code, done := parse(fs, args); done {
		return code
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	var in io.Reader = os.Stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "sidecar dsn: %v\n", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	r, err := dsninfo.Parse(in, dsninfo.Limits{})
	if err != nil {
		fmt.Fprintf(stderr, "sidecar dsn: %v\n", err)
		return 2
	}
	printDSN(stdout, r)
	if r.Kind == dsninfo.DSN || r.Kind == dsninfo.Guessed {
		return 0
	}
	return 1
}

// printDSN writes a report as "name: value" lines, recipient by recipient.
func printDSN(w io.Writer, r *dsninfo.Report) {
	line := func(indent, name, v string) {
		if v != "" {
			fmt.Fprintf(w, "%s%s: %s\n", indent, name, v)
		}
	}
	line("", "kind", string(r.Kind))
	line("", "reason", r.Reason)
	line("", "report-type", r.ReportType)
	if r.Global {
		line("", "global", "yes (RFC 6533)")
	}
	line("", "reporting-mta", r.ReportingMTA.String())
	line("", "dsn-gateway", r.DSNGateway.String())
	line("", "received-from-mta", r.ReceivedFromMTA.String())
	line("", "original-envelope-id", r.OriginalEnvelopeID)
	line("", "arrival-date", r.ArrivalDate)
	if o := r.Original; o.Found {
		fmt.Fprintln(w, "original message:")
		line("  ", "message-id", o.MessageID)
		line("  ", "from", o.From)
		line("  ", "to", o.To)
		line("  ", "subject", o.Subject)
		line("  ", "date", o.Date)
	}
	for i, rc := range r.Recipients {
		fmt.Fprintf(w, "recipient %d: %s\n", i+1, rc.Address())
		line("  ", "action", string(rc.Action))
		if rc.Status.Valid() {
			line("  ", "status", rc.Status.String()+" ("+rc.Status.Meaning()+")")
		}
		line("  ", "original-recipient", rc.OriginalRecipient.String())
		line("  ", "final-recipient", rc.FinalRecipient.String())
		line("  ", "remote-mta", rc.RemoteMTA.String())
		line("  ", "remote-ip", rc.RemoteIP)
		line("  ", "diagnostic-code", rc.DiagnosticCode.String())
		line("  ", "last-attempt-date", rc.LastAttemptDate)
		line("  ", "will-retry-until", rc.WillRetryUntil)
		line("  ", "final-log-id", rc.FinalLogID)
		line("  ", "x-remote-mta-smtp-greeting", rc.RemoteSMTPGreeting)
		line("  ", "x-remote-mta-helo-response", rc.RemoteHeloResponse)
		line("  ", "x-exim-diagnostic", rc.ReportingDiagnostic)
	}
	if r.MoreRecipients > 0 {
		fmt.Fprintf(w, "more recipients not shown: %d\n", r.MoreRecipients)
	}
	var notes []string
	if r.Truncated {
		notes = append(notes, "some values were cut at their limit")
	}
	if r.Skipped > 0 {
		notes = append(notes, fmt.Sprintf("%d parts beyond the limits were skipped", r.Skipped))
	}
	line("", "note", strings.Join(notes, "; "))
}
