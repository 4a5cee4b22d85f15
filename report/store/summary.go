package store

import (
	"context"
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
// with each domain's top failing sources (at most top).
func (s *Store) Summary(ctx context.Context, since time.Time, domain string, top int) ([]DomainSummary, error) {
	where := " WHERE received >= " + s.ph(1) + " AND policy NOT IN (13, 14)"
	args := []any{since.Unix()}
	if domain != "" {
		where += " AND policy_domain = " + s.ph(2)
		args = append(args, domain)
	}
	const pass = "(align_dkim = 4 OR align_spf = 4)"
	rows, err := s.db.QueryContext(ctx, "SELECT policy_domain, COUNT(*), SUM(CASE WHEN "+pass+" THEN 1 ELSE 0 END),"+
		" SUM(CASE WHEN align_spf = 4 THEN 1 ELSE 0 END), SUM(CASE WHEN align_dkim = 4 THEN 1 ELSE 0 END),"+
		" SUM(CASE WHEN action IN (0, 1) THEN 1 ELSE 0 END), SUM(CASE WHEN action = 4 THEN 1 ELSE 0 END)"+
		" FROM messages"+where+" GROUP BY policy_domain ORDER BY COUNT(*) DESC, policy_domain", args...)
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
	rows, err = s.db.QueryContext(ctx, "SELECT policy_domain, ip, COUNT(*) FROM messages"+where+" AND NOT "+pass+
		" GROUP BY policy_domain, ip ORDER BY policy_domain, COUNT(*) DESC, ip", args...)
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
