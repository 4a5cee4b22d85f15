package store

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/report"
)

// Group is a set of messages of one period that an aggregate report
// counts together: the same policy domain, source, disposition, results,
// identifiers and published policy.
type Group struct {
	PolicyDomain string
	IP           string
	Action       int // report.HistoryAction*
	Policy       int // report.HistoryPolicy*
	AlignDKIM    int
	AlignSPF     int
	ARCPolicy    int
	HeaderFrom   string
	EnvelopeFrom string
	SPF          report.ARES
	DKIM         []report.HistoryDKIM
	P, SP, Pct   int
	ADKIM, ASPF  int
	RUA          string // space-separated
	// Ext is what records in the sidecar format add (RcptDomains, RUF
	// and Override as stored); nil for records in OpenDMARC's.
	Ext   *report.HistoryExt
	Count int64
	Last  time.Time // the latest arrival in the group
}

// Groups calls fn with the groups of messages that arrived in
// [begin, end) from policy domains that publish a DMARC record (all of
// them, or the one domain named), ordered by policy domain. The database
// does the counting: memory does not grow with the number of messages.
func (s *Store) Groups(ctx context.Context, begin, end time.Time, domain string, fn func(*Group) error) error {
	const cols = "policy_domain, ip, action, policy, align_dkim, align_spf, arc_policy, header_from, envelope_from, spf, dkim, p, sp, pct, adkim, aspf, rua, " + extension
	q := "SELECT " + cols + ", COUNT(*), MAX(received) FROM messages WHERE received >= " + s.ph(1) + " AND received < " + s.ph(2) +
		" AND policy NOT IN (13, 14)"
	args := []any{begin.Unix(), end.Unix()}
	if domain != "" {
		q += " AND policy_domain = " + s.ph(3)
		args = append(args, domain)
	}
	q += " GROUP BY " + cols + " ORDER BY policy_domain"
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return s.fail("aggregate", err)
	}
	defer rows.Close()
	for rows.Next() {
		var g Group
		var spf int
		var dkim string
		var last int64
		var spfDomain, spfScope, rcpt, fo, ruf, override sql.NullString
		var np, psd, testing sql.NullInt64
		if err := rows.Scan(&g.PolicyDomain, &g.IP, &g.Action, &g.Policy, &g.AlignDKIM, &g.AlignSPF, &g.ARCPolicy, &g.HeaderFrom,
			&g.EnvelopeFrom, &spf, &dkim, &g.P, &g.SP, &g.Pct, &g.ADKIM, &g.ASPF, &g.RUA,
			&spfDomain, &spfScope, &rcpt, &np, &psd, &testing, &fo, &ruf, &override, &g.Count, &last); err != nil {
			return s.fail("aggregate", err)
		}
		g.SPF, g.DKIM, g.Last = report.ARES(spf), ParseDKIM(dkim), time.Unix(last, 0)
		if override.Valid {
			g.Ext = &report.HistoryExt{SPFDomain: spfDomain.String, SPFScope: spfScope.String, RcptDomains: strings.Fields(rcpt.String),
				NP: int(np.Int64), PSD: int(psd.Int64), Testing: int(testing.Int64), FO: fo.String, RUF: strings.Fields(ruf.String),
				Override: report.ParseOverrides(override.String)}
		}
		if err := fn(&g); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail("aggregate", err)
	}
	return nil
}
