package store

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/mailsidecar/sidecar/report"
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
// reads the rollup for the whole days and the messages for the rest, in
// one pass: the counts per group, in the database's order of domains and
// addresses (which breaks the ties), are summed here.
func (s *Store) Summary(ctx context.Context, since time.Time, domain string, top int) ([]DomainSummary, error) {
	q := &query{s: s}
	rows, err := s.db.QueryContext(ctx, "SELECT g.policy_domain, g.ip, g.align_dkim, g.align_spf, g.action, c.n FROM ("+
		q.countsSince(since.Unix(), domain)+") c JOIN report_groups g ON g.gid = c.gid WHERE g.policy NOT IN (13, 14)"+
		" ORDER BY g.policy_domain, g.ip", q.args...)
	if err != nil {
		return nil, s.fail("summary", err)
	}
	defer rows.Close()
	var out []DomainSummary
	var failing [][]Source // per domain, in the database's order of addresses
	for rows.Next() {
		var dom, ip string
		var alignDKIM, alignSPF, action int
		var n int64
		if err := rows.Scan(&dom, &ip, &alignDKIM, &alignSPF, &action, &n); err != nil {
			return nil, s.fail("summary", err)
		}
		if len(out) == 0 || out[len(out)-1].Domain != dom {
			out, failing = append(out, DomainSummary{Domain: dom}), append(failing, nil)
		}
		d, f := &out[len(out)-1], &failing[len(failing)-1]
		d.add(alignDKIM, alignSPF, action, n)
		if alignDKIM != report.HistoryAlignPass && alignSPF != report.HistoryAlignPass {
			if k := len(*f); k > 0 && (*f)[k-1].IP == ip {
				(*f)[k-1].Count += n
			} else {
				*f = append(*f, Source{ip, n})
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("summary", err)
	}
	for i := range out {
		f := failing[i]
		slices.SortStableFunc(f, func(a, b Source) int { return cmp.Compare(b.Count, a.Count) })
		out[i].TopFailing = f[:min(len(f), top)]
		out[i].DMARCFail = out[i].Messages - out[i].DMARCPass
		out[i].Delivered = out[i].Messages - out[i].Rejected - out[i].Quarantined
	}
	slices.SortStableFunc(out, func(a, b DomainSummary) int { return cmp.Compare(b.Messages, a.Messages) })
	return out, nil
}

// add counts n messages of a group with these results.
func (d *DomainSummary) add(alignDKIM, alignSPF, action int, n int64) {
	d.Messages += n
	if alignDKIM == report.HistoryAlignPass || alignSPF == report.HistoryAlignPass {
		d.DMARCPass += n
	}
	if alignSPF == report.HistoryAlignPass {
		d.SPFAligned += n
	}
	if alignDKIM == report.HistoryAlignPass {
		d.DKIMAligned += n
	}
	switch action {
	case report.HistoryActionReject, report.HistoryActionDiscard:
		d.Rejected += n
	case report.HistoryActionQuarantine:
		d.Quarantined += n
	}
}
