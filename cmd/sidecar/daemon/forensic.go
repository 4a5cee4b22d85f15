package daemon

// The sender of DMARC failure reports: the message path (package checks)
// writes them into dmarc_forensic_spool; this background worker of the
// configuration in force delivers them over report_smtp, and logs what
// became of each.

import (
	"log/slog"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/report"
	"github.com/mailsidecar/sidecar/report/forensic"
	"github.com/mailsidecar/sidecar/report/forensic/deliver"
	"github.com/mailsidecar/sidecar/resolver"
)

// forensicSender is the sender of the spool cfg names.
func forensicSender(cfg *config.Config, res *resolver.Resolver, host string, logger *slog.Logger) *deliver.Sender {
	return &deliver.Sender{
		Dir:  cfg.String(forensic.OptSpool),
		DNS:  res,
		SMTP: report.MailClient(cfg, host),
		Event: func(e deliver.Event) {
			attrs := []any{"spool_file", e.ID, "policy_domain", e.PolicyDomain, "ruf", e.URI, "attempts", e.Attempts}
			if e.Err != nil {
				attrs = append(attrs, "error", e.Err.Error())
			}
			switch e.Result {
			case forensic.ResultSent:
				logger.Info("DMARC failure report sent", attrs...)
			case forensic.ResultTemporary:
				logger.Warn("DMARC failure report not sent; will try again", attrs...)
			default:
				logger.Error("DMARC failure report dropped", attrs...)
			}
		},
	}
}

// spoolDepth is the number of failure reports in the spool of the
// configuration in force (0 before the spool is first used).
func (d *Daemon) spoolDepth() int {
	if sp := forensic.Lookup(d.rt.Load().Config.String(forensic.OptSpool)); sp != nil {
		return sp.Len()
	}
	return 0
}
