package store

import (
	"context"
	"database/sql"
	"math"
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
// them, or the one domain named), ordered by policy domain (then by
// group, in the order the store first saw them). The database does the
// counting, from the rollup for the whole UTC days of the period and
// from the messages for the parts of days at its ends: memory does not
// grow with the number of messages.
func (s *Store) Groups(ctx context.Context, begin, end time.Time, domain string, fn func(*Group) error) error {
	q := &query{s: s}
	counts := q.counts(begin.Unix(), end.Unix(), domain)
	rows, err := s.db.QueryContext(ctx, "SELECT "+prefixed("g.", groupColumns)+", c.n, c.last_received FROM ("+counts+") c"+
		" JOIN report_groups g ON g.gid = c.gid WHERE g.policy NOT IN (13, 14) ORDER BY g.policy_domain, g.gid", q.args...)
	if err != nil {
		return s.fail("aggregate", err)
	}
	defer rows.Close()
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return s.fail("aggregate", err)
		}
		if err := fn(g); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.fail("aggregate", err)
	}
	return nil
}

// scanGroup reads a row of groupColumns, the count and the latest
// arrival.
func scanGroup(rows *sql.Rows) (*Group, error) {
	var g Group
	var spf int
	var dkim string
	var last int64
	var spfDomain, spfScope, rcpt, fo, ruf, override sql.NullString
	var np, psd, testing sql.NullInt64
	if err := rows.Scan(&g.PolicyDomain, &g.IP, &g.Action, &g.Policy, &g.AlignDKIM, &g.AlignSPF, &g.ARCPolicy, &g.HeaderFrom,
		&g.EnvelopeFrom, &spf, &dkim, &g.P, &g.SP, &g.Pct, &g.ADKIM, &g.ASPF, &g.RUA,
		&spfDomain, &spfScope, &rcpt, &np, &psd, &testing, &fo, &ruf, &override, &g.Count, &last); err != nil {
		return nil, err
	}
	g.SPF, g.DKIM, g.Last = report.ARES(spf), ParseDKIM(dkim), time.Unix(last, 0)
	if override.Valid {
		g.Ext = &report.HistoryExt{SPFDomain: spfDomain.String, SPFScope: spfScope.String, RcptDomains: strings.Fields(rcpt.String),
			NP: int(np.Int64), PSD: int(psd.Int64), Testing: int(testing.Int64), FO: fo.String, RUF: strings.Fields(ruf.String),
			Override: report.ParseOverrides(override.String)}
	}
	return &g, nil
}

// query collects the arguments of a statement as it is written.
type query struct {
	s    *Store
	args []any
}

// arg adds an argument and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return q.s.ph(len(q.args))
}

// counts returns a subquery with a row (gid, n, last_received) for each
// group with messages that arrived in [begin, end) (Unix seconds), of
// policy domain domain unless it is "": their number and the latest
// arrival. The whole UTC days come from group_days, the parts of days at
// either end from messages.
func (q *query) counts(begin, end int64, domain string) string {
	var parts []string
	first, last := dayOf(begin), dayOf(end) // whole days: [first, last)
	if first < begin {
		first += 86400
	}
	if first >= last {
		parts = append(parts, q.messages("", begin, end, domain))
	} else {
		parts = append(parts, "SELECT gid, n, last_received FROM group_days WHERE day >= "+q.arg(first)+" AND day < "+q.arg(last)+q.only(domain))
		if begin < first {
			parts = append(parts, q.messages("", begin, first, domain))
		}
		if last < end {
			parts = append(parts, q.messages("", last, end, domain))
		}
	}
	return "SELECT gid, CAST(SUM(n) AS BIGINT) AS n, MAX(last_received) AS last_received FROM (" +
		strings.Join(parts, " UNION ALL ") + ") u GROUP BY gid"
}

// countsSince returns a subquery with a row (gid, n) for each group with
// messages that arrived at begin or after, as counts does. Without the
// latest arrival, the part of begin's day can be counted the shorter
// way: when begin is in the first half of its day, as the day's count
// less the messages before begin.
func (q *query) countsSince(begin int64, domain string) string {
	day := dayOf(begin)
	if begin == day || begin-day > 43200 {
		return q.counts(begin, math.MaxInt64, domain)
	}
	return "SELECT gid, CAST(SUM(n) AS BIGINT) AS n FROM (SELECT gid, n, last_received FROM group_days WHERE day >= " + q.arg(day) + q.only(domain) +
		" UNION ALL " + q.messages("-", day, begin, domain) + ") u GROUP BY gid HAVING SUM(n) > 0"
}

// messages is the subquery counting the messages of [b, e) per group
// (sign "-": negatively).
func (q *query) messages(sign string, b, e int64, domain string) string {
	return "SELECT gid, " + sign + "COUNT(*) AS n, MAX(received) AS last_received FROM messages WHERE received >= " + q.arg(b) +
		" AND received < " + q.arg(e) + q.only(domain) + " GROUP BY gid"
}

// only restricts a subquery to the groups of domain, unless it is "".
func (q *query) only(domain string) string {
	if domain == "" {
		return ""
	}
	return " AND gid IN (SELECT gid FROM report_groups WHERE policy_domain = " + q.arg(domain) + ")"
}

// prefixed returns the comma-separated columns cols, each with prefix.
func prefixed(prefix, cols string) string {
	return prefix + strings.ReplaceAll(cols, ", ", ", "+prefix)
}
