package resolver

import (
	"context"
	"errors"
	"net"
	"strings"
)

// TXTLookup adapts a Querier to the LookupTXT hook of
// github.com/emersion/go-msgauth (dkim.VerifyOptions, dmarc.LookupOptions),
// which expects net.LookupTXT's behaviour:
//
//   - each TXT record's character-strings are joined into one string;
//   - NXDOMAIN and NODATA give a *net.DNSError with IsNotFound set, as do
//     names that cannot be queried (ErrBadName);
//   - temporary failures give a *net.DNSError with IsTemporary set, and
//     IsTimeout too for timeouts. The error is not wrapped: go-msgauth
//     tells temporary from permanent failures by a type assertion to
//     net.Error, not errors.As.
//
// All lookups run under ctx.
func TXTLookup(ctx context.Context, q Querier) func(domain string) ([]string, error) {
	return func(domain string) ([]string, error) { return LookupTXT(ctx, q, domain) }
}

// LookupTXT is one lookup of TXTLookup's hook, without making the hook.
func LookupTXT(ctx context.Context, q Querier, domain string) ([]string, error) {
	recs, err := LookupTXTRecords(ctx, q, domain)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(recs))
	for _, rec := range recs {
		out = append(out, strings.Join(rec.TXT, ""))
	}
	return out, nil
}

// LookupTXTRecords is LookupTXT with the records as the answer holds
// them, their character-strings not joined (a caller that keeps what it
// derives from the joined text need not build it each time). The records
// may be shared with the resolver's cache: read-only.
func LookupTXTRecords(ctx context.Context, q Querier, domain string) ([]Record, error) {
	ans, err := q.Query(ctx, domain, TypeTXT)
	if err != nil {
		if errors.Is(err, ErrBadName) {
			return nil, &net.DNSError{Err: "no such host", Name: domain, IsNotFound: true}
		}
		de := &net.DNSError{
			Err:         err.Error(),
			Name:        domain,
			IsTimeout:   errors.Is(err, ErrTimeout),
			IsTemporary: true,
		}
		var qe *QueryError
		if errors.As(err, &qe) {
			de.Server = qe.Server
		}
		return nil, de
	}
	if len(ans.Records) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: domain, IsNotFound: true}
	}
	return ans.Records, nil
}
