package store

import (
	"context"
	"math"
	"time"
)

// DomainSummary counts a policy domain's messages for the operator.
type DomainSummary struct {
	Domain      string   `json:"domain"`
	Messages    int64    `json:"messages"`
	DMARCPass   int64    `json:"dmarc_pass"`
	DMARCFail   int64    `json:"dmarc_fail"`
	SPFAligned  int64    `json:"spf_aligned"`
	DKIMAligned int64    `json:"dkim_aligned"`
	Rejected    int64    `json:"rejected"`    // refused or discarded
	Quarantined int64    `json:"quarantined"` // held
	Delivered   int64    `json:"delivered"`   // accepted (or deferred)
	TopFailing  []Source `json:"top_failing_sources"`
}

// Source is a sending address and its count.
type Source struct {
	IP    string `json:"ip"`
	Count int64  `json:"count"`
}

// Summary counts the messages that arrived since the given time, per
// policy domain with a DMARC record (or only domain), busiest first,
// with each domain's top failing sources (at most top). Like Groups, it
// reads the rollup for the whole days and the messages for the rest.
func (s *Store) Summary(ctx context.Context, since time.Time, domain string, top int) ([]DomainSummary, error) {
	const pass = "(g.align_dkim = 4 OR g.align_spf = 4)"
	from := func(q *query) string {
		return " FROM (" + q.counts(since.Unix(), math.MaxInt64, domain) + ") c JOIN report_groups g ON g.gid = c.gid WHERE g.policy NOT IN (13, 14)"
	}
	sum := func(cond string) string { return "CAST(SUM(CASE WHEN " + cond + " THEN c.n ELSE 0 END) AS BIGINT)" }
	q := &query{s: s}
	rows, err := s.db.QueryContext(ctx, "SELECT g.policy_domain, CAST(SUM(c.n) AS BIGINT), "+sum(pass)+", "+sum("g.align_spf = 4")+", "+
		sum("g.align_dkim = 4")+", "+sum("g.action IN (0, 1)")+", "+sum("g.action = 4")+from(q)+
		" GROUP BY g.policy_domain ORDER BY SUM(c.n) DESC, g.policy_domain", q.args...)
	if err != nil {
		return nil, s.fail("summary", err)
	}
	var out []DomainSummary
	index := map[string]int{}
	for rows.Next() {
		var d DomainSummary
		if err := rows.Scan(&d.Domain, &d.Messages, &d.DMARCPass, &d.SPFAligned, &d.DKIMAligned, &d.Rejected, &d.Quarantined); err != nil {
			rows.Close()
			return nil, s.fail("summary", err)
		}
		d.DMARCFail = d.Messages - d.DMARCPass
		d.Delivered = d.Messages - d.Rejected - d.Quarantined
		index[d.Domain] = len(out)
		out = append(out, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.fail("summary", err)
	}
	q = &query{s: s}
	rows, err = s.db.QueryContext(ctx, "SELECT g.policy_domain, g.ip, CAST(SUM(c.n) AS BIGINT)"+from(q)+" AND NOT "+pass+
		" GROUP BY g.policy_domain, g.ip ORDER BY g.policy_domain, SUM(c.n) DESC, g.ip", q.args...)
	if err != nil {
		return nil, s.fail("summary", err)
	}
	defer rows.Close()
	for rows.Next() {
		var dom string
		var src Source
		if err := rows.Scan(&dom, &src.IP, &src.Count); err != nil {
			return nil, s.fail("summary", err)
		}
		if i, ok := index[dom]; ok && len(out[i].TopFailing) < top {
			out[i].TopFailing = append(out[i].TopFailing, src)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("summary", err)
	}
	return out, nil
}
